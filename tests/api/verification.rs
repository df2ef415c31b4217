//! VerificationService: tampering, holder binding, validity, bad input.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corridor_proto::v1;
use corridor_tests::{TestApp, authed, national_id, violated_fields};
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn a_tampered_credential_fails_its_signature_check() {
    let app = TestApp::spawn().await;
    let c = issue(&app, "hangzhou", "t-1").await;
    let parts: Vec<&str> = c.token.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert!(payload.contains("\"level\":4"));
    let forged_payload = URL_SAFE_NO_PAD.encode(payload.replace("\"level\":4", "\"level\":5"));
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);

    let v = verify_token(&app, &forged, "").await;
    assert!(!v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Signature),
        v1::CheckOutcome::Failed
    );
    assert!(
        v.claims.is_none(),
        "claims of a forged token must not be returned"
    );

    // A flipped signature byte fails as well.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    let v = verify_token(&app, &bad_sig, "").await;
    assert!(!v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Signature),
        v1::CheckOutcome::Failed
    );

    // Garbage is an answer, not an error.
    let v = verify_token(&app, "not.a.token", "").await;
    assert!(!v.valid);
    // The genuine token still verifies.
    assert!(verify_token(&app, &c.token, "").await.valid);
}

#[tokio::test]
async fn holder_binding() {
    let app = TestApp::spawn().await;
    let c = issue(&app, "hangzhou", "h-1").await; // holder 33010619900101123x
    let holder = national_id("33010619900101123");
    let other = national_id("33010619900101124");

    let v = verify_token(&app, &c.token, &holder).await;
    assert!(v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Holder),
        v1::CheckOutcome::Passed
    );

    let v = verify_token(&app, &c.token, &other).await;
    assert!(!v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Holder),
        v1::CheckOutcome::Failed
    );

    let v = verify_token(&app, &c.token, "").await;
    assert!(v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Holder),
        v1::CheckOutcome::Skipped
    );

    let err = app
        .verification()
        .await
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::Token(
                    c.token.clone(),
                )),
                holder_national_id: "12345".into(),
                recognition_city: String::new(),
            },
            &app.verifier(),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["holder_national_id"]);
}

#[tokio::test]
async fn validity_window_is_checked() {
    let app = TestApp::spawn().await;
    let mut req = issue_request("w-1", "hangzhou", "33010619900101123");
    let now = chrono::Utc::now().timestamp();
    req.valid_from = Some(prost_types::Timestamp {
        seconds: now - 2 * 365 * 86_400,
        nanos: 0,
    });
    req.valid_until = Some(prost_types::Timestamp {
        seconds: now - 365 * 86_400,
        nanos: 0,
    });
    let expired = app
        .credentials()
        .await
        .issue_credential(authed(req, &app.issuer("hangzhou")))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    let v = verify_id(&app, &expired.id).await;
    assert!(!v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::ValidityWindow),
        v1::CheckOutcome::Failed
    );
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Signature),
        v1::CheckOutcome::Passed
    );

    let mut req = issue_request("w-2", "hangzhou", "33010619900101123");
    req.valid_from = Some(prost_types::Timestamp {
        seconds: now + 86_400,
        nanos: 0,
    });
    let future = app
        .credentials()
        .await
        .issue_credential(authed(req, &app.issuer("hangzhou")))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    let v = verify_id(&app, &future.id).await;
    assert!(!v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::ValidityWindow),
        v1::CheckOutcome::Failed
    );
}

#[tokio::test]
async fn verify_bad_requests() {
    let app = TestApp::spawn().await;
    let mut ver = app.verification().await;
    let emp = app.verifier();
    let err = ver
        .verify_credential(authed(v1::VerifyCredentialRequest::default(), &emp))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["credential"]);
    let err = ver
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::CredentialId(
                    uuid::Uuid::new_v4().to_string(),
                )),
                holder_national_id: String::new(),
                recognition_city: String::new(),
            },
            &emp,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = ver
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::Token(
                    "x".repeat(20_000),
                )),
                holder_national_id: String::new(),
                recognition_city: String::new(),
            },
            &emp,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["token"]);
    // A token from an unknown key.
    let c = issue(&app, "hangzhou", "u-1").await;
    let parts: Vec<&str> = c.token.split('.').collect();
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"vc+jwt","alg":"EdDSA","kid":"made-up-kid"}"#);
    let v = verify_token(&app, &format!("{header}.{}.{}", parts[1], parts[2]), "").await;
    assert!(!v.valid);
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Issuer),
        v1::CheckOutcome::Failed
    );
}

