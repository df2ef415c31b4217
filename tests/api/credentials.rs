//! CredentialService: the lifecycle, listing, bad input and who may do what.

use corridor_proto::v1;
use corridor_tests::{TestApp, authed, violated_fields};
use tonic::Code;

use crate::support::*;

fn status_req<T>(
    make: impl Fn(String, String, String) -> T,
    rid: &str,
    id: &str,
    reason: &str,
) -> T {
    make(rid.into(), id.into(), reason.into())
}

fn suspend(rid: &str, id: &str, reason: &str) -> v1::SuspendCredentialRequest {
    status_req(
        |request_id, id, reason| v1::SuspendCredentialRequest {
            request_id,
            id,
            reason,
        },
        rid,
        id,
        reason,
    )
}
fn reinstate(rid: &str, id: &str, reason: &str) -> v1::ReinstateCredentialRequest {
    status_req(
        |request_id, id, reason| v1::ReinstateCredentialRequest {
            request_id,
            id,
            reason,
        },
        rid,
        id,
        reason,
    )
}
fn revoke(rid: &str, id: &str, reason: &str) -> v1::RevokeCredentialRequest {
    status_req(
        |request_id, id, reason| v1::RevokeCredentialRequest {
            request_id,
            id,
            reason,
        },
        rid,
        id,
        reason,
    )
}

#[tokio::test]
async fn full_lifecycle_issue_verify_suspend_reinstate_revoke() {
    let app = TestApp::spawn().await;
    let hz = app.issuer("hangzhou");
    let mut creds = app.credentials().await;

    let c = issue(&app, "hangzhou", "life-1").await;
    assert_eq!(c.status, v1::CredentialStatus::Active as i32);
    assert_eq!(c.issuer_city, "hangzhou");
    assert!(c.kid.starts_with("hangzhou-"));
    assert_eq!(c.token.split('.').count(), 3);

    let got = creds
        .get_credential(authed(v1::GetCredentialRequest { id: c.id.clone() }, &hz))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(got, c);

    let v = verify_id(&app, &c.id).await;
    assert!(v.valid, "{v:?}");
    assert_eq!(v.checks.len(), 5);
    assert_eq!(v.status, v1::CredentialStatus::Active as i32);
    let claims = v.claims.unwrap();
    assert_eq!(claims.credential_id, c.id);
    assert_eq!(claims.qualification.unwrap().level, 4);

    let s = creds
        .suspend_credential(authed(suspend("life-2", &c.id, "under investigation"), &hz))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(s.status, v1::CredentialStatus::Suspended as i32);
    assert_eq!(s.status_reason, "under investigation");
    let v = verify_token(&app, &c.token, "").await;
    assert!(!v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Signature),
        v1::CheckOutcome::Passed
    );
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Status),
        v1::CheckOutcome::Failed
    );

    let r = creds
        .reinstate_credential(authed(reinstate("life-3", &c.id, "cleared"), &hz))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(r.status, v1::CredentialStatus::Active as i32);
    assert!(verify_token(&app, &c.token, "").await.valid);

    let r = creds
        .revoke_credential(authed(revoke("life-4", &c.id, "obtained by fraud"), &hz))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(r.status, v1::CredentialStatus::Revoked as i32);
    let v = verify_token(&app, &c.token, "").await;
    assert!(!v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Status),
        v1::CheckOutcome::Failed
    );
    assert_eq!(v.status, v1::CredentialStatus::Revoked as i32);

    // Revoked is final.
    let err = creds
        .reinstate_credential(authed(reinstate("life-5", &c.id, "oops"), &hz))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = creds
        .suspend_credential(authed(suspend("life-6", &c.id, "again"), &hz))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Every change is in the audit trail, in order; verifications too.
    let actions = wait_for_audit(&app, &c.id, "credential.verified", 4).await;
    let changes: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "credential.verified")
        .collect();
    assert_eq!(
        changes,
        [
            "credential.issued",
            "credential.suspended",
            "credential.reinstated",
            "credential.revoked"
        ]
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "credential.verified")
            .count(),
        4
    );
}

