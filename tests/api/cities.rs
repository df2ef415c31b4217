//! CityRegistryService, key rotation, health and reflection.

use corridor_proto::v1;
use corridor_tests::{TestApp, authed};
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn nine_cities_with_keys() {
    let app = TestApp::spawn().await;
    let mut cities = app.cities().await;
    let list = cities
        .list_cities(v1::ListCitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .cities;
    let codes: Vec<&str> = list.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "hangzhou",
            "hefei",
            "huzhou",
            "jiaxing",
            "jinhua",
            "songjiang",
            "suzhou",
            "wuhu",
            "xuancheng"
        ]
    );
    assert!(
        list.iter().any(|c| c.code == "songjiang"
            && c.province == "Shanghai"
            && c.name_zh == "上海市松江区")
    );
    for c in &list {
        let keys = cities
            .get_issuer_keys(v1::GetIssuerKeysRequest {
                city: c.code.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(keys.keys.len(), 1, "{}", c.code);
        assert_eq!(keys.keys[0].status, v1::IssuerKeyStatus::Current as i32);
        let jwks: serde_json::Value = serde_json::from_str(&keys.jwks_json).unwrap();
        assert_eq!(jwks["keys"][0]["kty"], "OKP");
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
        assert_eq!(jwks["keys"][0]["x"], keys.keys[0].x.as_str());
        // Public material only.
        assert!(jwks["keys"][0].get("d").is_none());
    }
    let err = cities
        .get_issuer_keys(v1::GetIssuerKeysRequest {
            city: "atlantis".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = cities
        .get_issuer_keys(v1::GetIssuerKeysRequest {
            city: "Not A City".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn credentials_signed_before_a_rotation_still_verify() {
    let app = TestApp::spawn().await;
    let before = issue(&app, "hangzhou", "rot-1").await;
    let mut cities = app.cities().await;

    // Only a corridor admin rotates.
    let err = cities
        .rotate_issuer_key(authed(
            v1::RotateIssuerKeyRequest {
                request_id: "r-0".into(),
                city: "hangzhou".into(),
            },
            &app.issuer("hangzhou"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let rotated = cities
        .rotate_issuer_key(authed(
            v1::RotateIssuerKeyRequest {
                request_id: "r-1".into(),
                city: "hangzhou".into(),
            },
            &app.admin(),
        ))
        .await
        .unwrap()
        .into_inner();
    let retired = rotated.retired_key.unwrap();
    let current = rotated.current_key.unwrap();
    assert_eq!(retired.kid, before.kid);
    assert_eq!(retired.status, v1::IssuerKeyStatus::Retired as i32);
    assert!(retired.not_after.is_some());
    assert_ne!(current.kid, before.kid);

    // The old credential verifies against the retired key...
    let v = verify_token(&app, &before.token, "").await;
    assert!(v.valid, "{v:?}");
    // ...and new ones are signed with the new key.
    let after = issue(&app, "hangzhou", "rot-2").await;
    assert_eq!(after.kid, current.kid);
    assert!(verify_token(&app, &after.token, "").await.valid);

    // The JWKS publishes both, the retired one with its window.
    let keys = cities
        .get_issuer_keys(v1::GetIssuerKeysRequest {
            city: "hangzhou".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.keys.len(), 2);
    assert_eq!(keys.keys[0].kid, current.kid);
    assert_eq!(keys.keys[1].kid, before.kid);
    let jwks: serde_json::Value = serde_json::from_str(&keys.jwks_json).unwrap();
    assert!(jwks["keys"][1]["exp"].is_i64());

    // A retried rotation is not a second rotation.
    let again = cities
        .rotate_issuer_key(authed(
            v1::RotateIssuerKeyRequest {
                request_id: "r-1".into(),
                city: "hangzhou".into(),
            },
            &app.admin(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.current_key.unwrap().kid, current.kid);
    assert_eq!(
        audit_actions(&app, "hangzhou").await,
        ["issuer_key.rotated"]
    );

    // Another city's keys are untouched.
    let hefei = cities
        .get_issuer_keys(v1::GetIssuerKeysRequest {
            city: "hefei".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hefei.keys.len(), 1);
}

#[tokio::test]
async fn a_rotation_on_another_replica_is_picked_up() {
    // Two servers on one database: B rotates, A verifies and issues.
    let a = TestApp::spawn().await;
    let before = issue(&a, "suzhou", "rep-1").await;
    let b = a.replica().await;
    let new_kid = rotate_key(&a, b.channel().await, "suzhou", "rep-r").await;
    // Replica A signs with the new key and verifies tokens of both keys.
    let after = issue(&a, "suzhou", "rep-2").await;
    assert_eq!(after.kid, new_kid);
    assert!(verify_token(&a, &after.token, "").await.valid);
    assert!(verify_token(&a, &before.token, "").await.valid);
}

#[tokio::test]
async fn health_and_reflection() {
    let app = TestApp::spawn().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.raw_channel().await);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "g60.talent.v1.CredentialService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut refl = ServerReflectionClient::new(app.raw_channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection answer {msg:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for s in [
        "g60.talent.v1.CityRegistryService",
        "g60.talent.v1.CredentialService",
        "g60.talent.v1.VerificationService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == s), "{s} missing from {names:?}");
    }

    // The older v1alpha protocol answers too.
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaReq;
    let mut alpha = AlphaClient::new(app.raw_channel().await);
    let mut stream = alpha
        .server_reflection_info(tokio_stream::iter(vec![AlphaRequest {
            host: String::new(),
            message_request: Some(AlphaReq::ListServices(String::new())),
        }]))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.next().await.unwrap().is_ok());
}

/// The metrics endpoint (`metrics_listen`) exposes the named series after a
/// short walk: RPCs by code and duration, caches, verifications,
/// recognitions by city pair, the database pool.
#[tokio::test]
async fn metrics_expose_the_named_series_after_a_walk() {
    let app = TestApp::spawn().await;
    let metrics = app.metrics().await;
    let c = issue(&app, "hefei", "metrics-1").await;
    assert!(verify_token(&app, &c.token, "").await.valid);
    corridor_proto::v1::recognition_service_client::RecognitionServiceClient::new(
        app.raw_channel().await,
    )
    .request_recognition(authed(
        v1::RequestRecognitionRequest {
            request_id: "metrics-r".into(),
            credential_id: c.id.clone(),
            target_city: "songjiang".into(),
            facts: None,
        },
        &app.token("sj", Some("songjiang"), &["recognizer"]),
    ))
    .await
    .unwrap();
    // A refused call, to see a non-OK code.
    let _ = app
        .credentials()
        .await
        .get_credential(tonic::Request::new(v1::GetCredentialRequest { id: c.id }))
        .await;
    // The status cache answers (and counts a lookup) only while its lease
    // is fresh, renewed by probes every 100 ms that a loaded machine can
    // hold up past the 1 s lease: verify again until a lookup is counted.
    let status = "corridor_cache_lookups_total{cache=\"status\"";
    let started = std::time::Instant::now();
    while !metrics.scrape().await.contains(status)
        && started.elapsed() < std::time::Duration::from_secs(30)
    {
        assert!(verify_token(&app, &c.token, "").await.valid);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let body = metrics.scrape().await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for series in [
        "corridor_grpc_requests_total{service=\"g60.talent.v1.CredentialService\",method=\"IssueCredential\",code=\"Ok\"}",
        "corridor_grpc_requests_total{service=\"g60.talent.v1.CredentialService\",method=\"GetCredential\",code=\"Unauthenticated\"}",
        "corridor_grpc_request_duration_seconds_bucket",
        "corridor_grpc_requests_in_flight",
        "corridor_cache_lookups_total{cache=\"caller_token\"",
        "corridor_cache_lookups_total{cache=\"issuer_key\"",
        "corridor_cache_lookups_total{cache=\"status\"",
        "corridor_verifications_total{valid=\"true\",failed_check=\"none\"}",
        "corridor_recognitions_total{source=\"hefei\",target=\"songjiang\",outcome=\"CONDITIONAL\"}",
        "corridor_db_pool_connections",
        "corridor_db_pool_idle_connections",
    ] {
        assert!(body.contains(series), "{series} missing from\n{body}");
    }
}

#[tokio::test]
async fn categories_and_levels_are_named_in_chinese_and_english() {
    let app = TestApp::spawn().await;
    let got = app
        .cities()
        .await
        .list_qualification_categories(v1::ListQualificationCategoriesRequest {})
        .await
        .expect("public, no token")
        .into_inner()
        .categories;
    assert_eq!(got.len(), 5);
    let title = &got[0];
    assert_eq!(
        title.category,
        v1::QualificationCategory::ProfessionalTitle as i32
    );
    assert_eq!(
        (title.name_zh.as_str(), title.name_en.as_str()),
        ("职称", "Professional title")
    );
    assert_eq!(title.levels.len(), 5);
    assert_eq!(
        (
            title.levels[3].level,
            title.levels[3].name_zh.as_str(),
            title.levels[3].name_en.as_str()
        ),
        (4, "副高级", "Associate senior")
    );
    assert!(title.known_series.iter().any(|s| s == "engineering"));
    let skill = &got[1];
    assert_eq!(skill.levels.len(), 8);
    assert_eq!(skill.levels[7].name_zh, "首席技师");
    for c in &got {
        assert!(!c.name_zh.is_empty() && !c.name_en.is_empty());
        assert!(
            c.levels
                .iter()
                .all(|l| !l.name_zh.is_empty() && !l.name_en.is_empty())
        );
    }
}