#[tokio::test]
async fn a_validly_signed_token_that_is_not_the_registered_one_fails() {
    // Someone holding a city key (leaked, or retired but cached) signs a
    // better qualification under the id of a real, active credential.
    use corridor_domain::keys::IssuerSigningKey;
    use corridor_server::store::keys as key_store;
    let app = TestApp::spawn().await;
    let c = issue(&app, "hangzhou", "forge-1").await;
    let city = corridor_domain::city::CityCode::parse("c", "hangzhou").unwrap();
    let row = key_store::current(&app.db, &city, key_store::Lock::None)
        .await
        .unwrap()
        .unwrap();
    let kek = corridor_server::config::Settings::default()
        .with_dev_defaults()
        .kek()
        .unwrap();
    let key =
        IssuerSigningKey::unseal(&row.kid, city.clone(), &row.sealed_private_key, &kek).unwrap();
    let claims = corridor_domain::vc::CredentialClaims {
        id: uuid::Uuid::parse_str(&c.id).unwrap(),
        issuer_city: city,
        qualification: corridor_domain::qualification::Qualification::parse(
            "q",
            Some(corridor_domain::qualification::Category::ProfessionalTitle),
            "engineering",
            5,
            "正高级工程师",
        )
        .unwrap(),
        holder_name: "张三".into(),
        window: corridor_domain::credential::ValidityWindow {
            from: chrono::Utc::now(),
            until: None,
        },
        issued_at: chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap(),
        status: Vec::new(),
    };
    let forged = corridor_domain::vc::sign(&key, &claims).unwrap();
    let v = verify_token(&app, &forged, "").await;
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Signature),
        v1::CheckOutcome::Passed
    );
    assert_eq!(
        outcome(&v, v1::VerificationCheck::Status),
        v1::CheckOutcome::Failed
    );
    assert!(!v.valid, "{v:?}");
    // The genuine token still verifies.
    assert!(verify_token(&app, &c.token, "").await.valid);
}

#[tokio::test]
async fn guessing_the_holder_is_throttled() {
    let app = TestApp::spawn().await;
    let c = issue(&app, "hangzhou", "guess-1").await;
    let mut ver = app.verification().await;
    let emp = app.verifier();
    let guess = |n: u32| v1::VerifyCredentialRequest {
        credential: Some(v1::verify_credential_request::Credential::CredentialId(
            c.id.clone(),
        )),
        holder_national_id: national_id(&format!("3301061990010{:04}", 2000 + n)),
        recognition_city: String::new(),
    };
    for n in 0..5 {
        let v = ver
            .verify_credential(authed(guess(n), &emp))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            outcome(&v, v1::VerificationCheck::Holder),
            v1::CheckOutcome::Failed
        );
    }
    let err = ver
        .verify_credential(authed(guess(6), &emp))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Even the right number is not checked for this caller now; others may.
    let mut right = guess(0);
    right.holder_national_id = national_id("33010619900101123");
    assert_eq!(
        ver.verify_credential(authed(right.clone(), &emp))
            .await
            .unwrap_err()
            .code(),
        Code::ResourceExhausted
    );
    let other = app.token("employer-2", None, &["verifier"]);
    let v = ver
        .verify_credential(authed(right, &other))
        .await
        .unwrap()
        .into_inner();
    assert!(v.valid);
    // Verifying without a holder check is not throttled.
    assert!(verify_id(&app, &c.id).await.valid);
    let actions = wait_for_audit(&app, &c.id, "credential.verified", 7).await;
    assert!(
        actions
            .iter()
            .filter(|a| *a == "credential.verified")
            .count()
            >= 7
    );
}
