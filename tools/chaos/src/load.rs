//! Issuance under load, as a careful client does it: every IssueCredential
//! carries a request id of its own, and a failed attempt that may succeed
//! later is sent again with the same id (the service is idempotent per
//! request id), on the next replica, after a backoff. Every attempt's answer
//! is counted: the server's gRPC code by name, `conn:<CODE>` when the
//! client saw no answer at all (refused, reset: the code is what tonic made
//! of it), `HANG` when nothing came back within the request timeout plus
//! [`HANG_SLACK`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corridor_proto::v1;
use corridor_proto::v1::credential_service_client::CredentialServiceClient;
use tonic::Code;
use tonic::transport::Channel;

/// How far past the server's request timeout an attempt may take before it
/// counts as a hang (a loaded 2-core machine and a debug build).
pub const HANG_SLACK: Duration = Duration::from_millis(1_500);

/// A gRPC code by its canonical name.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether the attempt failed because the server's graceful GOAWAY
/// (reason NO_ERROR) left its stream unprocessed: a server shutting down
/// answers what it took and refuses, this way, what it had not.
fn refused_by_goaway(s: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = e.source();
    }
    false
}

/// What a client makes of a failed attempt: its label and whether to send
/// it again. Codes that say the request itself is wrong are final; the
/// rest may succeed later (INTERNAL and UNKNOWN too: a client cannot know,
/// and the matrix counts them as wrong anyway).
fn classify(s: &tonic::Status) -> (String, bool, String) {
    let name = code_name(s.code());
    // A status the server sent has no source; one tonic made from a
    // transport failure carries the error.
    let label = if refused_by_goaway(s) {
        // tonic calls this INTERNAL; HTTP/2 says the server never
        // processed the stream (RFC 9113, 6.8), so it is safe to resend.
        "conn:GOAWAY".to_owned()
    } else if std::error::Error::source(s).is_some() {
        format!("conn:{name}")
    } else {
        name.to_owned()
    };
    let retry = !matches!(
        s.code(),
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Unauthenticated
    );
    let mut message = s.message().to_owned();
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        message = format!("{message}: {e}");
        source = e.source();
    }
    (label, retry, message)
}

/// Counts of one load run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Issuances started (request ids).
    pub calls: u64,
    /// Acknowledged: (request id, credential id).
    pub acked: Vec<(String, String)>,
    /// Issuances that needed more than one attempt.
    pub retried: u64,
    /// Issuances given up: a final code or the retry budget spent.
    pub gave_up: Vec<(String, String)>,
    /// Failed attempts by label.
    pub codes: BTreeMap<String, u64>,
    /// The slowest failed attempt of each label.
    pub slowest: BTreeMap<String, Duration>,
    /// The slowest acknowledged attempt.
    pub slowest_ok: Duration,
    /// The first message seen of each failed-attempt label.
    pub examples: BTreeMap<String, String>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.calls += o.calls;
        self.acked.extend(o.acked);
        self.retried += o.retried;
        self.gave_up.extend(o.gave_up);
        for (k, v) in o.codes {
            *self.codes.entry(k).or_default() += v;
        }
        for (k, v) in o.slowest {
            let e = self.slowest.entry(k).or_default();
            *e = (*e).max(v);
        }
        self.slowest_ok = self.slowest_ok.max(o.slowest_ok);
        for (k, v) in o.examples {
            self.examples.entry(k).or_insert(v);
        }
    }

    /// The slowest answer of any kind.
    pub fn slowest_any(&self) -> Duration {
        self.slowest
            .values()
            .copied()
            .fold(self.slowest_ok, Duration::max)
    }
}

/// The issuing client: one channel per replica, an issuer token.
pub struct Client {
    channels: Vec<Channel>,
    token: String,
    holder: String,
    /// A replica whose connection just failed is skipped until then.
    down_until: Vec<Mutex<Option<Instant>>>,
    attempt_timeout: Duration,
    budget: Duration,
}

impl Client {
    /// A client of the replicas behind `channels`.
    pub fn new(
        channels: Vec<Channel>,
        token: String,
        holder: String,
        request_timeout: Duration,
        budget: Duration,
    ) -> Self {
        let down_until = channels.iter().map(|_| Mutex::new(None)).collect();
        Self {
            channels,
            token,
            holder,
            down_until,
            attempt_timeout: request_timeout + HANG_SLACK,
            budget,
        }
    }

