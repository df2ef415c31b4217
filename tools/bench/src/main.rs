//! `corridor-bench`: the end-to-end benchmark (README "Benchmarks").
//!
//! It starts the release server with a production configuration on a fresh
//! database, pinned to one CPU, and drives it over gRPC from this process,
//! pinned to the other (`scripts/bench` does the pinning): closed-loop
//! load, every status code counted, only OK answers counted as throughput.
//! In the same run it measures the baselines each ratio needs: in-process
//! EdDSA decodes of the very token it verifies, pgbench single-row and
//! multi-row inserts at the same concurrency, and in-process policy
//! decisions on the same inputs. It prints one table and, with `--out`,
//! rewrites the figures section of docs/PERFORMANCE.md. No test asserts a
//! throughput; the table says which targets are met.

mod baselines;
mod load;
mod report;
mod servers;
mod settle;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use corridor_proto::v1;
use corridor_proto::v1::city_registry_service_client::CityRegistryServiceClient;
use corridor_proto::v1::credential_service_client::CredentialServiceClient;
use corridor_proto::v1::recognition_service_client::RecognitionServiceClient;
use corridor_proto::v1::verification_service_client::VerificationServiceClient;
use sea_orm::{ConnectOptions, ConnectionTrait, Database};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::report::{Row, Table};
use crate::servers::{Server, Setup};

/// The end-to-end benchmark of the corridor service.
#[derive(Debug, Parser)]
#[command(name = "corridor-bench")]
struct Args {
    /// The server binary (a release build).
    #[arg(long, default_value = "target/release/corridor")]
    server_bin: PathBuf,
    /// Postgres to create the benchmark database on (any database of the server).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Seconds per row of load.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Requests in flight per row (the "16 in flight" rows).
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Connections the in-flight requests share.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Revoke-then-verify tries across two replicas (R4).
    #[arg(long, default_value_t = 1000)]
    stale_tries: usize,
    /// Stored credentials for the small and large S1 runs.
    #[arg(long, num_args = 2, default_values_t = [10_000u64, 1_000_000u64])]
    stored: Vec<u64>,
    /// Seconds of mixed load before reading the server's RSS (M1).
    #[arg(long, default_value_t = 60.0)]
    mixed_seconds: f64,
    /// The CPU the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// A tiny run (CI): short rows, few tries, small tables.
    #[arg(long)]
    quick: bool,
    /// Rewrite the figures section of this file (docs/PERFORMANCE.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only these rows (e.g. `R1,R2`; `health` for the health row); the
    /// baselines are measured only when a selected row needs them.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where logs and the configuration go.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
}

fn authed<T>(msg: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(r)
}

/// A national ID with its check digit, from 17 digits.
fn national_id(first17: &str) -> anyhow::Result<String> {
    corridor_domain::holder::NationalId::with_check_digit(first17)
        .ok_or_else(|| anyhow::anyhow!("bad id"))
}

fn issue_request(
    request_id: String,
    city: &str,
    category: v1::QualificationCategory,
    series: &str,
    level: i32,
    holder: &str,
) -> v1::IssueCredentialRequest {
    v1::IssueCredentialRequest {
        request_id,
        issuer_city: city.into(),
        qualification: Some(v1::Qualification {
            category: category.into(),
            series: series.into(),
            level,
            title: "高级工程师".into(),
        }),
        holder_name: "张三".into(),
        holder_national_id: holder.into(),
        valid_from: None,
        valid_until: None,
    }
}

/// The request the load rows send: a Hangzhou 副高级 engineering title for
/// `holder`, with a fresh request id under `prefix`.
fn title_request(ctx: &Ctx, prefix: &str, holder: &str) -> v1::IssueCredentialRequest {
    issue_request(
        format!("{prefix}-{}", ctx.next()),
        "hangzhou",
        v1::QualificationCategory::ProfessionalTitle,
        "engineering",
        4,
        holder,
    )
}

struct Ctx {
    args: Args,
    setup: Setup,
    channels: Vec<Channel>,
    issuer: String,
    employer: String,
    recognizer: String,
    unique: Arc<AtomicU64>,
}

