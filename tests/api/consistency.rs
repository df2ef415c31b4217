//! The verify consistency promise across replicas (docs/DESIGN.md,
//! "Consistency"): a status change acknowledged before a verify starts is
//! seen by that verify on every replica, though verifies are answered from
//! memory. Two servers on one database; changes on A, verifies on B.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use corridor_proto::v1;
use corridor_proto::v1::credential_service_client::CredentialServiceClient;
use corridor_proto::v1::verification_service_client::VerificationServiceClient;
use corridor_tests::{TestApp, authed};
use sea_orm::ConnectionTrait;
use tonic::transport::Channel;

use crate::support::issue;

async fn verify(client: &mut VerificationServiceClient<Channel>, token: &str, id: &str) -> bool {
    client
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::CredentialId(
                    id.into(),
                )),
                ..Default::default()
            },
            token,
        ))
        .await
        .expect("verify")
        .into_inner()
        .valid
}

async fn change(app: &TestApp, id: &str, what: &str, rid: String) {
    let mut c = app.credentials().await;
    let t = app.issuer("hangzhou");
    let r = match what {
        "suspend" => c
            .suspend_credential(authed(
                v1::SuspendCredentialRequest {
                    request_id: rid,
                    id: id.into(),
                    reason: "review".into(),
                },
                &t,
            ))
            .await
            .map(|_| ()),
        "reinstate" => c
            .reinstate_credential(authed(
                v1::ReinstateCredentialRequest {
                    request_id: rid,
                    id: id.into(),
                    reason: "cleared".into(),
                },
                &t,
            ))
            .await
            .map(|_| ()),
        _ => c
            .revoke_credential(authed(
                v1::RevokeCredentialRequest {
                    request_id: rid,
                    id: id.into(),
                    reason: "fraud".into(),
                },
                &t,
            ))
            .await
            .map(|_| ()),
    };
    r.expect("status change");
}

/// B has the credential in memory (it verified it); A suspends, reinstates,
/// revokes; B's first verify after each acknowledgement sees it, every time.
/// B handles each notice 15 ms late (a busy replica), so without A waiting
/// for B's acknowledgement the verify would find the old status in memory.
#[tokio::test]
async fn an_acknowledged_change_is_seen_by_the_other_replica() {
    let app = TestApp::spawn().await;
    let b = app.replica().await;
    b.state
        .status_cache
        .delay_notices(std::time::Duration::from_millis(15));
    let mut on_b = VerificationServiceClient::new(b.channel().await);
    let employer = app.verifier();
    for i in 0..20 {
        let c = issue(&app, "hangzhou", &format!("cons-{i}")).await;
        assert!(verify(&mut on_b, &employer, &c.id).await);
        assert!(verify(&mut on_b, &employer, &c.id).await, "cached");
        change(&app, &c.id, "suspend", format!("s-{i}")).await;
        assert!(
            !verify(&mut on_b, &employer, &c.id).await,
            "stale after suspend, try {i}"
        );
        change(&app, &c.id, "reinstate", format!("r-{i}")).await;
        assert!(
            verify(&mut on_b, &employer, &c.id).await,
            "stale after reinstate, try {i}"
        );
        change(&app, &c.id, "revoke", format!("v-{i}")).await;
        assert!(
            !verify(&mut on_b, &employer, &c.id).await,
            "stale after revoke, try {i}"
        );
    }
    // And B did answer from memory.
    assert!(b.state.status_cache.stats.hits.load(Ordering::Relaxed) > 0);
}

/// B's listener stalls (its notices, its own probes included, are handled
/// seconds late): B stops trusting its memory within its lease, and A's
/// revocation waits that lease out for the silent B, so B's verify reads
/// the truth.
#[tokio::test]
async fn a_stalled_replica_never_serves_a_stale_answer() {
    let app = TestApp::spawn().await;
    let b = app.replica().await;
    let mut on_b = VerificationServiceClient::new(b.channel().await);
    let employer = app.verifier();
    let c = issue(&app, "hangzhou", "stall-1").await;
    assert!(verify(&mut on_b, &employer, &c.id).await);
    assert!(verify(&mut on_b, &employer, &c.id).await);
    b.state
        .status_cache
        .delay_notices(std::time::Duration::from_secs(3));
    // Let B's listener get stuck behind a notice.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    change(&app, &c.id, "revoke", "stall-r".into()).await;
    assert!(
        !verify(&mut on_b, &employer, &c.id).await,
        "stale from a stalled replica"
    );
    assert!(
        started.elapsed() >= corridor_server::status_cache::LEASE,
        "the revocation did not wait out the silent replica's lease"
    );
}

