//! Caller authentication: every protected RPC refuses anything but a valid
//! token from the configured identity provider.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use corridor_domain::caller::IdentityMinter;
use corridor_proto::v1;
use corridor_tests::{TestApp, authed};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Code;

use crate::support::issue_request;

async fn issue_with(app: &TestApp, token: Option<&str>) -> Code {
    let req = issue_request("auth-1", "hangzhou", "33010619900101123");
    let req = match token {
        Some(t) => authed(req, t),
        None => tonic::Request::new(req),
    };
    match app.credentials().await.issue_credential(req).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let good = app.minter.claims(
        "hz-hr",
        Some("hangzhou"),
        &["issuer"],
        now,
        chrono::Duration::minutes(5),
    );
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());

    // No token at all; not a bearer token; garbage.
    assert_eq!(issue_with(&app, None).await, Code::Unauthenticated);
    assert_eq!(
        issue_with(&app, Some("garbage")).await,
        Code::Unauthenticated
    );

    // alg: none, unsigned.
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": "dev-idp-1"})),
        b64(&serde_json::to_value(&good).unwrap())
    );
    assert_eq!(issue_with(&app, Some(&none)).await, Code::Unauthenticated);

    // HS256, keyed with the identity provider's public key (algorithm confusion).
    let (_, public) =
        corridor_server::config::dev_identity_minter(corridor_server::config::DEFAULT_AUDIENCE);
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("dev-idp-1".into());
    let hs = jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(&public)).unwrap();
    assert_eq!(issue_with(&app, Some(&hs)).await, Code::Unauthenticated);

    // Expired (beyond the leeway).
    let mut c = good.clone();
    c.exp = (now - chrono::Duration::minutes(5)).timestamp();
    c.nbf = (now - chrono::Duration::minutes(10)).timestamp();
    assert_eq!(
        issue_with(&app, Some(&app.minter.sign(&c).unwrap())).await,
        Code::Unauthenticated
    );

    // Wrong audience; wrong issuer.
    let mut c = good.clone();
    c.aud = "another-service".into();
    assert_eq!(
        issue_with(&app, Some(&app.minter.sign(&c).unwrap())).await,
        Code::Unauthenticated
    );
    let mut c = good.clone();
    c.iss = "https://evil.example".into();
    assert_eq!(
        issue_with(&app, Some(&app.minter.sign(&c).unwrap())).await,
        Code::Unauthenticated
    );

    // Tampered: the payload changed after signing (a verifier made issuer).
    let genuine = app.minter.sign(&good).unwrap();
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut forged_claims = serde_json::to_value(&good).unwrap();
    forged_claims["roles"] = serde_json::json!(["issuer", "corridor_admin"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged_claims), parts[2]);
    assert_eq!(
        issue_with(&app, Some(&tampered)).await,
        Code::Unauthenticated
    );

    // Signed by a key the server does not trust, under the trusted kid.
    let (rogue, _) = IdentityMinter::from_seed(
        "dev-idp-1",
        [42; 32],
        corridor_server::config::DEV_IDP_ISSUER,
        corridor_server::config::DEFAULT_AUDIENCE,
    );
    assert_eq!(
        issue_with(&app, Some(&rogue.sign(&good).unwrap())).await,
        Code::Unauthenticated
    );

    // Missing sub.
    let mut v = serde_json::to_value(&good).unwrap();
    v.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        issue_with(&app, Some(&app.minter.sign(&v).unwrap())).await,
        Code::Unauthenticated
    );

    // And the genuine token works, so the refusals above are about the token.
    assert_eq!(issue_with(&app, Some(&genuine)).await, Code::Ok);
}

#[tokio::test]
async fn every_protected_rpc_needs_a_token() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut creds = app.credentials().await;
    let codes = [
        creds
            .get_credential(v1::GetCredentialRequest { id: id.clone() })
            .await
            .map(|_| ()),
        creds
            .list_credentials(v1::ListCredentialsRequest::default())
            .await
            .map(|_| ()),
        creds
            .suspend_credential(v1::SuspendCredentialRequest {
                request_id: "a".into(),
                id: id.clone(),
                reason: "r".into(),
            })
            .await
            .map(|_| ()),
        creds
            .reinstate_credential(v1::ReinstateCredentialRequest {
                request_id: "a".into(),
                id: id.clone(),
                reason: "r".into(),
            })
            .await
            .map(|_| ()),
        creds
            .revoke_credential(v1::RevokeCredentialRequest {
                request_id: "a".into(),
                id: id.clone(),
                reason: "r".into(),
            })
            .await
            .map(|_| ()),
        app.verification()
            .await
            .verify_credential(v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::CredentialId(
                    id.clone(),
                )),
                holder_national_id: String::new(),
                recognition_city: String::new(),
            })
            .await
            .map(|_| ()),
        app.cities()
            .await
            .rotate_issuer_key(v1::RotateIssuerKeyRequest {
                request_id: "a".into(),
                city: "hangzhou".into(),
            })
            .await
            .map(|_| ()),
    ];
    for (i, r) in codes.into_iter().enumerate() {
        assert_eq!(r.unwrap_err().code(), Code::Unauthenticated, "rpc #{i}");
    }
}

/// Regression (architecture issue, defect 1): a token without `iat` was
/// refused (the README lists only iss, aud, sub, exp, nbf, city, roles), and
/// so was an `aud` array, which RFC 7519 allows. Both are accepted now; an
/// array without our audience is still refused.
#[tokio::test]
async fn tokens_without_iat_or_with_an_audience_array_are_accepted() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let good = app.minter.claims(
        "hz-hr",
        Some("hangzhou"),
        &["issuer"],
        now,
        chrono::Duration::minutes(5),
    );
    let mut no_iat = serde_json::to_value(&good).unwrap();
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(
        issue_with(&app, Some(&app.minter.sign(&no_iat).unwrap())).await,
        Code::Ok
    );
    let mut array = serde_json::to_value(&good).unwrap();
    array["aud"] =
        serde_json::json!(["another-service", corridor_server::config::DEFAULT_AUDIENCE]);
    let code = {
        let mut req = issue_request("auth-aud", "hangzhou", "33010619900101123");
        req.request_id = "auth-aud".into();
        match app
            .credentials()
            .await
            .issue_credential(authed(req, &app.minter.sign(&array).unwrap()))
            .await
        {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        }
    };
    assert_eq!(code, Code::Ok);
    array["aud"] = serde_json::json!(["another-service"]);
    assert_eq!(
        issue_with(&app, Some(&app.minter.sign(&array).unwrap())).await,
        Code::Unauthenticated
    );
}
