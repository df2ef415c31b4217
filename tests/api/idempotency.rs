//! Retries: the same request id returns the original result; the same id
//! with another payload is refused, also when both arrive at once.

use corridor_proto::v1;
use corridor_server::store::entities::credential;
use corridor_tests::{TestApp, authed};
use sea_orm::{EntityTrait, PaginatorTrait};
use tonic::Code;

use crate::support::*;

async fn count(app: &TestApp) -> u64 {
    credential::Entity::find().count(&app.db).await.unwrap()
}

#[tokio::test]
async fn a_retried_issuance_returns_the_same_credential() {
    let app = TestApp::spawn().await;
    let hz = app.issuer("hangzhou");
    let mut creds = app.credentials().await;
    let req = issue_request("same-1", "hangzhou", "33010619900101123");
    let a = creds
        .issue_credential(authed(req.clone(), &hz))
        .await
        .unwrap()
        .into_inner();
    let b = creds
        .issue_credential(authed(req.clone(), &hz))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(count(&app).await, 1);

    let mut other = req.clone();
    other.holder_name = "李四".into();
    let err = creds
        .issue_credential(authed(other, &hz))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // Same id, another operation: also a different request.
    let err = creds
        .revoke_credential(authed(
            v1::RevokeCredentialRequest {
                request_id: "same-1".into(),
                id: a.credential.clone().unwrap().id,
                reason: "x".into(),
            },
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(count(&app).await, 1);

    // Request ids are per caller: another subject may use the same id.
    let other_caller = app.token("hangzhou-hr-2", Some("hangzhou"), &["issuer"]);
    creds
        .issue_credential(authed(req, &other_caller))
        .await
        .unwrap();
    assert_eq!(count(&app).await, 2);

    // A retried revocation answers as the first did, not FAILED_PRECONDITION.
    let id = a.credential.unwrap().id;
    let rev = v1::RevokeCredentialRequest {
        request_id: "rev-1".into(),
        id,
        reason: "fraud".into(),
    };
    let r1 = creds
        .revoke_credential(authed(rev.clone(), &hz))
        .await
        .unwrap()
        .into_inner();
    let r2 = creds
        .revoke_credential(authed(rev, &hz))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r1, r2);
}

#[tokio::test]
async fn concurrent_retries_issue_once() {
    let app = TestApp::spawn().await;
    let hz = app.issuer("hangzhou");
    for round in 0..5 {
        let req = issue_request(&format!("conc-{round}"), "hangzhou", "33010619900101123");
        let (mut c1, mut c2, mut c3) = (
            app.credentials().await,
            app.credentials().await,
            app.credentials().await,
        );
        let (a, b, c) = tokio::join!(
            c1.issue_credential(authed(req.clone(), &hz)),
            c2.issue_credential(authed(req.clone(), &hz)),
            c3.issue_credential(authed(req.clone(), &hz)),
        );
        let (a, b, c) = (
            a.unwrap().into_inner(),
            b.unwrap().into_inner(),
            c.unwrap().into_inner(),
        );
        assert_eq!(a, b);
        assert_eq!(a, c);
    }
    assert_eq!(count(&app).await, 5);
}

#[tokio::test]
async fn concurrent_conflicting_retries_are_refused() {
    let app = TestApp::spawn().await;
    let hz = app.issuer("hangzhou");
    for round in 0..5 {
        let req = issue_request(&format!("clash-{round}"), "hangzhou", "33010619900101123");
        let mut other = req.clone();
        other.holder_name = "李四".into();
        let (mut c1, mut c2) = (app.credentials().await, app.credentials().await);
        let (a, b) = tokio::join!(
            c1.issue_credential(authed(req, &hz)),
            c2.issue_credential(authed(other, &hz)),
        );
        let codes = [
            a.map(|_| Code::Ok).unwrap_or_else(|s| s.code()),
            b.map(|_| Code::Ok).unwrap_or_else(|s| s.code()),
        ];
        assert!(codes.contains(&Code::Ok), "{codes:?}");
        assert!(codes.contains(&Code::AlreadyExists), "{codes:?}");
    }
    assert_eq!(count(&app).await, 5);
}
