//! Seeds the nine founding cities of the G60 corridor. Cities are data: a
//! city that joins later is a new migration (or an operator insert), not code.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Cities {
    Table,
    Code,
    NameZh,
    NameEn,
    Province,
    JoinedAt,
}

/// (code, Chinese name, English name, province).
const FOUNDING_CITIES: [(&str, &str, &str, &str); 9] = [
    (
        "songjiang",
        "上海市松江区",
        "Shanghai Songjiang",
        "Shanghai",
    ),
    ("jiaxing", "嘉兴", "Jiaxing", "Zhejiang"),
    ("hangzhou", "杭州", "Hangzhou", "Zhejiang"),
    ("jinhua", "金华", "Jinhua", "Zhejiang"),
    ("suzhou", "苏州", "Suzhou", "Jiangsu"),
    ("huzhou", "湖州", "Huzhou", "Zhejiang"),
    ("xuancheng", "宣城", "Xuancheng", "Anhui"),
    ("wuhu", "芜湖", "Wuhu", "Anhui"),
    ("hefei", "合肥", "Hefei", "Anhui"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut insert = Query::insert();
        insert.into_table(Cities::Table).columns([
            Cities::Code,
            Cities::NameZh,
            Cities::NameEn,
            Cities::Province,
            Cities::JoinedAt,
        ]);
        for (code, zh, en, province) in FOUNDING_CITIES {
            insert.values_panic([
                code.into(),
                zh.into(),
                en.into(),
                province.into(),
                Expr::current_timestamp(),
            ]);
        }
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let codes = FOUNDING_CITIES.map(|(code, ..)| code);
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(Cities::Table)
                    .and_where(Expr::col(Cities::Code).is_in(codes))
                    .to_owned(),
            )
            .await
    }
}
