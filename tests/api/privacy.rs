//! Personal data: the national ID is nowhere in the database in clear.

use corridor_proto::v1;
use corridor_tests::{TestApp, authed, national_id};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::support::*;

#[tokio::test]
async fn the_national_id_is_nowhere_in_the_database() {
    let app = TestApp::spawn().await;
    let id = national_id("33010619900101123");
    let c = issue(&app, "hangzhou", "p-1").await;
    // Exercise every path that sees the ID: issue, list by holder, verify with holder.
    app.credentials()
        .await
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                holder_national_id: id.clone(),
                ..Default::default()
            },
            &app.issuer("hangzhou"),
        ))
        .await
        .unwrap();
    assert!(verify_token(&app, &c.token, &id).await.valid);
    wait_for_audit(&app, &c.id, "credential.verified", 1).await;
    // The credential token must not carry it either.
    assert!(!c.token.contains(&id));

    let tables = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        ))
        .await
        .unwrap();
    assert!(tables.len() >= 5);
    let needles = [
        id.clone(),
        id.to_lowercase(),
        hex::encode(id.as_bytes()),
        id[..17].to_owned(),
    ];
    let mut rows_seen = 0;
    for t in tables {
        let name: String = t.try_get("", "table_name").unwrap();
        let rows = app
            .db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT row_to_json(t)::text AS j FROM \"{name}\" t"),
            ))
            .await
            .unwrap();
        for r in rows {
            let j: String = r.try_get("", "j").unwrap();
            rows_seen += 1;
            for n in &needles {
                assert!(
                    !j.contains(n.as_str()),
                    "table {name} holds the national ID: {j}"
                );
            }
        }
    }
    assert!(rows_seen > 10);
}
