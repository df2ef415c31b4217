//! Offline verification: W3C Bitstring Status Lists and JWKS over plain
//! HTTP/1.1, the status entries credentials and attestations carry, and
//! attestations' validity and qualification.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corridor_domain::status_list::{Bitstring, LIST_SIZE};
use corridor_proto::v1;
use corridor_proto::v1::recognition_service_client::RecognitionServiceClient;
use corridor_tests::{HttpAnswer, TestApp, authed, http_get, violated_fields};
use serde_json::Value;

use crate::support::issue;

/// The `google.rpc.ErrorInfo` reason of an error, in our domain.
fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.domain, "talent.g60corridor.cn");
    info.reason
}

/// The claims of a compact JWS, unverified.
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("payload part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// `GET` of a URL the server published (under its HTTP port).
async fn get_url(app: &TestApp, url: &str) -> HttpAnswer {
    let base = format!("http://{}", app.http_addr);
    let path = url
        .strip_prefix(&base)
        .unwrap_or_else(|| panic!("{url} is not under {base}"));
    http_get(app.http_addr, path).await
}

/// Verifies `jwt` against the city's JWKS from the HTTP port, as a JOSE
/// library would, and returns its claims.
async fn verified(app: &TestApp, city: &str, jwt: &str) -> Value {
    let jwks = http_get(app.http_addr, &format!("/v1/cities/{city}/jwks")).await;
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    assert_eq!(
        jwks.header("content-type"),
        Some("application/jwk-set+json")
    );
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks.body).expect("a JWKS");
    let kid = jsonwebtoken::decode_header(jwt)
        .expect("header")
        .kid
        .expect("kid");
    let jwk = set.find(&kid).expect("the signing key is in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("an Ed25519 JWK");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(jwt, &key, &v)
        .expect("signature verifies with the published key")
        .claims
}

/// The entry of `purpose` in a credential's `credentialStatus`.
fn entry(claims: &Value, purpose: &str) -> (String, u32) {
    let entries = claims["credentialStatus"]
        .as_array()
        .expect("credentialStatus is a list");
    let e = entries
        .iter()
        .find(|e| e["statusPurpose"] == purpose)
        .unwrap_or_else(|| panic!("no {purpose} entry in {entries:?}"));
    assert_eq!(e["type"], "BitstringStatusListEntry");
    let url = e["statusListCredential"]
        .as_str()
        .expect("list URL")
        .to_owned();
    let index: u32 = e["statusListIndex"]
        .as_str()
        .expect("index is a string")
        .parse()
        .expect("decimal index");
    assert_eq!(e["id"], format!("{url}#{index}"));
    (url, index)
}

/// The bit of `index` in the list at `url`, fetched over HTTP and checked
/// as a verifier would: signature, issuer, purpose.
async fn bit(app: &TestApp, city: &str, url: &str, index: u32) -> bool {
    let answer = get_url(app, url).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/vc+jwt"));
    // Cached for what is left of the list's 60 s.
    let max_age: u64 = answer
        .header("cache-control")
        .and_then(|v| v.strip_prefix("public, max-age="))
        .and_then(|n| n.parse().ok())
        .expect("public, max-age=N");
    assert!((1..=60).contains(&max_age), "{max_age}");
    let list = verified(app, city, &answer.body).await;
    assert_eq!(list["id"], url);
    assert_eq!(list["issuer"], format!("urn:g60:city:{city}"));
    assert_eq!(list["type"][1], "BitstringStatusListCredential");
    let subject = &list["credentialSubject"];
    assert_eq!(subject["type"], "BitstringStatusList");
    assert!(url.ends_with(subject["statusPurpose"].as_str().expect("purpose")));
    assert_eq!(subject["ttl"], 60_000);
    let bits = Bitstring::decode(subject["encodedList"].as_str().expect("encodedList"))
        .expect("a 131,072-bit GZIP list");
    bits.get(index)
}

async fn change(app: &TestApp, id: &str, what: &str) {
    let mut c = app.credentials().await;
    let token = app.issuer("hangzhou");
    let rid = format!("{what}-{id}");
    let reason = "checked by the offline tests".to_owned();
    match what {
        "suspend" => c
            .suspend_credential(authed(
                v1::SuspendCredentialRequest {
                    request_id: rid,
                    id: id.into(),
                    reason,
                },
                &token,
            ))
            .await
            .map(|_| ()),
        "reinstate" => c
            .reinstate_credential(authed(
                v1::ReinstateCredentialRequest {
                    request_id: rid,
                    id: id.into(),
                    reason,
                },
                &token,
            ))
            .await
            .map(|_| ()),
        _ => c
            .revoke_credential(authed(
                v1::RevokeCredentialRequest {
                    request_id: rid,
                    id: id.into(),
                    reason,
                },
                &token,
            ))
            .await
            .map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{what}: {e}"));
}

#[tokio::test]
async fn status_changes_flip_the_credentials_bits_in_the_published_lists() {
    let app = TestApp::spawn().await;
    let c = issue(&app, "hangzhou", "offline-1").await;
    let other = issue(&app, "hangzhou", "offline-2").await;
    let claims = verified(&app, "hangzhou", &c.token).await;
    let (revocation, index) = entry(&claims, "revocation");
    let (suspension, same) = entry(&claims, "suspension");
    assert_eq!(index, same, "one index in both lists");
    assert!(index < LIST_SIZE);
    let base = format!("http://{}/v1/status/hangzhou/0/", app.http_addr);
    assert_eq!(revocation, format!("{base}revocation"));
    assert_eq!(suspension, format!("{base}suspension"));
    let (_, other_index) = entry(&payload(&other.token), "revocation");
    assert_ne!(index, other_index, "two credentials never share an entry");

    assert!(!bit(&app, "hangzhou", &revocation, index).await);
    assert!(!bit(&app, "hangzhou", &suspension, index).await);

    change(&app, &c.id, "suspend").await;
    assert!(bit(&app, "hangzhou", &suspension, index).await);
    assert!(!bit(&app, "hangzhou", &revocation, index).await);
    let one = http_get(
        app.http_addr,
        &format!("/v1/status/hangzhou/0/entries/{index}"),
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.body);
    let one: Value = serde_json::from_str(&one.body).expect("JSON");
    assert_eq!(
        (one["revoked"].clone(), one["suspended"].clone()),
        (false.into(), true.into())
    );

    change(&app, &c.id, "reinstate").await;
    assert!(!bit(&app, "hangzhou", &suspension, index).await);

    change(&app, &c.id, "revoke").await;
    assert!(bit(&app, "hangzhou", &revocation, index).await);
    assert!(!bit(&app, "hangzhou", &revocation, other_index).await);

    // The gRPC equivalent serves the same list.
    let listed = app
        .cities()
        .await
        .get_status_list(v1::GetStatusListRequest {
            city: "hangzhou".into(),
            list: 0,
            purpose: v1::StatusPurpose::Revocation.into(),
        })
        .await
        .expect("GetStatusList")
        .into_inner();
    assert_eq!(listed.max_age_seconds, 60);
    let list = verified(&app, "hangzhou", &listed.status_list_credential).await;
    let bits =
        Bitstring::decode(list["credentialSubject"]["encodedList"].as_str().unwrap()).unwrap();
    assert!(bits.get(index) && !bits.get(other_index));
}

#[tokio::test]
async fn a_voided_recognitions_attestation_is_revoked_offline() {
    let app = TestApp::spawn_with(|s| {
        s.attestations
            .validity_days_by_city
            .insert("hangzhou".into(), 30);
    })
    .await;
    // A Hefei title recognized in Hangzhou, and one in Suzhou (default validity).
    let c = issue(&app, "hefei", "att-1").await;
    let mut rec = RecognitionServiceClient::new(app.raw_channel().await);
    let mut decide = async |target: &str| {
        rec.request_recognition(authed(
            v1::RequestRecognitionRequest {
                request_id: format!("att-{target}"),
                credential_id: c.id.clone(),
                target_city: target.into(),
                facts: None,
            },
            &app.token(&format!("{target}-office"), Some(target), &["recognizer"]),
        ))
        .await
        .expect("recognition")
        .into_inner()
        .recognition
        .expect("recognition")
    };
    let hz = decide("hangzhou").await;
    let sz = decide("suzhou").await;
    let att = verified(&app, "hangzhou", &hz.attestation).await;
    assert_eq!(att["type"][1], "RecognitionAttestation");
    let day = 86_400;
    assert_eq!(
        att["exp"].as_i64().unwrap() - att["iat"].as_i64().unwrap(),
        30 * day
    );
    assert!(att["validUntil"].is_string());
    let q = &att["credentialSubject"]["qualification"];
    assert_eq!(
        (
            q["category"].as_str(),
            q["series"].as_str(),
            q["level"].as_i64()
        ),
        (Some("PROFESSIONAL_TITLE"), Some("engineering"), Some(4))
    );
    let sz_att = payload(&sz.attestation);
    assert_eq!(
        sz_att["exp"].as_i64().unwrap() - sz_att["iat"].as_i64().unwrap(),
        365 * day
    );

    // The attestation's entry is in the *target* city's lists.
    let (revocation, index) = entry(&att, "revocation");
    assert!(revocation.contains("/v1/status/hangzhou/"));
    let (sz_revocation, sz_index) = entry(&sz_att, "revocation");
    assert!(sz_revocation.contains("/v1/status/suzhou/"));
    assert!(!bit(&app, "hangzhou", &revocation, index).await);

    // Hefei revokes its title: both recognitions are void, and their
    // attestations say so offline.
    app.credentials()
        .await
        .revoke_credential(authed(
            v1::RevokeCredentialRequest {
                request_id: "att-revoke".into(),
                id: c.id.clone(),
                reason: "fraud".into(),
            },
            &app.issuer("hefei"),
        ))
        .await
        .expect("revoke");
    assert!(bit(&app, "hangzhou", &revocation, index).await);
    assert!(bit(&app, "suzhou", &sz_revocation, sz_index).await);
    // The credential's own bit, in Hefei's list.
    let (own, own_index) = entry(&payload(&c.token), "revocation");
    assert!(bit(&app, "hefei", &own, own_index).await);
}

#[tokio::test]
async fn a_credential_issued_on_another_replica_names_the_same_lists() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let mut creds = corridor_proto::v1::credential_service_client::CredentialServiceClient::new(
        replica.channel().await,
    );
    let c = creds
        .issue_credential(authed(
            crate::support::issue_request("replica-1", "hangzhou", "33010619900101123"),
            &app.issuer("hangzhou"),
        ))
        .await
        .expect("issue on the replica")
        .into_inner()
        .credential
        .expect("credential");
    let here = issue(&app, "hangzhou", "replica-2").await;
    let (url, index) = entry(&payload(&c.token), "revocation");
    let (url_here, index_here) = entry(&payload(&here.token), "revocation");
    assert_eq!(url, url_here);
    assert_ne!(index, index_here, "replicas hand out disjoint positions");
    change(&app, &c.id, "revoke").await;
    assert!(bit(&app, "hangzhou", &url, index).await);
}

#[tokio::test]
async fn bad_status_list_requests_get_precise_answers() {
    let app = TestApp::spawn().await;
    issue(&app, "hangzhou", "bad-1").await;
    let not_found = [
        "/v1/status/atlantis/0/revocation",
        "/v1/status/hangzhou/7/revocation",
        "/v1/status/suzhou/0/revocation",
        "/v1/status/hangzhou/0/expiry",
        "/v1/status/hangzhou/x/revocation",
        "/v1/cities/atlantis/jwks",
    ];
    for path in not_found {
        let a = http_get(app.http_addr, path).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        let body: Value = serde_json::from_str(&a.body).expect("JSON error");
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}");
        assert_eq!(a.header("cache-control"), Some("no-store"));
    }
    let a = http_get(app.http_addr, "/v1/status/hangzhou/0/entries/131072").await;
    assert_eq!(a.status, 400, "{}", a.body);
    let status = app
        .cities()
        .await
        .get_status_list(v1::GetStatusListRequest {
            city: "hangzhou".into(),
            list: 0,
            purpose: v1::StatusPurpose::Unspecified.into(),
        })
        .await
        .expect_err("no purpose");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["purpose"]);
    assert_eq!(reason(&status), "INVALID_FIELDS");
}

