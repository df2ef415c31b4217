//! The faults. Each runs the same way: issuance load from the start
//! (`pre`), the fault, recovery, more load (`post`); then the load stops
//! (issuances under way finish, retries included), every replica must be
//! SERVING again, a single issuance on each must succeed at the first
//! attempt, and the database must hold every acknowledged issuance exactly
//! once. Each fault names the failed-attempt codes it may cause; any other
//! is a wrong code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corridor_proto::v1::credential_service_client::CredentialServiceClient;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::cluster::Cluster;
use crate::floods::{IdleConnections, SlowBodies};
use crate::load::{Client, Load};
use crate::replicas::{LIMITS, Replica, Setup};
use crate::report::{Check, Row, check};

/// How big and how long.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Issuances in flight (spread over the replicas).
    pub in_flight: usize,
    /// Load before the fault.
    pub pre: Duration,
    /// How long a fault lasts.
    pub hold: Duration,
    /// Load after recovery.
    pub post: Duration,
    /// Issuances in flight for pool exhaustion (each replica's pool has 20
    /// connections).
    pub pool_in_flight: usize,
    /// Table locks (of 1.2 s) during pool exhaustion.
    pub lock_cycles: usize,
    /// Connections per replica of the slow-body flood (120 streams each).
    pub slow_body_connections: usize,
    /// Idle connections per replica.
    pub idle_per_replica: usize,
}

impl Sizes {
    /// CI's: every fault, in about a minute.
    pub const SHORT: Sizes = Sizes {
        in_flight: 6,
        pre: Duration::from_millis(800),
        hold: Duration::from_millis(2_000),
        post: Duration::from_millis(1_000),
        pool_in_flight: 75,
        lock_cycles: 1,
        slow_body_connections: 1,
        idle_per_replica: 100,
    };
    /// The full run: more load, longer faults, bigger floods.
    pub const FULL: Sizes = Sizes {
        in_flight: 24,
        pre: Duration::from_secs(3),
        hold: Duration::from_secs(8),
        post: Duration::from_secs(4),
        pool_in_flight: 150,
        lock_cycles: 4,
        slow_body_connections: 4,
        idle_per_replica: 1_000,
    };
}

/// Everything a fault acts on.
pub struct Env {
    /// Sizes of the run.
    pub sizes: Sizes,
    /// The throwaway Postgres.
    pub cluster: Cluster,
    /// The replicas' binary and configuration.
    pub setup: Setup,
    /// The replicas.
    pub replicas: Vec<Replica>,
    /// The issuing client over all replicas.
    pub client: Arc<Client>,
    /// The service's database, for locks and checks.
    pub db: DatabaseConnection,
}