#[tokio::test]
async fn a_city_manages_only_its_own_credentials() {
    let app = TestApp::spawn().await;
    let hefei = issue(&app, "hefei", "hf-1").await;
    let hz = app.issuer("hangzhou");
    let mut creds = app.credentials().await;

    let err = creds
        .suspend_credential(authed(suspend("x-1", &hefei.id, "not mine"), &hz))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = creds
        .revoke_credential(authed(revoke("x-2", &hefei.id, "not mine"), &hz))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = creds
        .get_credential(authed(
            v1::GetCredentialRequest {
                id: hefei.id.clone(),
            },
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Issuing in another city's name is refused too.
    let err = creds
        .issue_credential(authed(
            issue_request("x-3", "hefei", "34010119900101123"),
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A verifier only verifies.
    let emp = app.verifier();
    let err = creds
        .issue_credential(authed(
            issue_request("x-4", "hangzhou", "34010119900101123"),
            &emp,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = creds
        .revoke_credential(authed(revoke("x-5", &hefei.id, "no"), &emp))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = creds
        .list_credentials(authed(v1::ListCredentialsRequest::default(), &emp))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Nothing changed.
    assert!(verify_id(&app, &hefei.id).await.valid);
    // An auditor may read any city's credentials.
    let auditor = app.token("auditor-1", None, &["auditor"]);
    assert!(
        creds
            .get_credential(authed(
                v1::GetCredentialRequest {
                    id: hefei.id.clone()
                },
                &auditor
            ))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn bad_input_gets_field_violations_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let hz = app.issuer("hangzhou");
    let mut creds = app.credentials().await;

    let mut req = issue_request("bad-1", "hangzhou", "33010619900101123");
    req.qualification = Some(v1::Qualification {
        category: v1::QualificationCategory::SkillLevel.into(),
        series: "Electrician!".into(),
        level: 9,
        title: String::new(),
    });
    req.holder_national_id = "330106199001011230".into(); // wrong check digit
    req.holder_name = String::new();
    let err = creds.issue_credential(authed(req, &hz)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        [
            "holder_name",
            "holder_national_id",
            "qualification.level",
            "qualification.series",
            "qualification.title"
        ]
    );
    // The national ID is not echoed back.
    assert!(!err.message().contains("330106199001011230"));

    let mut req = issue_request("bad-2", "hangzhou", "33010619900101123");
    req.valid_from = Some(prost_types::Timestamp {
        seconds: 2_000_000_000,
        nanos: 0,
    });
    req.valid_until = Some(prost_types::Timestamp {
        seconds: 1_900_000_000,
        nanos: 0,
    });
    let err = creds.issue_credential(authed(req, &hz)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["valid_until"]);

    let mut req = issue_request("", "hangzhou", "33010619900101123");
    req.qualification = None;
    let err = creds.issue_credential(authed(req, &hz)).await.unwrap_err();
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, ["qualification", "request_id"]);

    let err = creds
        .revoke_credential(authed(revoke("bad-3", "not-a-uuid", ""), &hz))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, ["id", "reason"]);

    let err = creds
        .get_credential(authed(
            v1::GetCredentialRequest {
                id: uuid::Uuid::new_v4().to_string(),
            },
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = creds
        .revoke_credential(authed(
            revoke("bad-4", &uuid::Uuid::new_v4().to_string(), "x"),
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // An issuer of a city that is not in the corridor.
    let nowhere = app.issuer("atlantis");
    let err = creds
        .issue_credential(authed(
            issue_request("bad-5", "atlantis", "33010619900101123"),
            &nowhere,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Nothing was written by any of it.
    let list = creds
        .list_credentials(authed(v1::ListCredentialsRequest::default(), &hz))
        .await
        .unwrap()
        .into_inner();
    assert!(list.credentials.is_empty());
}

#[tokio::test]
async fn listing_pages_and_filters() {
    let app = TestApp::spawn().await;
    let hz = app.issuer("hangzhou");
    let mut creds = app.credentials().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut req = issue_request(
            &format!("list-{i}"),
            "hangzhou",
            &format!("3301061990010112{i}"),
        );
        if i % 2 == 1 {
            req.qualification = Some(v1::Qualification {
                category: v1::QualificationCategory::SkillLevel.into(),
                series: "electrician".into(),
                level: 5,
                title: "技师".into(),
            });
        }
        let c = creds
            .issue_credential(authed(req, &hz))
            .await
            .unwrap()
            .into_inner()
            .credential
            .unwrap();
        ids.push(c.id);
    }
    issue(&app, "hefei", "other-city").await;

    // Pages of 3, newest first, no duplicates, nothing missed.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = creds
            .list_credentials(authed(
                v1::ListCredentialsRequest {
                    page_size: 3,
                    page_token: token.clone(),
                    ..Default::default()
                },
                &hz,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.credentials.len() <= 3);
        seen.extend(page.credentials.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "an issuer lists its own city, newest first");

    // Filters.
    let skills = creds
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                category: v1::QualificationCategory::SkillLevel.into(),
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(skills.credentials.len(), 3);
    let holder = creds
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                holder_national_id: corridor_tests::national_id("33010619900101122"),
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(holder.credentials.len(), 1);
    assert_eq!(holder.credentials[0].id, ids[2]);
    creds
        .revoke_credential(authed(revoke("list-r", &ids[0], "test"), &hz))
        .await
        .unwrap();
    let revoked = creds
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                status: v1::CredentialStatus::Revoked.into(),
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        revoked
            .credentials
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>(),
        [ids[0].clone()]
    );

    // An issuer cannot list another city; an auditor sees all cities.
    let err = creds
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                issuer_city: "hefei".into(),
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let auditor = app.token("auditor-1", None, &["auditor"]);
    let all = creds
        .list_credentials(authed(v1::ListCredentialsRequest::default(), &auditor))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.credentials.len(), 8);

    // A page token is bound to its filters; garbage is refused.
    let page = creds
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                page_size: 2,
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap()
        .into_inner();
    let err = creds
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                page_size: 2,
                page_token: page.next_page_token,
                category: v1::QualificationCategory::SkillLevel.into(),
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["page_token"]);
    let err = creds
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["page_token"]);
    let err = creds
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                page_size: -1,
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["page_size"]);
}

/// Regression (architecture issue, defect 2): ListCredentials with a
/// well-formed code of no corridor city answered OK with an empty list,
/// where every other RPC answers NOT_FOUND "no corridor city". Now it is
/// NOT_FOUND too, with the field named.
#[tokio::test]
async fn listing_an_unknown_city_is_not_found() {
    let app = TestApp::spawn().await;
    let err = app
        .credentials()
        .await
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                issuer_city: "atlantis".into(),
                ..Default::default()
            },
            &app.token("auditor", None, &["auditor"]),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(violated_fields(&err), ["issuer_city"]);
    assert!(err.message().contains("no corridor city atlantis"));
}

/// The schema refuses what the domain does not know, whoever writes: a
/// credential status, category or level, a key status, a recognition status,
/// remembered status or outcome written by hand is an error.
#[tokio::test]
async fn the_schema_refuses_unknown_statuses() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let c = issue(&app, "hangzhou", "check-1").await;
    for sql in [
        format!(
            "UPDATE credentials SET status = 'paused' WHERE id = '{}'",
            c.id
        ),
        format!(
            "UPDATE credentials SET category = 'HOBBY' WHERE id = '{}'",
            c.id
        ),
        format!("UPDATE credentials SET level = 9 WHERE id = '{}'", c.id),
        "UPDATE issuer_keys SET status = 'lost'".to_owned(),
        "UPDATE issuer_keys SET not_after = now() WHERE status = 'current'".to_owned(),
    ] {
        let r = app.db.execute_unprepared(&sql).await;
        assert!(r.is_err(), "{sql} was accepted");
    }
    // Recognitions: status, remembered status, outcome.
    let mut rec = corridor_proto::v1::recognition_service_client::RecognitionServiceClient::new(
        app.raw_channel().await,
    );
    let r = rec
        .request_recognition(authed(
            v1::RequestRecognitionRequest {
                request_id: "check-r".into(),
                credential_id: c.id.clone(),
                target_city: "hefei".into(),
                facts: None,
            },
            &app.token("hf-office", Some("hefei"), &["recognizer"]),
        ))
        .await
        .unwrap()
        .into_inner()
        .recognition
        .unwrap();
    for set in [
        "status = 'closed'",
        "status = 'suspended'",
        "status = 'suspended', suspended_from = 'void'",
        "suspended_from = 'open'",
        "outcome = 'MAYBE'",
        "status = 'open', outcome = 'RECOGNIZED'",
    ] {
        let sql = format!("UPDATE recognitions SET {set} WHERE id = '{}'", r.id);
        let res = app.db.execute_unprepared(&sql).await;
        assert!(res.is_err(), "{sql} was accepted");
    }
    app.db
        .execute_unprepared(&format!(
            "UPDATE recognitions SET status = 'suspended', suspended_from = 'decided' WHERE id = '{}'",
            r.id
        ))
        .await
        .unwrap();
    // And what the domain knows is accepted.
    app.db
        .execute_unprepared(&format!(
            "UPDATE credentials SET status = 'suspended' WHERE id = '{}'",
            c.id
        ))
        .await
        .unwrap();
}
