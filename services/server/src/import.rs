//! `corridor import FILE.csv`: registers a file of existing credentials
//! through BatchIssueCredentials on a running server, the API a city system
//! uses (no back door: the token decides what may be issued).
//!
//! The file has a header row naming its columns: `issuer_city`, `category`
//! (`PROFESSIONAL_TITLE`, `SKILL_LEVEL`, `PRACTICE_LICENSE`, `TALENT_TIER`,
//! `FOREIGN_WORK_PERMIT`), `series`, `level`, `title`, `holder_name`,
//! `holder_national_id`, and optionally `request_id`, `valid_from` and
//! `valid_until` (RFC 3339). A row without a request id gets one derived
//! from its contents, so importing the same file again issues nothing new.
//! Request ids are scoped per caller (the token's `sub`): import a file
//! again with the same subject's token, or give each row a `request_id` and
//! know that another subject's run would issue it again.
//! Rows that cannot be read are rejected here, unsent; every other row gets
//! the server's answer. What the server could not take for now, a whole
//! batch or single rows (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED,
//! RESOURCE_EXHAUSTED), is sent again, up to five times with a growing
//! pause, which the request ids make safe; any other refusal of a whole
//! batch stops the import.
//!
//! `https://` servers are reached over TLS: the system's roots plus
//! `ca_cert` if given, and `client_cert` for mutual TLS (a city token then
//! needs the city's certificate).

use std::time::Duration;

use corridor_proto::v1;
use corridor_proto::v1::batch_issue_result::Result as ItemResult;
use corridor_proto::v1::credential_service_client::CredentialServiceClient;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic::transport::Channel;

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The server's URL, e.g. `http://127.0.0.1:50051`.
    pub server: String,
    /// The bearer token (an `issuer` of the rows' city).
    pub token: String,
    /// Rows per BatchIssueCredentials call (1 to 1,000).
    pub batch: usize,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// A CA certificate (PEM) to trust for an `https://` server.
    pub ca_cert: Option<std::path::PathBuf>,
    /// A client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The codes that mean "not now" rather than "no".
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::ResourceExhausted
    )
}

/// Sends of one row or batch at most.
const ATTEMPTS: u32 = 5;

/// A channel to `opts.server`, over TLS for `https://` (the clients'
/// shared connection code).
async fn connect(opts: &ImportOptions) -> anyhow::Result<Channel> {
    crate::client::connect(&crate::client::Target {
        server: opts.server.clone(),
        ca_cert: opts.ca_cert.clone(),
        client_cert: opts.client_cert.clone(),
    })
    .await
}

/// A row that was not issued.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// Line of the file (the header is line 1).
    pub line: u64,
    /// The row's request id (given or derived), if it got that far.
    pub request_id: String,
    /// The gRPC code, e.g. `InvalidArgument`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The violated fields, for INVALID_ARGUMENT.
    pub fields: Vec<String>,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Rows read.
    pub rows: u64,
    /// Rows issued now or by an earlier import of the same rows.
    pub issued: u64,
    /// Rows not issued, in file order.
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Deserialize)]
struct Row {
    #[serde(default)]
    request_id: String,
    issuer_city: String,
    category: String,
    series: String,
    level: i32,
    title: String,
    holder_name: String,
    holder_national_id: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_until: String,
}

fn timestamp(field: &str, raw: &str) -> Result<Option<prost_types::Timestamp>, (String, String)> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let t = chrono::DateTime::parse_from_rfc3339(raw.trim()).map_err(|e| {
        (
            field.to_owned(),
            format!("not an RFC 3339 time ({e}): {raw}"),
        )
    })?;
    Ok(Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }))
}

/// A request id from the row's contents: the same row always gets the same.
fn derived_request_id(r: &Row) -> String {
    let mut h = Sha256::new();
    for f in [
        &r.issuer_city,
        &r.category,
        &r.series,
        &r.level.to_string(),
        &r.title,
        &r.holder_name,
        &r.holder_national_id,
        &r.valid_from,
        &r.valid_until,
    ] {
        h.update(f.as_bytes());
        h.update([0x1f]);
    }
    format!("import-{}", &hex::encode(h.finalize())[..32])
}

fn request_of(r: Row) -> Result<v1::IssueCredentialRequest, (String, String)> {
    let category =
        v1::QualificationCategory::from_str_name(&format!("QUALIFICATION_CATEGORY_{}", r.category))
            .filter(|c| *c != v1::QualificationCategory::Unspecified)
            .ok_or_else(|| {
                (
                    "category".to_owned(),
                    format!("unknown category {:?}", r.category),
                )
            })?;
    let request_id = if r.request_id.is_empty() {
        derived_request_id(&r)
    } else {
        r.request_id
    };
    Ok(v1::IssueCredentialRequest {
        request_id,
        issuer_city: r.issuer_city,
        qualification: Some(v1::Qualification {
            category: category.into(),
            series: r.series,
            level: r.level,
            title: r.title,
        }),
        holder_name: r.holder_name,
        holder_national_id: r.holder_national_id,
        valid_from: timestamp("valid_from", &r.valid_from)?,
        valid_until: timestamp("valid_until", &r.valid_until)?,
    })
}

