//! The baselines the ratios need, measured in the same run on the same
//! machine: what the hardware and Postgres can do with no service around.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use corridor_domain::qualification::Category;
use corridor_policy::{DEFAULT_POLICIES, Engine as PolicyEngine, Facts, Subject, Target};
use hdrhistogram::Histogram;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sea_orm::{ConnectOptions, ConnectionTrait, Database};

use crate::load::in_process_rate;

/// In-process `jsonwebtoken` EdDSA decodes per second of `token` (one thread).
pub fn decode_rate(token: &str, x: &str, seconds: f64) -> anyhow::Result<f64> {
    let key = DecodingKey::from_ed_der(&URL_SAFE_NO_PAD.decode(x)?);
    let mut v = Validation::new(Algorithm::EdDSA);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    in_process_rate(seconds, || {
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).is_ok()
    })
}

/// In-process signatures per second of a credential like the benchmark's
/// (the same claims and status entries, a fresh Hangzhou key) by
/// `corridor_domain::vc::sign`, the issuance path's own signing call (one
/// thread): the most rows a server on one core could ever issue, whatever
/// the database does.
pub fn sign_rate(public_url: &str, seconds: f64) -> anyhow::Result<f64> {
    use corridor_domain::city::CityCode;
    use corridor_domain::credential::ValidityWindow;
    use corridor_domain::keys::IssuerSigningKey;
    use corridor_domain::qualification::Qualification;
    use corridor_domain::status_list::StatusEntry;
    use corridor_domain::vc::{CredentialClaims, StatusListEntry, sign};
    let bad = |v: corridor_domain::Violations| anyhow::anyhow!("{v:?}");
    let now = Utc::now();
    let city = CityCode::parse("city", "hangzhou").map_err(bad)?;
    let key = IssuerSigningKey::generate(&city, now).map_err(|e| anyhow::anyhow!("{e}"))?;
    let claims = CredentialClaims {
        id: uuid::Uuid::now_v7(),
        issuer_city: city.clone(),
        qualification: Qualification::parse(
            "qualification",
            Some(Category::ProfessionalTitle),
            "engineering",
            4,
            "高级工程师",
        )
        .map_err(bad)?,
        holder_name: "张三".into(),
        window: ValidityWindow::parse(now, None, "valid_until").map_err(bad)?,
        issued_at: now,
        status: StatusListEntry::for_entry(
            public_url,
            &city,
            StatusEntry {
                list: 1,
                index: 4242,
            },
        ),
    };
    in_process_rate(seconds, || sign(&key, &claims).is_ok())
}

/// In-process decisions per second of a 副高级 title from Hefei into
/// Songjiang (CONDITIONAL, explained in full by `Engine::decide_explained`, the call
/// EvaluateRecognition makes).
pub fn decide_rate(seconds: f64) -> anyhow::Result<f64> {
    let src = DEFAULT_POLICIES
        .iter()
        .find(|(c, _)| *c == "songjiang")
        .map(|(_, s)| *s)
        .ok_or_else(|| anyhow::anyhow!("no songjiang policy"))?;
    let engine = PolicyEngine::new().map_err(anyhow::Error::msg)?;
    let policy = engine.load(src).map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let now = Utc::now();
    let subject = Subject::synthetic(
        Category::ProfessionalTitle,
        "engineering",
        4,
        "hefei",
        "Anhui",
        now,
    );
    let target = Target {
        city: "songjiang".into(),
        province: "Shanghai".into(),
    };
    let facts = Facts {
        local_social_insurance_months: Some(3),
        ..Facts::default()
    };
    in_process_rate(seconds, || {
        engine
            .decide_explained(Some(&policy), &subject, &target, &facts, now)
            .is_ok()
    })
}

/// What pgbench measured: its rate, and the latency of every transaction
/// (microseconds, from its per-transaction log), so that a row's tail can be
/// set against the database's own.
pub struct Pgbench {
    /// Transactions per second.
    pub tps: f64,
    /// Latency of each transaction, microseconds.
    pub latency: Histogram<u64>,
}

