//! Fail-safe startup (deployment issue, item 1): every setting is checked
//! before the database is touched, and a key-encryption key that does not
//! open the keys already there is refused with nothing written.

use base64::Engine;
use corridor_server::config::Settings;
use corridor_server::state::AppState;
use corridor_tests::TestApp;
use sea_orm::{ConnectionTrait, Statement};

async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut v = Vec::new();
    for t in [
        "issuer_keys",
        "policy_versions",
        "credentials",
        "audit_events",
        "seaql_migrations",
    ] {
        v.push(
            app.count(&format!("SELECT count(*)::bigint AS n FROM {t}"))
                .await,
        );
    }
    v
}

/// Regression: a replica with the wrong key-encryption key started, said
/// SERVING, answered INTERNAL to every issuance, and a rotation it served
/// sealed the city's new key under the wrong key. It now refuses to start,
/// naming the reason, and writes nothing.
#[tokio::test]
async fn a_wrong_key_encryption_key_is_refused_with_nothing_written() {
    let app = TestApp::spawn().await;
    let before = snapshot(&app).await;
    let mut settings = Settings::default().with_dev_defaults();
    settings.database_url = Some(app.database_url(None));
    settings.secrets.key_encryption_key = Some(
        base64::engine::general_purpose::STANDARD
            .encode([42u8; 32])
            .into(),
    );
    let err = AppState::build(&settings)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("key-encryption key does not open"), "{err}");
    assert_eq!(snapshot(&app).await, before);
}

/// Regression: migrations ran before the configuration was checked, so a
/// replica with a short key or a missing secret migrated the shared
/// database (and created every city's key) before it exited. Now it exits
/// first: the empty database stays empty.
#[tokio::test]
async fn bad_settings_touch_no_database() {
    let app = TestApp::spawn().await;
    // A fresh, empty database next to the test's.
    let empty = format!("corridor_empty_{}", uuid::Uuid::new_v4().simple());
    let admin = corridor_server::store::connect(
        &corridor_tests::with_database(&app.database_url(None), "postgres"),
        std::time::Duration::from_secs(2),
    )
    .await
    .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {empty}"))
        .await
        .unwrap();
    let url = corridor_tests::with_database(&app.database_url(None), &empty);
    for (what, adjust) in [
        (
            "a short key-encryption key",
            Box::new(|s: &mut Settings| {
                s.secrets.key_encryption_key = Some("c2hvcnQ=".to_owned().into());
            }) as Box<dyn Fn(&mut Settings)>,
        ),
        (
            "no holder hash key",
            Box::new(|s: &mut Settings| s.secrets.holder_hash_key = None),
        ),
        (
            "no identity keys",
            Box::new(|s: &mut Settings| s.identity.keys.clear()),
        ),
    ] {
        let mut settings = Settings::default().with_dev_defaults();
        settings.database_url = Some(url.clone());
        adjust(&mut settings);
        assert!(AppState::build(&settings).await.is_err(), "{what} accepted");
    }
    let db = corridor_server::store::connect(&url, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    let tables: i64 = db
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*)::bigint AS n FROM information_schema.tables WHERE table_schema = 'public'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    assert_eq!(tables, 0, "a bad configuration migrated the database");
    db.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE {empty} WITH (FORCE)"))
        .await
        .unwrap();
}
