//! A closed-loop load generator: `in_flight` tasks, each sending its next
//! request as soon as the previous one answered, for a fixed time. Every
//! status code is counted; only OK answers count as throughput.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// What one row of load produced.
#[derive(Debug, Clone)]
pub struct Measured {
    /// OK answers.
    pub ok: u64,
    /// Every other answer, by gRPC code name.
    pub errors: BTreeMap<String, u64>,
    /// Wall time of the run.
    pub seconds: f64,
    /// Latency of OK answers, microseconds.
    pub latency: Histogram<u64>,
}

impl Measured {
    /// OK answers per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    /// A latency percentile, milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Non-OK answers, `CODE:n` joined, or `-`.
    pub fn error_summary(&self) -> String {
        if self.errors.is_empty() {
            return "-".into();
        }
        self.errors
            .iter()
            .map(|(c, n)| format!("{c}:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// Runs `call(task, n)` from `in_flight` tasks for `seconds`.
pub async fn drive<F, Fut>(seconds: f64, in_flight: usize, call: F) -> anyhow::Result<Measured>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(in_flight);
    for t in 0..in_flight {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram()?;
            let mut errors = BTreeMap::<String, u64>::new();
            let mut ok = 0u64;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let r = call(t, n).await;
                n += 1;
                match r {
                    Ok(()) => {
                        ok += 1;
                        let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                        h.saturating_record(us.max(1));
                    }
                    Err(s) => *errors.entry(format!("{:?}", s.code())).or_default() += 1,
                }
            }
            anyhow::Ok((ok, errors, h))
        }));
    }
    let mut total = Measured {
        ok: 0,
        errors: BTreeMap::new(),
        seconds: 0.0,
        latency: histogram()?,
    };
    for t in tasks {
        let (ok, errors, h) = t.await??;
        total.ok += ok;
        for (c, n) in errors {
            *total.errors.entry(c).or_default() += n;
        }
        total.latency.add(&h)?;
    }
    total.seconds = start.elapsed().as_secs_f64();
    Ok(total)
}

/// Calls `f` on this thread for `seconds` and returns calls per second.
pub fn in_process_rate(seconds: f64, mut f: impl FnMut() -> bool) -> anyhow::Result<f64> {
    // Warm up, then measure.
    for _ in 0..100 {
        anyhow::ensure!(f(), "the baseline operation failed");
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..64 {
            anyhow::ensure!(f(), "the baseline operation failed");
        }
        n += 64;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