/// The faults, by key, in the order they run.
pub const FAULTS: [&str; 8] = [
    "pg-fast",
    "pg-crash",
    "kill",
    "slow-db",
    "pool",
    "slow-body",
    "idle",
    "term",
];

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Runs the fault `key`.
pub async fn run(env: &mut Env, key: &str) -> anyhow::Result<Row> {
    let s = env.sizes;
    match key {
        "pg-fast" => pg_outage(env, "postgres fast stop + restart", "fast").await,
        "pg-crash" => pg_outage(env, "postgres crash + restart", "immediate").await,
        "kill" => {
            faulted(env, key, "replica SIGKILL under load", &["UNAVAILABLE", "conn:*"], s.in_flight, async |env, checks| {
                let hold = env.sizes.hold;
                let r = &mut env.replicas[1];
                r.kill()?;
                tokio::time::sleep(hold).await;
                r.restart(&env.setup)?;
                let up = r.wait_serving(Duration::from_secs(60)).await?;
                checks.push(check(true, format!("replica {} killed, back SERVING {} after its restart", r.n, secs(up))));
                Ok(())
            })
            .await
        }
        "slow-db" => {
            faulted(env, key, "slow database (table lock)", &["DEADLINE_EXCEEDED", "UNAVAILABLE"], s.in_flight, async |env, checks| {
                // Longer than the request timeout: calls must end by it.
                let held = env.sizes.hold.max(LIMITS.request_timeout + Duration::from_millis(1_500));
                lock_credentials(&env.db, held).await?;
                checks.push(check(true, format!("credentials locked for {} (request timeout {})", secs(held), secs(LIMITS.request_timeout))));
                Ok(())
            })
            .await
        }
        "pool" => {
            faulted(env, key, "pool exhaustion", &["UNAVAILABLE", "RESOURCE_EXHAUSTED"], s.pool_in_flight, async |env, checks| {
                // Each lock holds every pooled connection that issues; the
                // calls beyond the pool wait at most the acquire timeout.
                for _ in 0..env.sizes.lock_cycles {
                    lock_credentials(&env.db, Duration::from_millis(1_200)).await?;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                checks.push(check(true, format!("{} table lock(s) of 1.2 s, {} in flight", env.sizes.lock_cycles, env.sizes.pool_in_flight)));
                Ok(())
            })
            .await
        }
        "slow-body" => {
            faulted(env, key, "slow-body flood", &[], s.in_flight, async |env, checks| {
                let urls: Vec<String> = env.replicas.iter().map(Replica::url).collect();
                let flood = SlowBodies::start(&urls, env.sizes.slow_body_connections, 120).await?;
                let held = env.sizes.hold.max(LIMITS.request_timeout + Duration::from_millis(1_500));
                tokio::time::sleep(held).await;
                let opened = flood.opened.load(std::sync::atomic::Ordering::Relaxed);
                let (ended, longest) = flood.finish().await;
                let bound = LIMITS.request_timeout + Duration::from_millis(1_000);
                checks.push(check(
                    ended > 0 && longest <= bound,
                    format!("{opened} tokenless streams with endless bodies, {ended} ended by the servers, the longest after {} (bound {})", secs(longest), secs(bound)),
                ));
                Ok(())
            })
            .await
        }
        "idle" => {
            faulted(env, key, "idle-connection flood", &[], s.in_flight, async |env, checks| {
                let addrs: Vec<String> = env.replicas.iter().map(|r| r.url().trim_start_matches("http://").to_owned()).collect();
                let idle = IdleConnections::open(&addrs, env.sizes.idle_per_replica).await?;
                let opened = idle.opened();
                // A new connection still gets in while they are open.
                let mut fresh = Vec::new();
                for r in &env.replicas {
                    let ch = tonic::transport::Endpoint::from_shared(r.url())?.connect().await;
                    let ok = match ch {
                        Ok(ch) => tonic_health::pb::health_client::HealthClient::new(ch)
                            .check(tonic_health::pb::HealthCheckRequest::default())
                            .await
                            .is_ok_and(|h| h.into_inner().status == ServingStatus::Serving as i32),
                        Err(_) => false,
                    };
                    fresh.push(ok);
                }
                checks.push(check(fresh.iter().all(|o| *o), "a new connection to each replica answers during the flood"));
                tokio::time::sleep(env.sizes.hold).await;
                let (closed, longest) = idle.wait_closed(LIMITS.idle_timeout + Duration::from_secs(3)).await;
                let bound = LIMITS.idle_timeout + Duration::from_millis(1_000);
                checks.push(check(
                    closed == opened && longest <= bound,
                    format!("{closed}/{opened} idle connections closed by the servers, the last after {} (idle timeout {})", secs(longest), secs(LIMITS.idle_timeout)),
                ));
                Ok(())
            })
            .await
        }
        "term" => {
            // Refused connections, requests queued on a connection that
            // closed before they were sent, and streams the server's GOAWAY
            // left unprocessed (conn:GOAWAY); a call cut while the server
            // had it (conn:UNKNOWN: reset, broken pipe) would be wrong.
            faulted(env, key, "replica SIGTERM under load", &["UNAVAILABLE", "conn:UNAVAILABLE", "conn:CANCELLED", "conn:GOAWAY"], s.in_flight, async |env, checks| {
                let hold = env.sizes.hold;
                let r = &mut env.replicas[2];
                tokio::time::sleep(hold / 2).await;
                let (took, status) = r.terminate(LIMITS.shutdown_grace + Duration::from_secs(10)).await?;
                let bound = LIMITS.shutdown_grace + Duration::from_millis(1_000);
                checks.push(check(
                    status.is_some_and(|s| s.success()) && took <= bound,
                    format!(
                        "replica {} exited {} after SIGTERM ({}; bound: the {} grace + 1 s)",
                        r.n,
                        secs(took),
                        status.map_or("killed: it did not exit".to_owned(), |s| s.to_string()),
                        secs(LIMITS.shutdown_grace)
                    ),
                ));
                tokio::time::sleep(hold / 2).await;
                r.restart(&env.setup)?;
                r.wait_serving(Duration::from_secs(60)).await?;
                Ok(())
            })
            .await
        }
        other => anyhow::bail!("no fault {other:?} (one of {})", FAULTS.join(", ")),
    }
}

/// Holds an exclusive lock on `credentials` (reads go on, issuance waits)
/// for `held`.
async fn lock_credentials(db: &DatabaseConnection, held: Duration) -> anyhow::Result<()> {
    let txn = db.begin().await?;
    txn.execute_unprepared("LOCK TABLE credentials IN EXCLUSIVE MODE")
        .await?;
    tokio::time::sleep(held).await;
    txn.rollback().await?;
    Ok(())
}

async fn pg_outage(env: &mut Env, name: &'static str, mode: &'static str) -> anyhow::Result<Row> {
    let key = if mode == "fast" {
        "pg-fast"
    } else {
        "pg-crash"
    };
    let in_flight = env.sizes.in_flight;
    faulted(env, key, name, &["UNAVAILABLE"], in_flight, async |env, checks| {
        let stopped = tokio::task::block_in_place(|| env.cluster.stop(mode))?;
        let down_at = Instant::now();
        // Readiness follows the database.
        let mut not_serving = false;
        while down_at.elapsed() < env.sizes.hold {
            if env.replicas[0].health().await == Ok(ServingStatus::NotServing) {
                not_serving = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let restarted = tokio::task::block_in_place(|| env.cluster.start())?;
        checks.push(check(
            not_serving,
            format!(
                "postgres down {} (pg_ctl stop -m {mode}: {}, start: {}); health NOT_SERVING meanwhile: {}",
                secs(down_at.elapsed()),
                secs(stopped),
                secs(restarted),
                if not_serving { "yes" } else { "no" }
            ),
        ));
        Ok(())
    })
    .await
}

/// Load, `inject` (the fault and its recovery), load, then the checks.
async fn faulted(
    env: &mut Env,
    key: &str,
    fault: &'static str,
    allowed: &'static [&'static str],
    in_flight: usize,
    inject: impl AsyncFnOnce(&mut Env, &mut Vec<Check>) -> anyhow::Result<()>,
) -> anyhow::Result<Row> {
    let prefix = format!("chaos-{key}");
    let started = Instant::now();
    eprintln!("corridor-chaos: {fault} ...");
    let load = Load::start(&env.client, &prefix, in_flight);
    tokio::time::sleep(env.sizes.pre).await;
    let mut checks = Vec::new();
    let injected = inject(env, &mut checks).await;
    if injected.is_ok() {
        tokio::time::sleep(env.sizes.post).await;
    }
    let mut stats = load.finish().await?;
    injected?;

    // Every replica SERVING again (one that died is restarted: the row
    // fails, the next fault has its replicas).
    let mut slowest = Duration::ZERO;
    let mut exited = Vec::new();
    for r in &mut env.replicas {
        if !r.alive() {
            exited.push(r.n.to_string());
            r.restart(&env.setup)?;
        }
        match r.wait_serving(Duration::from_secs(30)).await {
            Ok(d) => slowest = slowest.max(d),
            Err(e) => checks.push(check(false, format!("{e:#}"))),
        }
    }
    if !exited.is_empty() {
        checks.push(check(
            false,
            format!("replica(s) {} exited on their own", exited.join(", ")),
        ));
    }
    checks.push(check(
        true,
        format!("all SERVING {} after the load", secs(slowest)),
    ));

    // Recovered: one issuance on each replica, at the first attempt.
    let mut refused = Vec::new();
    for r in &env.replicas {
        let id = format!("{prefix}-probe-{}", r.n);
        let req = env.client.request(&id)?;
        stats.calls += 1;
        match CredentialServiceClient::new(r.channel.clone())
            .issue_credential(req)
            .await
        {
            Ok(a) => {
                if let Some(c) = a.into_inner().credential {
                    stats.acked.push((id, c.id));
                }
            }
            Err(s) => refused.push(format!(
                "replica {}: {}",
                r.n,
                crate::load::code_name(s.code())
            )),
        }
    }
    checks.push(check(
        refused.is_empty(),
        if refused.is_empty() {
            "each replica issues at the first attempt".to_owned()
        } else {
            format!("not recovered: {}", refused.join(", "))
        },
    ));

    // No answer later than the request timeout (plus slack).
    let slowest = stats.slowest_any();
    let bound = LIMITS.request_timeout + Duration::from_millis(1_000);
    if slowest > bound {
        checks.push(check(
            false,
            format!("an attempt took {} (bound {})", secs(slowest), secs(bound)),
        ));
    }
    if key == "slow-db" {
        let failed: u64 = stats.codes.values().sum();
        checks.push(check(
            failed > 0,
            format!(
                "{failed} attempts ended by the lock, the slowest after {}",
                secs(stats.slowest.values().copied().max().unwrap_or_default())
            ),
        ));
    }
    if key == "pool" {
        // The fault bit, and the refusals came quickly.
        let refusals = stats.codes.get("UNAVAILABLE").copied().unwrap_or(0)
            + stats.codes.get("RESOURCE_EXHAUSTED").copied().unwrap_or(0);
        let quick = ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
            .iter()
            .filter_map(|c| stats.slowest.get(*c))
            .copied()
            .max()
            .unwrap_or_default();
        let bound = LIMITS.db_acquire_timeout + Duration::from_millis(1_000);
        checks.push(check(
            refusals > 0 && quick <= bound,
            format!("{refusals} refusals while the pools were taken, the slowest after {} (acquire timeout {})", secs(quick), secs(LIMITS.db_acquire_timeout)),
        ));
    }

    let stored = crate::check::stored(&env.db, &prefix, &stats.acked).await?;
    eprintln!(
        "corridor-chaos: {fault}: done in {}",
        secs(started.elapsed())
    );
    Ok(Row {
        fault,
        stats,
        stored,
        allowed,
        checks,
    })
}