impl Ctx {
    fn wants(&self, row: &str) -> bool {
        self.args.only.is_empty() || self.args.only.iter().any(|o| o.eq_ignore_ascii_case(row))
    }

    fn channel(&self, task: usize) -> Channel {
        self.channels[task % self.channels.len()].clone()
    }

    fn next(&self) -> u64 {
        self.unique.fetch_add(1, Ordering::Relaxed)
    }

    async fn issue(
        &self,
        city: &str,
        cat: v1::QualificationCategory,
        series: &str,
        level: i32,
        holder: &str,
    ) -> anyhow::Result<v1::Credential> {
        let token = self
            .setup
            .token(&format!("{city}-hr"), Some(city), &["issuer"])?;
        let req = issue_request(
            format!("seed-{}", self.next()),
            city,
            cat,
            series,
            level,
            holder,
        );
        CredentialServiceClient::new(self.channel(0))
            .issue_credential(authed(req, &token)?)
            .await?
            .into_inner()
            .credential
            .ok_or_else(|| anyhow::anyhow!("no credential"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.seconds = args.seconds.min(1.5);
        args.stale_tries = args.stale_tries.min(50);
        args.stored = vec![1_000, 5_000];
        args.mixed_seconds = args.mixed_seconds.min(3.0);
    }
    anyhow::ensure!(
        args.server_bin.exists(),
        "no server binary at {} (cargo build --release --bin corridor)",
        args.server_bin.display()
    );
    std::fs::create_dir_all(&args.work_dir)?;
    let setup = Setup::new(&args.database_url, &args.work_dir).await?;
    let result = run(args, setup).await;
    if let Err(e) = &result {
        eprintln!("corridor-bench: {e:#}");
    }
    result
}

async fn run(args: Args, setup: Setup) -> anyhow::Result<()> {
    let bin = args.server_bin.clone();
    let a = Server::start(
        &bin,
        &setup,
        20_651,
        args.server_cpu,
        &args.work_dir.join("server-a.log"),
    )
    .await?;
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(a.channel().await?);
    }
    let ctx = Arc::new(Ctx {
        issuer: setup.token("hangzhou-hr", Some("hangzhou"), &["issuer"])?,
        employer: setup.token("employer-1", None, &["verifier"])?,
        recognizer: setup.token("songjiang-office", Some("songjiang"), &["recognizer"])?,
        setup,
        channels,
        unique: Arc::new(AtomicU64::new(0)),
        args,
    });
    let outcome = rows(&ctx, &a, &bin).await;
    let rss = a.rss_mib().ok();
    a.stop();
    ctx.setup.drop_database().await?;
    let mut table = outcome?;
    if let Some(rss) = rss {
        table.note(format!("server RSS at the end of the run: {rss:.0} MiB"));
    }
    table.print();
    if let Some(out) = &ctx.args.out {
        table.write_markdown(out, &command_line())?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("scripts/bench {}", args.join(" "))
        .trim()
        .to_owned()
}

async fn rows(ctx: &Arc<Ctx>, a: &Server, bin: &std::path::Path) -> anyhow::Result<Table> {
    let secs = ctx.args.seconds;
    let n = ctx.args.in_flight;
    let mut table = Table::default();
    let holder = national_id("33010619900101123")?;
    let subject = ctx
        .issue(
            "hangzhou",
            v1::QualificationCategory::ProfessionalTitle,
            "engineering",
            4,
            &holder,
        )
        .await?;
    let keys = CityRegistryServiceClient::new(ctx.channel(0))
        .get_issuer_keys(v1::GetIssuerKeysRequest {
            city: "hangzhou".into(),
        })
        .await?
        .into_inner();
    let x = keys
        .keys
        .iter()
        .find(|k| k.kid == subject.kid)
        .map(|k| k.x.clone())
        .ok_or_else(|| anyhow::anyhow!("the signing key is not published"))?;

    // Baselines first, on an idle machine; only those a selected row needs.
    // Those that write audit events (the issuance and batch statements)
    // wait, like the rows, until the sequencer has chained the events
    // written before them.
    let need = |rows: &[&str]| rows.iter().any(|r| ctx.wants(r));
    let mut settle = settle::Settler::connect(&ctx.setup.database_url).await?;
    if need(&["R1", "R1b"]) {
        let decode = baselines::decode_rate(&subject.token, &x, secs.min(3.0))?;
        table.baseline(
            format!(
                "in-process jsonwebtoken EdDSA decode of the same {}-byte token, one thread",
                subject.token.len()
            ),
            decode,
            "decodes/s",
        );
    }
    let decode = table.baseline_value(0);
    let decide = if need(&["R3"]) {
        let d = baselines::decide_rate(secs.min(3.0))?;
        table.baseline(
            "in-process Engine::decide_explained (the decision and its explanation), same inputs, one thread".into(),
            d,
            "decisions/s",
        );
        d
    } else {
        f64::NAN
    };
    let (pg1, pg16) = if need(&["R2"]) {
        let pg1 = baselines::single_row_tps(&ctx.setup.database_url, 1, secs).await?;
        let pg16 = baselines::single_row_tps(&ctx.setup.database_url, n, secs).await?;
        for clients in [1, n] {
            settle
                .before(&format!(
                    "the issuance statement's pgbench at {clients} client(s)"
                ))
                .await?;
            let ceiling =
                baselines::issuance_statement(&ctx.setup.database_url, &subject.kid, clients, secs)
                    .await?;
            // Its latency, to set R2's tail against the database's own.
            table.baseline(
                format!(
                    "pgbench of the issuance statement itself (3 rows, 8 index entries), {clients} client(s), p50 {:.2} ms, p99 {:.2} ms: the database's ceiling for IssueCredential",
                    ceiling.ms(0.5),
                    ceiling.ms(0.99)
                ),
                ceiling.tps,
                "tps",
            );
        }
        table.baseline(
            "pgbench single-row insert (700-byte row), 1 client".into(),
            pg1,
            "tps",
        );
        table.baseline(
            format!("pgbench single-row insert (700-byte row), {n} clients"),
            pg16,
            "tps",
        );
        (pg1, pg16)
    } else {
        (f64::NAN, f64::NAN)
    };
    let pg_multi = if need(&["R2b"]) {
        let m = baselines::multi_row_rows(&ctx.setup.database_url, n, secs).await?;
        table.baseline(
            format!("pgbench multi-row insert (100 rows/statement), {n} clients"),
            m,
            "rows/s",
        );
        m
    } else {
        f64::NAN
    };
    if need(&["R2b"]) {
        settle.before("the batch statement's pgbench").await?;
        let ceiling =
            baselines::issue_many_rows(&ctx.setup.database_url, &subject.kid, 4, secs).await?;
        table.baseline(
            format!(
                "pgbench of the batch statement itself (100 rows a statement, each 3 rows and 8 index entries), 4 clients: the database's ceiling for R2b, {:.2} × pgbench multi-row",
                ceiling / pg_multi
            ),
            ceiling,
            "rows/s",
        );
        // Every issued row is signed on the server's one core: the most
        // rows a second it could issue, whatever the database does.
        let s = baselines::sign_rate(servers::PUBLIC_URL, secs.min(3.0))?;
        table.baseline(
            format!(
                "in-process vc::sign of a credential like the benchmark's, one thread: R2b's ceiling on one core, {:.2} × pgbench multi-row",
                s / pg_multi
            ),
            s,
            "signatures/s",
        );
    }

    if ctx.wants("health") {
        settle.before("health").await?;
        // Health: the transport alone.
        let m = load::drive(secs, n, {
            let ctx = ctx.clone();
            move |t, _| {
                let mut c = HealthClient::new(ctx.channel(t));
                async move { c.check(HealthCheckRequest::default()).await.map(|_| ()) }
            }
        })
        .await?;
        table.row(Row::new(
            "",
            format!("grpc.health.v1 Check, {n} in flight"),
            m,
        ));
    }
    if ctx.wants("R1") {
        settle.before("R1").await?;
        // R1: verify by token.
        let token = Arc::new(subject.token.clone());
        let m = load::drive(secs, n, {
            let ctx = ctx.clone();
            let token = token.clone();
            move |t, _| {
                let mut c = VerificationServiceClient::new(ctx.channel(t));
                let req = authed(
                    v1::VerifyCredentialRequest {
                        credential: Some(v1::verify_credential_request::Credential::Token(
                            (*token).clone(),
                        )),
                        ..Default::default()
                    },
                    &ctx.employer,
                );
                async move {
                    c.verify_credential(req.map_err(|e| tonic::Status::internal(e.to_string()))?)
                        .await
                        .map(|_| ())
                }
            }
        })
        .await?;
        table.row(
            Row::new("R1", format!("VerifyCredential by token, {n} in flight"), m).against(
                decode,
                "≥ 0.85 × decode",
                0.85,
            ),
        );
    }
    if ctx.wants("R1b") {
        settle.before("R1b").await?;
        // R1b: verify by id with the holder check.
        let m = load::drive(secs, n, {
            let ctx = ctx.clone();
            let id = subject.id.clone();
            let holder = holder.clone();
            move |t, _| {
                let mut c = VerificationServiceClient::new(ctx.channel(t));
                let req = authed(
                    v1::VerifyCredentialRequest {
                        credential: Some(v1::verify_credential_request::Credential::CredentialId(
                            id.clone(),
                        )),
                        holder_national_id: holder.clone(),
                        recognition_city: String::new(),
                    },
                    &ctx.employer,
                );
                async move {
                    c.verify_credential(req.map_err(|e| tonic::Status::internal(e.to_string()))?)
                        .await
                        .map(|_| ())
                }
            }
        })
        .await?;
        table.row(
            Row::new(
                "R1b",
                format!("VerifyCredential by id + holder, {n} in flight"),
                m,
            )
            .against(decode, "≥ 0.7 × decode", 0.7),
        );
    }
    if ctx.wants("R2") {
        // R2: issuance at 1 and n in flight.
        for (flight, base) in [(1usize, pg1), (n, pg16)] {
            settle.before(&format!("R2 at {flight} in flight")).await?;
            let m = load::drive(secs, flight, {
                let ctx = ctx.clone();
                let holder = holder.clone();
                move |t, _| {
                    let mut c = CredentialServiceClient::new(ctx.channel(t));
                    let req = authed(title_request(&ctx, "bench", &holder), &ctx.issuer);
                    async move {
                        c.issue_credential(req.map_err(|e| tonic::Status::internal(e.to_string()))?)
                            .await
                            .map(|_| ())
                    }
                }
            })
            .await?;
            table.row(
                Row::new("R2", format!("IssueCredential, {flight} in flight"), m).against(
                    base,
                    "≥ 0.6 × pgbench single-row",
                    0.6,
                ),
            );
        }
    }
    if ctx.wants("R2b") {
        settle.before("R2b").await?;
        // R2b: batches of BATCH items, 4 in flight; a batch counts only when
        // every item was issued (an item error is the batch's error code),
        // and the rate is of rows (items), the latency of whole batches.
        const BATCH: u64 = 100;
        let flight = 4usize;
        let mut m = load::drive(secs, flight, {
            let ctx = ctx.clone();
            let holder = holder.clone();
            move |t, _| {
                let mut c = CredentialServiceClient::new(ctx.channel(t));
                let items = (0..BATCH)
                    .map(|_| title_request(&ctx, "bench", &holder))
                    .collect();
                let req = authed(v1::BatchIssueCredentialsRequest { items }, &ctx.issuer);
                async move {
                    let r = c
                        .batch_issue_credentials(
                            req.map_err(|e| tonic::Status::internal(e.to_string()))?,
                        )
                        .await?
                        .into_inner();
                    for item in r.results {
                        if let Some(v1::batch_issue_result::Result::Error(e)) = item.result {
                            return Err(tonic::Status::new(tonic::Code::from(e.code), e.message));
                        }
                    }
                    Ok(())
                }
            }
        })
        .await?;
        m.ok *= BATCH;
        table.row(
            Row::new(
                "R2b",
                format!("BatchIssueCredentials, rows/s, batches of {BATCH}, {flight} in flight (p50/p99 per batch)"),
                m,
            )
            .against(pg_multi, "≥ 0.6 × pgbench multi-row", 0.6),
        );
    }
    let hefei_title = ctx
        .issue(
            "hefei",
            v1::QualificationCategory::ProfessionalTitle,
            "engineering",
            4,
            &national_id("34010419900202002")?,
        )
        .await?;
    if ctx.wants("R3") {
        settle.before("R3").await?;
        // R3: a dry-run decision.
        let m = load::drive(secs, n, {
            let ctx = ctx.clone();
            let id = hefei_title.id.clone();
            move |t, _| {
                let mut c = RecognitionServiceClient::new(ctx.channel(t));
                let req = authed(
                    v1::EvaluateRecognitionRequest {
                        credential_id: id.clone(),
                        target_city: "songjiang".into(),
                        facts: Some(v1::RecognitionFacts {
                            local_social_insurance_months: Some(3),
                            ..Default::default()
                        }),
                        as_of: None,
                    },
                    &ctx.recognizer,
                );
                async move {
                    c.evaluate_recognition(req.map_err(|e| tonic::Status::internal(e.to_string()))?)
                        .await
                        .map(|_| ())
                }
            }
        })
        .await?;
        table.row(
            Row::new("R3", format!("EvaluateRecognition, {n} in flight"), m).against(
                decide,
                "≥ 0.8 × Engine::decide",
                0.8,
            ),
        );
    }
    if ctx.wants("recognition") {
        settle.before("recognition").await?;
        // Recorded recognitions, for information: first of one credential
        // each per task (many holders, the usual case), then all of one
        // credential. A recognition locks its source credential's row until
        // it commits (so that a revocation's cascade sees it, and a
        // revocation is never starved), so the second row shows how fast
        // one credential's recognitions follow each other.
        let mut titles = Vec::with_capacity(n);
        for t in 0..n {
            let first17 = format!("340104199002{:05}", 2000 + t);
            let c = ctx
                .issue(
                    "hefei",
                    v1::QualificationCategory::ProfessionalTitle,
                    "engineering",
                    4,
                    &national_id(&first17)?,
                )
                .await?;
            titles.push(c.id);
        }
        let rows = [
            (
                format!("RequestRecognition, {n} in flight, {n} credentials"),
                titles,
            ),
            (
                format!("RequestRecognition, {n} in flight, 1 credential"),
                vec![hefei_title.id.clone()],
            ),
        ];
        for (what, ids) in rows {
            let m = load::drive(secs, n, {
                let ctx = ctx.clone();
                let ids = std::sync::Arc::new(ids);
                move |t, _| {
                    let mut c = RecognitionServiceClient::new(ctx.channel(t));
                    let req = authed(
                        v1::RequestRecognitionRequest {
                            request_id: format!("rec-{}", ctx.next()),
                            credential_id: ids[t % ids.len()].clone(),
                            target_city: "songjiang".into(),
                            facts: None,
                        },
                        &ctx.recognizer,
                    );
                    async move {
                        c.request_recognition(
                            req.map_err(|e| tonic::Status::internal(e.to_string()))?,
                        )
                        .await
                        .map(|_| ())
                    }
                }
            })
            .await?;
            table.row(Row::new("", what, m));
        }
    }
    if ctx.wants("R4") {
        settle.before("R4").await?;
        // R4: revoke on one replica, verify on another.
        let b = Server::start(
            bin,
            &ctx.setup,
            20_652,
            ctx.args.server_cpu,
            &ctx.args.work_dir.join("server-b.log"),
        )
        .await?;
        let r4 = stale_tries(ctx, &b).await;
        b.stop();
        let (stale, tries) = r4?;
        table.check(
            "R4",
            format!("revoke on replica A, verify on replica B, {tries} tries"),
            format!("{stale} stale"),
            "0 stale answers",
            stale == 0,
        );
    }
    if ctx.wants("S1") {
        settle.before("S1").await?;
        // S1: verify p99 with few and many stored credentials.
        let s1 = stored_scaling(ctx, a).await?;
        table.check(
            "S1",
            format!(
                "verify p99 with {} vs {} stored credentials",
                ctx.args.stored[1], ctx.args.stored[0]
            ),
            format!("{:.2} ms vs {:.2} ms ({:.2}x)", s1.1, s1.0, s1.1 / s1.0),
            "≤ 1.2 ×",
            s1.1 <= 1.2 * s1.0,
        );
    }
    if ctx.wants("M1") {
        settle.before("M1").await?;
        // M1: RSS after mixed load.
        // RSS at half-time too: a server that keeps growing under steady
        // load shows it here long before it reaches the bound.
        let pid = a.pid();
        let half = Duration::from_secs_f64((ctx.args.mixed_seconds / 2.0).max(0.0));
        let at_half = tokio::spawn(async move {
            tokio::time::sleep(half).await;
            servers::rss_mib_of(pid)
        });
        let m = mixed(ctx, &holder, &hefei_title.id).await?;
        let rss = a.rss_mib()?;
        let at_half = at_half.await??;
        if !half.is_zero() {
            table.note(format!(
            "server RSS during the mixed load: {at_half:.1} MiB at half-time, {rss:.1} MiB at the end ({:+.1} MiB/min over the second half)",
            (rss - at_half) / (half.as_secs_f64() / 60.0)
        ));
        }
        table.row(Row::new(
            "",
            format!(
                "mixed load (verify, issue, evaluate), {n} in flight, {:.0} s",
                ctx.args.mixed_seconds
            ),
            m,
        ));
        table.check(
            "M1",
            format!(
                "server RSS after {:.0} s of mixed load",
                ctx.args.mixed_seconds
            ),
            format!("{rss:.0} MiB"),
            "≤ 150 MiB",
            rss <= 150.0,
        );
    }
    // And after the last row: a sequencer that stopped during it shows.
    settle.before("the end of the run").await?;
    if let Some(n) = settle.note() {
        table.note(n);
    }
    Ok(table)
}

/// Revokes on A and verifies on B right after the acknowledgement.
/// Returns (stale answers, tries).
async fn stale_tries(ctx: &Arc<Ctx>, b: &Server) -> anyhow::Result<(usize, usize)> {
    let holder = national_id("33010619900101123")?;
    let mut creds = CredentialServiceClient::new(ctx.channel(0));
    let mut on_b = VerificationServiceClient::new(b.channel().await?);
    let mut stale = 0;
    for i in 0..ctx.args.stale_tries {
        let c = ctx
            .issue(
                "hangzhou",
                v1::QualificationCategory::ProfessionalTitle,
                "engineering",
                4,
                &holder,
            )
            .await?;
        let verify = |id: String| {
            authed(
                v1::VerifyCredentialRequest {
                    credential: Some(v1::verify_credential_request::Credential::CredentialId(id)),
                    ..Default::default()
                },
                &ctx.employer,
            )
        };
        // B has seen it valid (and may remember that).
        let before = on_b
            .verify_credential(verify(c.id.clone())?)
            .await?
            .into_inner();
        anyhow::ensure!(before.valid, "a fresh credential did not verify on B");
        creds
            .revoke_credential(authed(
                v1::RevokeCredentialRequest {
                    request_id: format!("r4-{i}-{}", ctx.next()),
                    id: c.id.clone(),
                    reason: "benchmark".into(),
                },
                &ctx.issuer,
            )?)
            .await?;
        let after = on_b.verify_credential(verify(c.id)?).await?.into_inner();
        if after.valid {
            stale += 1;
        }
    }
    Ok((stale, ctx.args.stale_tries))
}

/// Verify p99 (ms) with the small and the large number of stored credentials.
async fn stored_scaling(ctx: &Arc<Ctx>, a: &Server) -> anyhow::Result<(f64, f64)> {
    let holder = national_id("33010619900101123")?;
    let mut tokens = Vec::new();
    for _ in 0..200 {
        tokens.push(
            ctx.issue(
                "hangzhou",
                v1::QualificationCategory::ProfessionalTitle,
                "engineering",
                4,
                &holder,
            )
            .await?
            .token,
        );
    }
    let tokens = Arc::new(tokens);
    let db = Database::connect(ConnectOptions::new(ctx.setup.database_url.clone())).await?;
    let mut p99 = Vec::new();
    for &target in &ctx.args.stored {
        fill(&db, target).await?;
        let m = load::drive(ctx.args.seconds, ctx.args.in_flight, {
            let ctx = ctx.clone();
            let tokens = tokens.clone();
            move |t, k| {
                let mut c = VerificationServiceClient::new(ctx.channel(t));
                let token = tokens[(t * 7919 + k as usize) % tokens.len()].clone();
                let req = authed(
                    v1::VerifyCredentialRequest {
                        credential: Some(v1::verify_credential_request::Credential::Token(token)),
                        ..Default::default()
                    },
                    &ctx.employer,
                );
                async move {
                    c.verify_credential(req.map_err(|e| tonic::Status::internal(e.to_string()))?)
                        .await
                        .map(|_| ())
                }
            }
        })
        .await?;
        anyhow::ensure!(
            m.errors.is_empty(),
            "verify errors during S1: {}",
            m.error_summary()
        );
        p99.push(m.ms(0.99));
    }
    let _ = a;
    db.close().await?;
    Ok((p99[0], p99[1]))
}

/// Copies a stored credential under new ids until `target` are stored.
async fn fill(db: &sea_orm::DatabaseConnection, target: u64) -> anyhow::Result<()> {
    let have = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*)::bigint AS n FROM credentials",
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    let missing = i64::try_from(target)?.saturating_sub(have);
    let started = Instant::now();
    let mut left = missing;
    while left > 0 {
        let chunk = left.min(100_000);
        db.execute_unprepared(&format!(
            "INSERT INTO credentials (id, issuer_city, category, series, level, title, holder_name, holder_hash, valid_from, valid_until, status, status_reason, kid, token, issued_by, issued_at, updated_at)
             SELECT gen_random_uuid(), issuer_city, category, series, level, title, holder_name, holder_hash, valid_from, valid_until, status, status_reason, kid, token, issued_by, issued_at - make_interval(secs => g), updated_at
             FROM (SELECT * FROM credentials LIMIT 1) c, generate_series(1, {chunk}) g"
        ))
        .await?;
        left -= chunk;
    }
    if missing > 0 {
        db.execute_unprepared("VACUUM ANALYZE credentials").await?;
        eprintln!(
            "stored {missing} more credentials in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Verify, issue and evaluate, interleaved.
async fn mixed(ctx: &Arc<Ctx>, holder: &str, hefei: &str) -> anyhow::Result<load::Measured> {
    let holder = holder.to_owned();
    let hefei = hefei.to_owned();
    load::drive(ctx.args.mixed_seconds, ctx.args.in_flight, {
        let ctx = ctx.clone();
        move |t, k| {
            let ctx = ctx.clone();
            let holder = holder.clone();
            let hefei = hefei.clone();
            async move {
                let bad = |e: anyhow::Error| tonic::Status::internal(e.to_string());
                match (t as u64 + k) % 4 {
                    0 => {
                        let req = authed(title_request(&ctx, "mix", &holder), &ctx.issuer)
                            .map_err(bad)?;
                        CredentialServiceClient::new(ctx.channel(t))
                            .issue_credential(req)
                            .await
                            .map(|_| ())
                    }
                    1 => {
                        let req = authed(
                            v1::EvaluateRecognitionRequest {
                                credential_id: hefei,
                                target_city: "songjiang".into(),
                                facts: None,
                                as_of: None,
                            },
                            &ctx.recognizer,
                        )
                        .map_err(bad)?;
                        RecognitionServiceClient::new(ctx.channel(t))
                            .evaluate_recognition(req)
                            .await
                            .map(|_| ())
                    }
                    _ => {
                        let req = authed(
                            v1::VerifyCredentialRequest {
                                credential: Some(
                                    v1::verify_credential_request::Credential::CredentialId(hefei),
                                ),
                                ..Default::default()
                            },
                            &ctx.employer,
                        )
                        .map_err(bad)?;
                        VerificationServiceClient::new(ctx.channel(t))
                            .verify_credential(req)
                            .await
                            .map(|_| ())
                    }
                }
            }
        }
    })
    .await
}
