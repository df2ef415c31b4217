//! The audit chain and the change stream (docs/DESIGN.md, "Audit"): every
//! event gets a gapless sequence number and a chained hash; an edit made
//! in SQL is named by VerifyAuditChain and by the offline check; watchers
//! see every change once and in order, across replicas, and resume.

use std::collections::HashSet;
use std::time::Duration;

use corridor_proto::v1;
use corridor_proto::v1::audit_service_client::AuditServiceClient;
use corridor_proto::v1::credential_service_client::CredentialServiceClient;
use corridor_proto::v1::recognition_service_client::RecognitionServiceClient;
use corridor_proto::v1::watch_events_response::Message;
use corridor_tests::{TestApp, authed, count_in};
use sea_orm::ConnectionTrait;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{issue, issue_request, verify_id};

fn auditor(app: &TestApp) -> String {
    app.token("corridor-audit", None, &["auditor"])
}

async fn audit_client(app: &TestApp) -> AuditServiceClient<Channel> {
    AuditServiceClient::new(app.raw_channel().await)
}

/// Every event, in order, through ListAuditEvents.
async fn all_events(app: &TestApp) -> Vec<v1::AuditEvent> {
    let mut c = audit_client(app).await;
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_audit_events(authed(
                v1::ListAuditEventsRequest {
                    page_size: 1000,
                    page_token: token.clone(),
                    ..Default::default()
                },
                &auditor(app),
            ))
            .await
            .expect("list audit events")
            .into_inner();
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// Waits until every stored event has its place in the chain; returns the
/// head.
async fn settled(app: &TestApp) -> i64 {
    for _ in 0..200 {
        let waiting = app.count("SELECT count(*) FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.seq = e.seq)",
        )
        .await;
        if waiting == 0 {
            return app
                .count("SELECT COALESCE(MAX(position), 0) FROM audit_chain")
                .await;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the sequencer did not settle the events within 5 s");
}

async fn verify_chain(app: &TestApp) -> v1::VerifyAuditChainResponse {
    audit_client(app)
        .await
        .verify_audit_chain(authed(
            v1::VerifyAuditChainRequest::default(),
            &auditor(app),
        ))
        .await
        .expect("verify chain")
        .into_inner()
}

async fn suspend(app: &TestApp, id: &str, rid: &str) {
    app.credentials()
        .await
        .suspend_credential(authed(
            v1::SuspendCredentialRequest {
                request_id: rid.into(),
                id: id.into(),
                reason: "review".into(),
            },
            &app.issuer("hangzhou"),
        ))
        .await
        .expect("suspend");
}

/// The chain is gapless and intact after concurrent writes on two
/// replicas; an event edited in SQL is named by VerifyAuditChain, and the
/// offline check of a dump names the same sequence number.
#[tokio::test]
async fn an_event_edited_in_sql_is_named_online_and_offline() {
    let app = TestApp::spawn_with(|s| s.audit.checkpoint_every = 5).await;
    let replica = app.replica().await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let channel = if i % 2 == 0 {
            app.raw_channel().await
        } else {
            replica.channel().await
        };
        let token = app.issuer("hangzhou");
        tasks.push(tokio::spawn(async move {
            CredentialServiceClient::new(channel)
                .issue_credential(authed(
                    issue_request(&format!("chain-{i}"), "hangzhou", "33010619900101123"),
                    &token,
                ))
                .await
                .expect("issue")
                .into_inner()
                .credential
                .expect("credential")
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.expect("task").id);
    }
    suspend(&app, &ids[0], "s-0").await;
    verify_id(&app, &ids[1]).await;
    // The verification's event is written in the background.
    for _ in 0..200 {
        if app
            .count("SELECT count(*) FROM audit_events WHERE action = 'credential.verified'")
            .await
            > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let n = settled(&app).await;
    // Gapless: positions 1..=n, one per event.
    let events = all_events(&app).await;
    assert_eq!(events.len() as i64, n);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.sequence, i as i64 + 1, "sequence numbers are gapless");
        assert_eq!(e.hash.len(), 64);
    }
    assert!(
        events.iter().any(|e| e.action == "credential.verified"),
        "verifications are chained too"
    );
    let ok = verify_chain(&app).await;
    assert!(ok.intact, "{ok:?}");
    assert_eq!(ok.verified_through, n);
    assert!(ok.checkpoints_checked >= 1, "{ok:?}");

    // Edit one event's detail directly in SQL.
    let victim = events[7].sequence;
    app.db
        .execute_unprepared(&format!(
            "UPDATE audit_events SET detail = '{{\"tampered\":true}}' \
             WHERE seq = (SELECT seq FROM audit_chain WHERE position = {victim})"
        ))
        .await
        .expect("tamper");
    let broken = verify_chain(&app).await;
    assert!(!broken.intact);
    assert_eq!(broken.broken_sequence, victim, "{broken:?}");
    assert_eq!(broken.verified_through, victim - 1);

    // Offline, from a dump: the same answer.
    let dir =
        std::env::temp_dir().join(format!("corridor-audit-{}", uuid::Uuid::new_v4().simple()));
    let db = corridor_server::store::connect(&app.database_url(None), Duration::from_secs(2))
        .await
        .expect("connect");
    corridor_server::audit_offline::export(&db, &dir)
        .await
        .expect("export");
    let offline = corridor_server::audit_offline::verify(&dir, None).expect("offline verify");
    let b = offline.broken.expect("the offline check finds the edit");
    assert_eq!(b.position, broken.broken_sequence);
    std::fs::remove_dir_all(&dir).ok();
}

/// A forger who edits an event and rewrites every hash after it makes the
/// chain consistent again; the signed checkpoints still disagree. A
/// deleted event is named as missing.
#[tokio::test]
async fn a_rewritten_chain_disagrees_with_its_checkpoints() {
    let app = TestApp::spawn_with(|s| s.audit.checkpoint_every = 3).await;
    for i in 0..8 {
        issue(&app, "hangzhou", &format!("rw-{i}")).await;
    }
    let n = settled(&app).await;
    // Let the sequencer sign a checkpoint at the head.
    let mut c = audit_client(&app).await;
    let cp = c
        .get_checkpoint(authed(v1::GetCheckpointRequest::default(), &auditor(&app)))
        .await
        .expect("checkpoint")
        .into_inner();
    assert_eq!(cp.head_sequence, n);
    let checkpoint = cp.checkpoint.expect("a checkpoint was signed");
    assert!(checkpoint.sequence >= 3);
    assert!(!cp.x.is_empty());

    // Rewrite event 2 and recompute the chain from there, as a forger
    // with database access (but not the corridor key) would.
    app.db
        .execute_unprepared(
            "UPDATE audit_events SET actor = 'someone-else' WHERE seq = (SELECT seq FROM audit_chain WHERE position = 2)",
        )
        .await
        .expect("tamper");
    let events = all_events(&app).await;
    let mut heads = corridor_domain::audit::Heads::genesis();
    for e in &events {
        let mut ce = corridor_domain::audit::ChainedEvent {
            position: e.sequence,
            occurred_at: chrono::DateTime::from_timestamp(
                e.occur_time.as_ref().map_or(0, |t| t.seconds),
                e.occur_time.as_ref().map_or(0, |t| t.nanos as u32),
            )
            .expect("time"),
            actor: e.actor.clone(),
            actor_city: (!e.actor_city.is_empty()).then(|| e.actor_city.clone()),
            action: e.action.clone(),
            subject_type: e.subject_type.clone(),
            subject_id: e.subject_id.clone(),
            detail: e.detail_json.clone(),
            city: (!e.city.is_empty()).then(|| e.city.clone()),
            other_city: (!e.other_city.is_empty()).then(|| e.other_city.clone()),
            hash: [0; 32],
            city_hash: None,
        };
        heads.append(&mut ce);
        let (h, ch) = (ce.hash, ce.city_hash);
        let city_hash = ch.map_or("NULL".to_owned(), |h| format!("'\\x{}'", hex::encode(h)));
        app.db
            .execute_unprepared(&format!(
                "UPDATE audit_chain SET hash = '\\x{}', city_hash = {city_hash} WHERE position = {}",
                hex::encode(h),
                ce.position
            ))
            .await
            .expect("rewrite");
        app.db
            .execute_unprepared(&format!(
                "UPDATE audit_city_heads SET hash = {city_hash} WHERE position = {}",
                ce.position
            ))
            .await
            .expect("rewrite head");
    }
    let r = verify_chain(&app).await;
    assert!(!r.intact, "{r:?}");
    assert!(r.reason.contains("checkpoint"), "{r:?}");

    // A deleted event is missing.
    let app2 = TestApp::spawn().await;
    for i in 0..4 {
        issue(&app2, "hefei", &format!("del-{i}")).await;
    }
    settled(&app2).await;
    app2.db
        .execute_unprepared(
            "DELETE FROM audit_events WHERE seq = (SELECT seq FROM audit_chain WHERE position = 3)",
        )
        .await
        .expect("delete");
    let r = verify_chain(&app2).await;
    assert!(!r.intact);
    assert_eq!(r.broken_sequence, 3, "{r:?}");
}

/// Reads a watcher until it has `n` events (keep-alives skipped).
async fn take(
    stream: &mut tonic::Streaming<v1::WatchEventsResponse>,
    n: usize,
) -> Vec<v1::AuditEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event within 10 s")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Message::Event(e)) = next.message {
            out.push(e);
        }
    }
    out
}

