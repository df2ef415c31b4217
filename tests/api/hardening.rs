//! Regressions of the hardening issue: crafted requests that crashed the
//! process or slipped past a check. Each test here failed before its fix.

use corridor_proto::v1;
use corridor_proto::v1::policy_service_client::PolicyServiceClient;
use corridor_tests::{TestApp, authed};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Policies that overflowed Cedar's recursive parser and aborted the whole
/// server (SIGABRT): 200 nested parentheses (~450 bytes), a 40k-term sum,
/// 40k nested lists. The test server runs in this process, so an abort
/// fails the test binary. Every policy RPC that compiles is tried.
#[tokio::test]
async fn crafted_policies_are_refused_and_the_server_lives() {
    let app = TestApp::spawn().await;
    let mut p = PolicyServiceClient::new(app.raw_channel().await);
    let admin = app.token("hz-policy", Some("hangzhou"), &["policy_admin"]);
    let rule = |body: String| {
        format!(
            "@id(\"deep\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource)\nwhen {{ {body} }};\n"
        )
    };
    let crafted = [
        rule(format!("{}true{}", "(".repeat(200), ")".repeat(200))),
        rule(format!("resource.level == {}", vec!["1"; 40_000].join("+"))),
        rule(format!(
            "[{}1{}].contains(resource.level)",
            "[".repeat(40_000),
            "]".repeat(40_000)
        )),
    ];
    for (i, src) in crafted.iter().enumerate() {
        let v = p
            .validate_policy(authed(
                v1::ValidatePolicyRequest {
                    city: "hangzhou".into(),
                    source: src.clone(),
                },
                &admin,
            ))
            .await
            .expect("validate answers")
            .into_inner();
        assert!(!v.valid, "case {i}");
        assert!(
            v.diagnostics[0].message.contains("nest")
                || v.diagnostics[0].message.contains("operators"),
            "case {i}: {v:?}"
        );
        let e = p
            .publish_policy(authed(
                v1::PublishPolicyRequest {
                    request_id: format!("deep-{i}"),
                    city: "hangzhou".into(),
                    source: src.clone(),
                    effective_from: None,
                },
                &admin,
            ))
            .await
            .expect_err("publish refuses");
        assert_eq!(e.code(), Code::InvalidArgument, "case {i}");
        let e = p
            .simulate_policy(authed(
                v1::SimulatePolicyRequest {
                    city: "hangzhou".into(),
                    source: src.clone(),
                    ..Default::default()
                },
                &admin,
            ))
            .await
            .expect_err("simulate refuses");
        assert_eq!(e.code(), Code::InvalidArgument, "case {i}");
    }
    let health = HealthClient::new(app.raw_channel().await)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("still serving")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
}

/// Regression (performance issue, item 1): every database-backed call waited
/// about 40 ms. The accepted sockets had Nagle's algorithm on, so the
/// trailers of a unary answer (a second small write) waited for the client's
/// delayed ACK. Sequential calls of database-backed RPCs over real TCP: a
/// median over 10 ms is a stall (a healthy call takes about 1 ms; a 4x
/// margin on each side does not flake). IssueCredential is a transaction of
/// several statements over sqlx, which no longer sets `TCP_NODELAY` on its
/// Postgres sockets (sqlx 0.9.0, TLS negotiated here): a stall there shows
/// up in its median too.
#[tokio::test]
async fn sequential_database_calls_do_not_stall() {
    use std::time::{Duration, Instant};
    let app = TestApp::spawn().await;
    let c = crate::support::issue(&app, "hangzhou", "stall-0").await;
    let mut creds = app.credentials().await;
    let mut verify = app.verification().await;
    let issuer = app.issuer("hangzhou");
    let employer = app.verifier();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut get, mut issue, mut check) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..30 {
        let t = Instant::now();
        creds
            .get_credential(authed(
                v1::GetCredentialRequest { id: c.id.clone() },
                &issuer,
            ))
            .await
            .expect("get");
        get.push(t.elapsed());
        let t = Instant::now();
        creds
            .issue_credential(authed(
                crate::support::issue_request(
                    &format!("stall-{i}"),
                    "hangzhou",
                    "33010619900101123",
                ),
                &issuer,
            ))
            .await
            .expect("issue");
        issue.push(t.elapsed());
        let t = Instant::now();
        verify
            .verify_credential(authed(
                v1::VerifyCredentialRequest {
                    credential: Some(v1::verify_credential_request::Credential::Token(
                        c.token.clone(),
                    )),
                    ..Default::default()
                },
                &employer,
            ))
            .await
            .expect("verify");
        check.push(t.elapsed());
    }
    for (rpc, took) in [
        ("GetCredential", get),
        ("IssueCredential", issue),
        ("VerifyCredential", check),
    ] {
        let p50 = median(took);
        eprintln!("{rpc} p50 {p50:?}");
        assert!(
            p50 < Duration::from_millis(10),
            "median {rpc} took {p50:?}: a Nagle/delayed-ACK stall is back"
        );
    }
}
