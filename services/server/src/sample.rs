//! Sample data for `corridor --dev serve`: a few credentials issued through
//! the same use case as IssueCredential, so that a first run has something
//! to list and verify. Idempotent: the request ids are fixed, so restarting
//! does not issue them again.

use corridor_domain::RequestId;
use corridor_domain::caller::{Caller, Role};
use corridor_domain::city::CityCode;
use corridor_domain::holder::NationalId;
use corridor_domain::qualification::{Category, Qualification};

use crate::app::credentials::IssueCredential;
use crate::state::AppState;

/// (city, category, series, level, title, holder name, first 17 ID digits).
const SAMPLES: [(&str, Category, &str, i32, &str, &str, &str); 3] = [
    (
        "hangzhou",
        Category::ProfessionalTitle,
        "engineering",
        4,
        "高级工程师",
        "样例·王工",
        "33010619850101001",
    ),
    (
        "hefei",
        Category::SkillLevel,
        "electrician",
        5,
        "技师",
        "样例·李师傅",
        "34010419900202002",
    ),
    (
        "suzhou",
        Category::ForeignWorkPermit,
        "foreign-expert",
        3,
        "外国高端人才（A类）",
        "Sample Expert",
        "91320500198803030",
    ),
];

/// Issues the sample credentials unless already issued.
pub async fn seed(state: &AppState) -> anyhow::Result<()> {
    for (i, (city, category, series, level, title, name, id17)) in SAMPLES.into_iter().enumerate() {
        let city = CityCode::parse("city", city)?;
        let caller = Caller {
            subject: "dev-sample-seeder".into(),
            city: Some(city.clone()),
            roles: vec![Role::Issuer],
        };
        let id =
            NationalId::with_check_digit(id17).ok_or_else(|| anyhow::anyhow!("bad sample id"))?;
        let cmd = IssueCredential {
            request_id: RequestId::parse(&format!("dev-sample-{i}"))?,
            issuer_city: city.clone(),
            qualification: Qualification::parse(
                "qualification",
                Some(category),
                series,
                level,
                title,
            )?,
            holder_name: name.to_owned(),
            national_id: NationalId::parse("holder_national_id", &id)?,
            valid_from: None,
            valid_until: None,
        };
        let c = state
            .issue_credential(&caller, cmd)
            .await
            .map_err(|e| anyhow::anyhow!("sample issuance failed: {e}"))?;
        tracing::info!(id = %c.id, city = %city, "sample credential");
    }
    Ok(())
}