/// Imports the CSV in `reader`.
pub async fn import(reader: impl std::io::Read, opts: &ImportOptions) -> anyhow::Result<Report> {
    anyhow::ensure!(
        (1..=crate::app::credentials::MAX_BATCH_ITEMS).contains(&opts.batch),
        "--batch must be 1 to {}",
        crate::app::credentials::MAX_BATCH_ITEMS
    );
    let mut client = CredentialServiceClient::new(connect(opts).await?);

    // Read everything first: the progress bar knows its length, and a file
    // that is not CSV stops before anything is sent.
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| anyhow::anyhow!("the header row: {e}"))?
        .clone();
    let mut report = Report::default();
    let mut pending: Vec<(u64, v1::IssueCredentialRequest)> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = csv.position().line();
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            // Not CSV (bad quoting, invalid UTF-8): nothing can be trusted after.
            Err(e) => anyhow::bail!("line {line}: {e}"),
        }
        report.rows += 1;
        let parsed = record
            .deserialize::<Row>(Some(&headers))
            .map_err(|e| (String::new(), e.to_string()))
            .and_then(request_of);
        match parsed {
            Ok(req) => pending.push((line, req)),
            Err((field, message)) => report.rejected.push(Rejected {
                line,
                request_id: String::new(),
                code: format!("{:?}", Code::InvalidArgument),
                message,
                fields: if field.is_empty() {
                    vec![]
                } else {
                    vec![field]
                },
            }),
        }
    }

    let bar = if opts.progress {
        indicatif::ProgressBar::new(pending.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for chunk in pending.chunks(opts.batch) {
        // Rows of this chunk still to send: all, then those the server
        // could not take for now.
        let mut todo: Vec<&(u64, v1::IssueCredentialRequest)> = chunk.iter().collect();
        let mut wait = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let results = send(&mut client, &opts.token, &todo).await?;
            let mut again = Vec::new();
            for (row, result) in todo.iter().copied().zip(results) {
                let (line, req) = row;
                match result {
                    Some(ItemResult::Credential(_)) => report.issued += 1,
                    Some(ItemResult::Error(e))
                        if attempt < ATTEMPTS && transient(Code::from(e.code)) =>
                    {
                        again.push(row);
                    }
                    Some(ItemResult::Error(e)) => report.rejected.push(Rejected {
                        line: *line,
                        request_id: req.request_id.clone(),
                        code: format!("{:?}", Code::from(e.code)),
                        message: e.message,
                        fields: e.field_violations.into_iter().map(|v| v.field).collect(),
                    }),
                    None => report.rejected.push(Rejected {
                        line: *line,
                        request_id: req.request_id.clone(),
                        code: format!("{:?}", Code::Unknown),
                        message: "the server answered nothing for this row".into(),
                        fields: vec![],
                    }),
                }
            }
            if again.is_empty() {
                break;
            }
            tracing::warn!(
                rows = again.len(),
                attempt,
                "rows not taken for now; sending them again"
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
            todo = again;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    report.rejected.sort_by_key(|r| r.line);
    Ok(report)
}

/// Sends one batch, again while the server cannot take it for now.
async fn send(
    client: &mut CredentialServiceClient<Channel>,
    token: &str,
    chunk: &[&(u64, v1::IssueCredentialRequest)],
) -> anyhow::Result<Vec<Option<ItemResult>>> {
    let mut wait = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let req = crate::client::authed(
            v1::BatchIssueCredentialsRequest {
                items: chunk.iter().map(|(_, r)| r.clone()).collect(),
            },
            Some(token),
        )?;
        match client.batch_issue_credentials(req).await {
            Ok(r) => {
                let mut results: Vec<Option<ItemResult>> = vec![None; chunk.len()];
                for item in r.into_inner().results {
                    if let Some(slot) = usize::try_from(item.index)
                        .ok()
                        .and_then(|i| results.get_mut(i))
                    {
                        *slot = item.result;
                    }
                }
                return Ok(results);
            }
            Err(s) if attempt < ATTEMPTS && transient(s.code()) => {
                tracing::warn!(code = ?s.code(), message = s.message(), attempt, "batch not taken; sending it again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(s) => anyhow::bail!(
                "the server refused a batch: {:?}: {}",
                s.code(),
                s.message()
            ),
        }
    }
}