impl Pgbench {
    /// A latency percentile, milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// The latency, microseconds, of one line of pgbench's per-transaction log
/// (`client_id transaction_no time script_no time_epoch time_us ...`; `time`
/// is `failed` or `skipped` for a transaction that did not complete).
fn pgbench_log_latency(line: &str) -> Option<u64> {
    line.split_whitespace().nth(2)?.parse().ok()
}

/// pgbench of `script` with `clients` clients for `seconds`.
fn pgbench(
    database_url: &str,
    script: &str,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<Pgbench> {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "corridor-bench-pgbench-{}-{run}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let result = pgbench_in(&dir, database_url, script, clients, seconds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn pgbench_in(
    dir: &std::path::Path,
    database_url: &str,
    script: &str,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<Pgbench> {
    let file = dir.join("script.sql");
    std::fs::write(&file, script)?;
    let out = Command::new("pgbench")
        .args(["-n", "-f"])
        .arg(&file)
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
            "-T",
            &(seconds.ceil() as u64).max(1).to_string(),
            "--log",
        ])
        .arg(format!("--log-prefix={}", dir.join("tx").display()))
        .arg(database_url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "pgbench gave no tps: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    // One log file per pgbench thread: tx.<pid>, tx.<pid>.<thread>.
    let mut latency = Histogram::new_with_bounds(1, 60_000_000, 3)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("tx."));
        if is_log {
            for line in std::fs::read_to_string(&path)?.lines() {
                if let Some(us) = pgbench_log_latency(line) {
                    latency.saturating_record(us.max(1));
                }
            }
        }
    }
    anyhow::ensure!(
        !latency.is_empty(),
        "pgbench wrote no per-transaction log in {}",
        dir.display()
    );
    Ok(Pgbench { tps, latency })
}

/// Single-row inserts of a 700-byte row per second, at `clients`.
pub async fn single_row_tps(
    database_url: &str,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    prepare(database_url).await?;
    Ok(pgbench(
        database_url,
        "INSERT INTO bench_rows VALUES (gen_random_uuid(), repeat('x', 700), now());\n",
        clients,
        seconds,
    )?
    .tps)
}

/// Rows per second inserted 100 at a time by multi-row statements, at `clients`.
pub async fn multi_row_rows(
    database_url: &str,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    prepare(database_url).await?;
    let tps = pgbench(
        database_url,
        "INSERT INTO bench_rows SELECT gen_random_uuid(), repeat('x', 700), now() FROM generate_series(1, 100);\n",
        clients,
        seconds,
    )?
    .tps;
    Ok(tps * 100.0)
}

async fn prepare(database_url: &str) -> anyhow::Result<()> {
    let db = Database::connect(ConnectOptions::new(database_url.to_owned())).await?;
    db.execute_unprepared(
        "CREATE TABLE IF NOT EXISTS bench_rows (id uuid PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL)",
    )
    .await?;
    db.execute_unprepared("TRUNCATE bench_rows").await?;
    db.close().await?;
    Ok(())
}