/// Verifies hammer B while A revokes: none that starts after the revocation
/// was acknowledged answers valid.
#[tokio::test]
async fn concurrent_verifies_never_outlive_an_acknowledged_revocation() {
    const AFTER_ACK: usize = 10;
    let app = TestApp::spawn().await;
    let b = app.replica().await;
    let employer = app.verifier();
    for i in 0..5 {
        let c = issue(&app, "hangzhou", &format!("conc-{i}")).await;
        let acked = Arc::new(AtomicBool::new(false));
        let stale = Arc::new(AtomicUsize::new(0));
        let after = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let mut client = VerificationServiceClient::new(b.channel().await);
            let (acked, stale, after) = (acked.clone(), stale.clone(), after.clone());
            let (employer, id) = (employer.clone(), c.id.clone());
            tasks.push(tokio::spawn(async move {
                // Verifies until AFTER_ACK of them have started after the
                // ack, however long the revocation takes on a busy machine
                // (a fixed count of verifies could all finish before it).
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                let mut mine = 0;
                while mine < AFTER_ACK && std::time::Instant::now() < deadline {
                    // Read the flag before the verify starts.
                    let was_acked = acked.load(Ordering::SeqCst);
                    let valid = verify(&mut client, &employer, &id).await;
                    if was_acked {
                        mine += 1;
                        after.fetch_add(1, Ordering::SeqCst);
                        if valid {
                            stale.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        change(&app, &c.id, "revoke", format!("conc-r-{i}")).await;
        acked.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.expect("verifier task");
        }
        assert_eq!(
            after.load(Ordering::SeqCst),
            4 * AFTER_ACK,
            "every verifier ran its verifies after the ack within 30 s"
        );
        assert_eq!(stale.load(Ordering::SeqCst), 0, "round {i}");
    }
}

/// B's notification connection is killed: B forgets its memory at once,
/// A's revocation still finds the truth on B, and B reconnects and serves
/// from memory again.
#[tokio::test]
async fn a_dropped_notification_connection_never_serves_a_stale_answer() {
    let app = TestApp::spawn().await;
    let b = app.replica().await;
    let mut on_b = VerificationServiceClient::new(b.channel().await);
    let employer = app.verifier();
    let c = issue(&app, "hangzhou", "drop-1").await;
    assert!(verify(&mut on_b, &employer, &c.id).await);
    // Kill every LISTEN connection of this database (A's and B's).
    app.db
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND query ILIKE 'LISTEN%'",
        )
        .await
        .expect("terminate listeners");
    change(&app, &c.id, "revoke", "drop-r".into()).await;
    assert!(
        !verify(&mut on_b, &employer, &c.id).await,
        "stale after a dropped listener"
    );
    // B comes back: its memory is used again.
    let d = issue(&app, "hangzhou", "drop-2").await;
    let hits = || b.state.status_cache.stats.hits.load(Ordering::Relaxed);
    let mut back = false;
    for _ in 0..50 {
        let before = hits();
        assert!(verify(&mut on_b, &employer, &d.id).await);
        if hits() > before {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "B never trusted its memory again after reconnecting");
}

/// A replica started after changes were made, and while more are made,
/// answers as the registry says from its first verify on.
#[tokio::test]
async fn a_replica_started_mid_stream_is_consistent() {
    let app = TestApp::spawn().await;
    let employer = app.verifier();
    let revoked = issue(&app, "hangzhou", "mid-1").await;
    change(&app, &revoked.id, "revoke", "mid-r1".into()).await;
    let live = issue(&app, "hangzhou", "mid-2").await;
    let b = app.replica().await;
    let mut on_b = VerificationServiceClient::new(b.channel().await);
    assert!(!verify(&mut on_b, &employer, &revoked.id).await);
    assert!(verify(&mut on_b, &employer, &live.id).await);
    // B's probes need to come back before A counts it as a live peer; the
    // promise must hold from the start anyway.
    change(&app, &live.id, "revoke", "mid-r2".into()).await;
    assert!(!verify(&mut on_b, &employer, &live.id).await);
    let _ = CredentialServiceClient::new(app.raw_channel().await);
}

/// A publication acknowledged on A decides B's next evaluation, though B
/// keeps the schedule of policy versions in memory and handles notices
/// late.
#[tokio::test]
async fn an_acknowledged_publication_decides_the_other_replicas_next_evaluation() {
    use corridor_proto::v1::policy_service_client::PolicyServiceClient;
    use corridor_proto::v1::recognition_service_client::RecognitionServiceClient;
    let app = TestApp::spawn().await;
    let b = app.replica().await;
    b.state
        .status_cache
        .delay_notices(std::time::Duration::from_millis(15));
    let c = issue(&app, "hefei", "pol-1").await;
    let office = app.token("hz-office", Some("hangzhou"), &["recognizer"]);
    let mut on_b = RecognitionServiceClient::new(b.channel().await);
    let evaluate = |token: String| {
        authed(
            v1::EvaluateRecognitionRequest {
                credential_id: c.id.clone(),
                target_city: "hangzhou".into(),
                facts: None,
                as_of: None,
            },
            &token,
        )
    };
    let before = on_b
        .evaluate_recognition(evaluate(office.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.outcome, v1::RecognitionOutcome::Recognized as i32);
    let policy = r#"
@id("titles-under-review")
@outcome("REJECTED")
forbid (principal, action == G60::Action::"recognize", resource)
when { resource.category == "PROFESSIONAL_TITLE" };
"#;
    PolicyServiceClient::new(app.raw_channel().await)
        .publish_policy(authed(
            v1::PublishPolicyRequest {
                request_id: "pol-p".into(),
                city: "hangzhou".into(),
                source: policy.into(),
                effective_from: None,
            },
            &app.token("hz-policy", Some("hangzhou"), &["policy_admin"]),
        ))
        .await
        .unwrap();
    let after = on_b
        .evaluate_recognition(evaluate(office))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.outcome, v1::RecognitionOutcome::Rejected as i32);
    assert_eq!(after.explanation.unwrap().policy_version, 2);
}