#[tokio::test]
async fn without_a_public_url_credentials_carry_no_status() {
    let app = TestApp::spawn_with(|s| {
        s.http.listen = None;
        s.http.public_url = None;
    })
    .await;
    let c = issue(&app, "hangzhou", "nostatus-1").await;
    assert!(payload(&c.token).get("credentialStatus").is_none());
    let status = app
        .cities()
        .await
        .get_status_list(v1::GetStatusListRequest {
            city: "hangzhou".into(),
            list: 0,
            purpose: v1::StatusPurpose::Revocation.into(),
        })
        .await
        .expect_err("no lists");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&status), "STATUS_LISTS_NOT_PUBLISHED");
}

#[tokio::test]
async fn an_attestation_ends_when_its_credential_does() {
    let app = TestApp::spawn().await;
    let until = chrono::Utc::now().timestamp() + 10 * 86_400;
    let mut req = crate::support::issue_request("ends-1", "hefei", "34010419900202002");
    req.valid_until = Some(prost_types::Timestamp {
        seconds: until,
        nanos: 0,
    });
    let c = app
        .credentials()
        .await
        .issue_credential(authed(req, &app.issuer("hefei")))
        .await
        .expect("issue")
        .into_inner()
        .credential
        .expect("credential");
    let r = RecognitionServiceClient::new(app.raw_channel().await)
        .request_recognition(authed(
            v1::RequestRecognitionRequest {
                request_id: "ends-r".into(),
                credential_id: c.id.clone(),
                target_city: "hangzhou".into(),
                facts: None,
            },
            &app.token("hangzhou-office", Some("hangzhou"), &["recognizer"]),
        ))
        .await
        .expect("recognition")
        .into_inner()
        .recognition
        .expect("recognition");
    // A year by default, but not past the credential's own end.
    assert_eq!(payload(&r.attestation)["exp"].as_i64(), Some(until));
}