/// Transactions per second pgbench gets from the very statement an
/// issuance runs (`ISSUE_STATEMENT`, its parameters as literals of the same
/// sizes), at `clients`: what the database alone makes of an issuance's
/// writes (three rows, eight index entries), the ceiling of IssueCredential,
/// with the latency of each execution.
pub async fn issuance_statement(
    database_url: &str,
    kid: &str,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<Pgbench> {
    let literals: [(usize, String); 28] = [
        (1, format!("'{kid}'")),
        (2, "'hangzhou'".into()),
        (3, "'pgbench'".into()),
        (4, "gen_random_uuid()::text".into()),
        (5, "'IssueCredential'".into()),
        (6, "repeat('a', 64)".into()),
        (7, "convert_to(repeat('x', 1400), 'UTF8')".into()),
        (8, "now()".into()),
        (9, "gen_random_uuid()".into()),
        (10, "'PROFESSIONAL_TITLE'".into()),
        (11, "'engineering'".into()),
        (12, "4".into()),
        (13, "'高级工程师'".into()),
        (14, "'张三'".into()),
        (15, "md5(random()::text) || md5(random()::text)".into()),
        (16, "now()".into()),
        (17, "NULL::timestamptz".into()),
        (18, "'active'".into()),
        (19, "repeat('t', 830)".into()),
        (20, "'pgbench'".into()),
        (21, "'pgbench'".into()),
        (22, "'hangzhou'".into()),
        (23, "'credential.issued'".into()),
        (24, "'credential'".into()),
        (25, "gen_random_uuid()::text".into()),
        (26, "'{\"issuer_city\":\"hangzhou\",\"category\":\"PROFESSIONAL_TITLE\",\"series\":\"engineering\",\"level\":4,\"kid\":\"k\"}'".into()),
        // A status entry: a random list and index (collisions negligible).
        (27, "(random() * 2147483646)::int".into()),
        (28, "(random() * 131071)::int".into()),
    ];
    let mut sql = corridor_server::store::credentials::ISSUE_STATEMENT.to_owned();
    // Highest first, so that $2 does not eat the start of $26 or $28.
    for (n, lit) in literals.iter().rev() {
        sql = sql.replace(&format!("${n}"), lit);
    }
    let script = format!(
        "{};\n",
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    pgbench(database_url, &script, clients, seconds)
}

/// Rows per second pgbench gets from the very statement a batch's rows are
/// written with (`ISSUE_MANY_STATEMENT`, 100 rows of the same sizes per
/// execution as one JSON parameter built in SQL), at `clients`: what the
/// database alone makes of BatchIssueCredentials' writes (for each row a
/// credential, an idempotency record and an audit event, with their index
/// entries), the ceiling of R2b. The sequencer's chain row of each event,
/// written later, is not included.
pub async fn issue_many_rows(
    database_url: &str,
    kid: &str,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let rows = format!(
        "(SELECT json_agg(json_build_object(\
         'ord', g, 'kid', '{kid}', 'city', 'hangzhou', 'request_id', gen_random_uuid()::text, \
         'payload_hash', repeat('a', 64), \
         'answer', translate(encode(convert_to(repeat('x', 1400), 'UTF8'), 'base64'), E'\\n', ''), \
         'id', gen_random_uuid(), 'category', 'PROFESSIONAL_TITLE', 'series', 'engineering', \
         'level', 4, 'title', '高级工程师', 'holder_name', '张三', \
         'holder_hash', md5(random()::text) || md5(random()::text), 'valid_from', now(), \
         'valid_until', NULL, 'status', 'active', 'token', repeat('t', 830), \
         'issued_by', 'pgbench', 'issued_at', now(), \
         'status_list', (random() * 2147483646)::int, 'status_index', (random() * 131071)::int, \
         'actor_city', 'hangzhou', 'action', 'credential.issued', 'subject_type', 'credential', \
         'detail', '{{\"issuer_city\":\"hangzhou\",\"category\":\"PROFESSIONAL_TITLE\",\"series\":\"engineering\",\"level\":4,\"kid\":\"k\"}}', \
         'event_city', 'hangzhou')) FROM generate_series(1, 100) g)"
    );
    let sql = corridor_server::store::credentials::ISSUE_MANY_STATEMENT
        .replace("$1", &rows)
        .replace("$2", "'pgbench'")
        .replace("$3", "'IssueCredential'");
    let script = format!(
        "{};\n",
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    Ok(pgbench(database_url, &script, clients, seconds)?.tps * 100.0)
}

#[cfg(test)]
mod tests {
    use super::pgbench_log_latency;

    #[test]
    fn a_pgbench_log_line_gives_its_latency_and_a_failed_one_none() {
        // PostgreSQL 15's format: client, transaction, latency (µs),
        // script, epoch seconds, microseconds.
        assert_eq!(
            pgbench_log_latency("0 199 2241 0 1764893535 113462"),
            Some(2241)
        );
        assert_eq!(pgbench_log_latency("3 12 failed 0 1764893535 113462"), None);
        assert_eq!(pgbench_log_latency("1 7 skipped 0 1764893535 1"), None);
        assert_eq!(pgbench_log_latency(""), None);
    }
}