    /// An IssueCredential request with `request_id` (also the holder's name).
    pub fn request(
        &self,
        request_id: &str,
    ) -> anyhow::Result<tonic::Request<v1::IssueCredentialRequest>> {
        let mut r = tonic::Request::new(v1::IssueCredentialRequest {
            request_id: request_id.to_owned(),
            issuer_city: "hangzhou".into(),
            qualification: Some(v1::Qualification {
                category: v1::QualificationCategory::ProfessionalTitle.into(),
                series: "engineering".into(),
                level: 4,
                title: "高级工程师".into(),
            }),
            // The request id, so that the database check can find each
            // issuance's rows.
            holder_name: request_id.to_owned(),
            holder_national_id: self.holder.clone(),
            valid_from: None,
            valid_until: None,
        });
        r.metadata_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse()?);
        Ok(r)
    }

    fn is_down(&self, r: usize) -> bool {
        self.down_until[r]
            .lock()
            .ok()
            .and_then(|g| *g)
            .is_some_and(|t| Instant::now() < t)
    }

    fn mark_down(&self, r: usize) {
        if let Ok(mut g) = self.down_until[r].lock() {
            *g = Some(Instant::now() + Duration::from_millis(500));
        }
    }

    /// The first replica from `from` on that is not marked down (`from`
    /// itself when all are).
    fn pick(&self, from: usize) -> usize {
        let n = self.channels.len();
        (0..n)
            .map(|i| (from + i) % n)
            .find(|&r| !self.is_down(r))
            .unwrap_or(from % n)
    }

    /// Issues with `request_id` until acknowledged, refused for good, or
    /// out of budget; counts into `stats`.
    pub async fn issue(&self, request_id: &str, first: usize, stats: &mut Stats) {
        stats.calls += 1;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut next = first;
        let mut attempts = 0u32;
        loop {
            let r = self.pick(next);
            attempts += 1;
            let at = Instant::now();
            let outcome = match self.request(request_id) {
                Err(e) => Err(("client error".to_owned(), false, e.to_string())),
                Ok(req) => {
                    let mut c = CredentialServiceClient::new(self.channels[r].clone());
                    match tokio::time::timeout(self.attempt_timeout, c.issue_credential(req)).await
                    {
                        Err(_) => Err(("HANG".to_owned(), true, String::new())),
                        Ok(Err(s)) => {
                            let (label, retry, message) = classify(&s);
                            if label.starts_with("conn:") {
                                self.mark_down(r);
                            }
                            Err((label, retry, message))
                        }
                        Ok(Ok(answer)) => match answer.into_inner().credential {
                            Some(c) => Ok(c.id),
                            None => {
                                Err(("OK without a credential".to_owned(), false, String::new()))
                            }
                        },
                    }
                }
            };
            let took = at.elapsed();
            match outcome {
                Ok(id) => {
                    stats.acked.push((request_id.to_owned(), id));
                    stats.slowest_ok = stats.slowest_ok.max(took);
                    if attempts > 1 {
                        stats.retried += 1;
                    }
                    return;
                }
                Err((label, retry, message)) => {
                    *stats.codes.entry(label.clone()).or_default() += 1;
                    stats.examples.entry(label.clone()).or_insert(message);
                    let e = stats.slowest.entry(label.clone()).or_default();
                    *e = (*e).max(took);
                    if !retry || started.elapsed() + backoff > self.budget {
                        if attempts > 1 {
                            stats.retried += 1;
                        }
                        stats.gave_up.push((request_id.to_owned(), label));
                        return;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(800));
            next = r + 1;
        }
    }
}

/// A load run: `in_flight` tasks issuing one after another until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Stats>>,
}

impl Load {
    /// Starts the tasks; request ids are `<prefix>-<task>-<n>`.
    pub fn start(client: &Arc<Client>, prefix: &str, in_flight: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..in_flight)
            .map(|t| {
                let client = client.clone();
                let stop = stop.clone();
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    let mut stats = Stats::default();
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("{prefix}-{t}-{k}");
                        client.issue(&id, t + k as usize, &mut stats).await;
                        k += 1;
                    }
                    stats
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops starting issuances, lets those under way finish (retries
    /// included), and adds up the counts.
    pub async fn finish(self) -> anyhow::Result<Stats> {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Stats::default();
        for t in self.tasks {
            total.merge(t.await?);
        }
        Ok(total)
    }
}