async fn watch(
    channel: Channel,
    token: &str,
    req: v1::WatchEventsRequest,
) -> Result<tonic::Streaming<v1::WatchEventsResponse>, tonic::Status> {
    AuditServiceClient::new(channel)
        .watch_events(authed(req, token))
        .await
        .map(tonic::Response::into_inner)
}

/// A scripted sequence of changes, written through two replicas. A watcher
/// started before it and one resumed from the middle both see every change
/// exactly once, in sequence order, and nothing else (no verifications).
#[tokio::test]
async fn watchers_see_every_change_once_in_order_and_resume() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let before = settled(&app).await;
    let mut w1 = watch(
        app.raw_channel().await,
        &auditor(&app),
        v1::WatchEventsRequest {
            after_sequence: before,
            ..Default::default()
        },
    )
    .await
    .expect("watch");

    // The script: issuances on both replicas, status changes, a
    // recognition and its cascade, verifications (not changes).
    let a = issue(&app, "hangzhou", "w-a").await;
    let b_client = CredentialServiceClient::new(replica.channel().await);
    let b = b_client
        .clone()
        .issue_credential(authed(
            issue_request("w-b", "hefei", "34010619900101123"),
            &app.issuer("hefei"),
        ))
        .await
        .expect("issue on the replica")
        .into_inner()
        .credential
        .expect("credential");
    verify_id(&app, &a.id).await;
    RecognitionServiceClient::new(replica.channel().await)
        .request_recognition(authed(
            v1::RequestRecognitionRequest {
                request_id: "w-rec".into(),
                credential_id: a.id.clone(),
                target_city: "songjiang".into(),
                facts: None,
            },
            &app.token("sj-office", Some("songjiang"), &["recognizer"]),
        ))
        .await
        .expect("recognition");
    suspend(&app, &a.id, "w-s").await;
    b_client
        .clone()
        .revoke_credential(authed(
            v1::RevokeCredentialRequest {
                request_id: "w-r".into(),
                id: b.id.clone(),
                reason: "fraud".into(),
            },
            &app.issuer("hefei"),
        ))
        .await
        .expect("revoke on the replica");
    let expected = [
        ("credential.issued", a.id.as_str()),
        ("credential.issued", b.id.as_str()),
        ("recognition.decided", ""),
        ("recognition.suspended", ""),
        ("credential.suspended", a.id.as_str()),
        ("credential.revoked", b.id.as_str()),
    ];
    let seen = take(&mut w1, expected.len()).await;
    let got: Vec<(&str, &str)> = seen
        .iter()
        .map(|e| (e.action.as_str(), e.subject_id.as_str()))
        .collect();
    for ((action, subject), (ga, gs)) in expected.iter().zip(&got) {
        assert_eq!(action, ga, "{got:?}");
        if !subject.is_empty() {
            assert_eq!(subject, gs, "{got:?}");
        }
    }
    // In sequence order, each once; and what the chain holds, minus
    // verifications, is exactly this.
    assert!(seen.windows(2).all(|w| w[0].sequence < w[1].sequence));
    settled(&app).await;
    let changes: Vec<i64> = all_events(&app)
        .await
        .into_iter()
        .filter(|e| e.sequence > before && e.action != "credential.verified")
        .map(|e| e.sequence)
        .collect();
    assert_eq!(changes, seen.iter().map(|e| e.sequence).collect::<Vec<_>>());

    // Resumed from the third event, on the other replica: the rest, once.
    let mut w2 = watch(
        replica.channel().await,
        &auditor(&app),
        v1::WatchEventsRequest {
            after_sequence: seen[2].sequence,
            ..Default::default()
        },
    )
    .await
    .expect("resume");
    let rest = take(&mut w2, seen.len() - 3).await;
    assert_eq!(
        rest.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        seen[3..].iter().map(|e| e.sequence).collect::<Vec<_>>()
    );
    // Nothing more arrives but keep-alives.
    let next = tokio::time::timeout(Duration::from_millis(1500), w2.message()).await;
    if let Ok(Ok(Some(m))) = next {
        assert!(!matches!(m.message, Some(Message::Event(_))), "{m:?}");
    }
}

/// A city sees the events that concern it; asking for another city's, or
/// watching without a city role, is refused; unknown actions are
/// INVALID_ARGUMENT; a pruned resume point is FAILED_PRECONDITION naming
/// the oldest kept; keep-alives arrive while nothing happens.
#[tokio::test]
async fn watch_scope_validation_retention_and_keepalives() {
    let app = TestApp::spawn_with(|s| s.audit.keepalive_seconds = 1).await;
    let hf_office = app.token("hf-office", Some("hefei"), &["recognizer"]);
    let before = settled(&app).await;
    let mut hf = watch(
        app.raw_channel().await,
        &hf_office,
        v1::WatchEventsRequest {
            after_sequence: before,
            ..Default::default()
        },
    )
    .await
    .expect("hefei watches its own city");
    let hz = issue(&app, "hangzhou", "sc-hz").await;
    let hf_cred = issue(&app, "hefei", "sc-hf").await;
    // A Hangzhou credential recognized into Hefei concerns Hefei.
    RecognitionServiceClient::new(app.raw_channel().await)
        .request_recognition(authed(
            v1::RequestRecognitionRequest {
                request_id: "sc-rec".into(),
                credential_id: hz.id.clone(),
                target_city: "hefei".into(),
                facts: None,
            },
            &hf_office,
        ))
        .await
        .expect("recognition");
    let got = take(&mut hf, 2).await;
    assert_eq!(got[0].subject_id, hf_cred.id);
    assert_eq!(got[1].action, "recognition.decided");
    assert_eq!(got[1].city, "hefei");
    assert_eq!(got[1].other_city, "hangzhou");
    assert!(
        got.iter().all(|e| e.subject_id != hz.id),
        "Hangzhou's issuance is not Hefei's"
    );

    let denied = watch(
        app.raw_channel().await,
        &hf_office,
        v1::WatchEventsRequest {
            city: "hangzhou".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("another city");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = watch(app.raw_channel().await, &app.verifier(), Default::default())
        .await
        .expect_err("a verifier");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = watch(
        app.raw_channel().await,
        &auditor(&app),
        v1::WatchEventsRequest {
            actions: vec!["credential.verified".into()],
            ..Default::default()
        },
    )
    .await
    .expect_err("verifications are not changes");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(corridor_tests::violated_fields(&bad), vec!["actions[0]"]);

    // Keep-alives while nothing happens (a filter nothing matches).
    let mut quiet = watch(
        app.raw_channel().await,
        &auditor(&app),
        v1::WatchEventsRequest {
            subject_id: "nothing-matches".into(),
            ..Default::default()
        },
    )
    .await
    .expect("watch");
    let m = tokio::time::timeout(Duration::from_secs(5), quiet.message())
        .await
        .expect("a keep-alive within 5 s")
        .expect("ok")
        .expect("open");
    match m.message {
        Some(Message::KeepAlive(k)) => assert!(k.head_sequence > 0),
        other => panic!("expected a keep-alive, got {other:?}"),
    }

    // Retention: prune everything so far; resuming inside it is refused
    // with the oldest kept; the kept rest still verifies.
    let n = settled(&app).await;
    let pruned = app
        .state()
        .sequencer
        .prune(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .expect("prune");
    assert_eq!(pruned, n);
    issue(&app, "hefei", "after-prune").await;
    settled(&app).await;
    let gone = watch(
        app.raw_channel().await,
        &auditor(&app),
        v1::WatchEventsRequest {
            after_sequence: 1,
            ..Default::default()
        },
    )
    .await
    .expect_err("pruned");
    assert_eq!(gone.code(), Code::FailedPrecondition);
    assert!(
        gone.message()
            .contains(&format!("oldest kept is {}", n + 1)),
        "{}",
        gone.message()
    );
    let r = audit_client(&app)
        .await
        .verify_audit_chain(authed(
            v1::VerifyAuditChainRequest {
                from_sequence: n + 1,
                to_sequence: 0,
            },
            &auditor(&app),
        ))
        .await
        .expect("verify the kept events")
        .into_inner();
    assert!(r.intact, "{r:?}");
    // And an auditor may still read them; a city may not use the audit RPCs.
    let refused = audit_client(&app)
        .await
        .list_audit_events(authed(Default::default(), &hf_office))
        .await
        .expect_err("a recognizer is no auditor");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let kept: HashSet<String> = all_events(&app)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(kept.contains("credential.issued"));
}

/// The chain's append is one statement text whatever the batch size. A
/// `VALUES` list as long as the batch was a new text for every size, and
/// the pool prepares and keeps each text on each connection: the server's
/// memory grew for minutes under mixed load (performance issue, M1).
#[tokio::test]
async fn appending_to_the_chain_prepares_one_statement_whatever_the_batch_size() {
    use corridor_domain::audit::ChainedEvent;
    use corridor_server::store::audit_chain::{Pending, Watermark, append};
    use sea_orm::TransactionTrait;

    let app = TestApp::spawn().await;
    // One transaction: one connection, whose prepared statements
    // pg_prepared_statements lists; rolled back, so the chain is untouched.
    let txn = app.db.begin().await.unwrap();
    let far = 1_000_000_000_000_i64;
    let mut next = far;
    let mut pending = |n: usize| -> Vec<Pending> {
        (0..n)
            .map(|i| {
                next += 1;
                Pending {
                    seq: next,
                    txid: None,
                    event: ChainedEvent {
                        position: next,
                        occurred_at: chrono::Utc::now(),
                        actor: "prepare-check".into(),
                        actor_city: None,
                        action: "credential.verified".into(),
                        subject_type: "credential".into(),
                        subject_id: format!("s-{i}"),
                        detail: "{}".into(),
                        city: (i % 2 == 0).then(|| "hangzhou".to_string()),
                        other_city: None,
                        hash: [7; 32],
                        city_hash: (i % 2 == 0).then_some([9; 32]),
                    },
                }
            })
            .collect()
    };
    let mark = Watermark {
        txid: "0".into(),
        seq: 0,
    };
    for n in 1..=6 {
        append(&txn, &pending(n), &mark).await.unwrap();
    }
    let count = |sql: &'static str| count_in(&txn, sql);
    let all = count("SELECT count(*) FROM audit_chain WHERE position > 1000000000000").await;
    assert_eq!(all, 21, "1 + 2 + ... + 6 rows");
    let with_city = count(
        "SELECT count(*) FROM audit_chain WHERE position > 1000000000000 \
         AND hash = decode(repeat('07', 32), 'hex') \
         AND city = 'hangzhou' AND city_hash = decode(repeat('09', 32), 'hex')",
    )
    .await;
    assert_eq!(
        with_city,
        1 + 1 + 2 + 2 + 3 + 3,
        "the rows with a city, as written"
    );
    let without = count(
        "SELECT count(*) FROM audit_chain WHERE position > 1000000000000 \
         AND hash = decode(repeat('07', 32), 'hex') AND city IS NULL AND city_hash IS NULL",
    )
    .await;
    assert_eq!(without, 21 - 12, "the rows without a city, as written");
    let texts = count(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO audit_chain%'",
    )
    .await;
    assert_eq!(texts, 1, "statements prepared for six batch sizes");
    txn.rollback().await.unwrap();
}

/// Regression: the sequencer read pending events `ORDER BY txid`, which
/// named the text output column (`txid::text AS txid`), not the `xid8`
/// column: "10" came before "9". At every power of ten in the cluster's
/// transaction ids (1,000,000 is days away for a busy city) a round would
/// chain events out of order, set its watermark to the text-last event,
/// re-read the ones after it and fail on the chain's unique `seq`, stopping
/// the chain for good. The text order also meant a sort of the whole
/// backlog on every round, where the index on (txid, seq) serves the order.
#[tokio::test]
async fn pending_events_come_in_transaction_order_across_a_power_of_ten() {
    use corridor_server::store::audit_chain::{Watermark, pending};
    use sea_orm::TransactionTrait;

    let app = TestApp::spawn().await;
    // Rolled back: the sequencer never sees these rows. Their transaction
    // ids are below any running transaction, so they count as settled.
    let txn = app.db.begin().await.unwrap();
    for (txid, subject) in [
        ("11", "e"),
        ("9", "a"),
        ("10", "c"),
        ("9", "b"),
        ("10", "d"),
    ] {
        txn.execute_unprepared(&format!(
            "INSERT INTO audit_events (occurred_at, actor, action, subject_type, subject_id, detail, txid) \
             VALUES (now(), 'order-check', 'credential.verified', 'credential', '{subject}', '{{}}', '{txid}')"
        ))
        .await
        .unwrap();
    }
    let mut mark = Watermark {
        txid: "8".into(),
        seq: 0,
    };
    let mut seen = Vec::new();
    // Two at a time, each round from the last one's watermark, as the
    // sequencer does.
    while seen.len() < 5 {
        let batch = pending(&txn, &mark, 2).await.unwrap();
        assert!(!batch.is_empty(), "nothing after {mark:?}; seen {seen:?}");
        for p in &batch {
            seen.push((p.txid.clone().unwrap(), p.event.subject_id.clone()));
        }
        let last = batch.last().unwrap();
        mark = Watermark {
            txid: last.txid.clone().unwrap(),
            seq: last.seq,
        };
    }
    // What follows "e" are the app's own events (real transaction ids,
    // far above 11).
    seen.truncate(5);
    let expected: Vec<(String, String)> = [
        ("9", "a"),
        ("9", "b"),
        ("10", "c"),
        ("10", "d"),
        ("11", "e"),
    ]
    .iter()
    .map(|(t, s)| (t.to_string(), s.to_string()))
    .collect();
    assert_eq!(
        seen, expected,
        "each event once, by transaction then insertion"
    );
    txn.rollback().await.unwrap();
}
