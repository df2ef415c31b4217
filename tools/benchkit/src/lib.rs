//! What the micro-benchmarks share.
//!
//! A figure means something only against a baseline measured in the same
//! run on the same machine. [`Comparison`] measures a baseline and its
//! subjects with criterion (warm-up, many samples, outlier analysis), then
//! reads criterion's estimates back and prints one table: median ns/op of
//! each, and its ratio to the baseline.
//!
//! ```no_run
//! let mut c = corridor_benchkit::Comparison::new("verify");
//! c.baseline("raw Ed25519 verify", || { /* ... */ });
//! c.subject("vc::verify_token", || { /* ... */ });
//! c.report();
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;

/// A baseline and the subjects compared with it.
pub struct Comparison {
    criterion: Criterion,
    dir: PathBuf,
    group: String,
    rows: Vec<(String, String)>,
}

impl Comparison {
    /// A comparison named `group` (a file-name-safe word). Command-line
    /// arguments are criterion's (`--quick`, a filter, ...).
    pub fn new(group: &str) -> Self {
        let dir = std::env::temp_dir().join("corridor-criterion");
        let criterion = Criterion::default()
            .output_directory(&dir)
            .sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .without_plots()
            .configure_from_args();
        Self {
            criterion,
            dir,
            group: group.to_owned(),
            rows: Vec::new(),
        }
    }

    fn run<R>(&mut self, label: &str, mut f: impl FnMut() -> R) {
        let id = format!("m{}", self.rows.len());
        self.criterion
            .benchmark_group(self.group.as_str())
            .bench_function(id.as_str(), |b| b.iter(|| black_box(f())));
        self.rows.push((label.to_owned(), id));
    }

    /// Measures the baseline (call it first).
    pub fn baseline<R>(&mut self, label: &str, f: impl FnMut() -> R) {
        self.run(label, f);
    }

    /// Measures a subject.
    pub fn subject<R>(&mut self, label: &str, f: impl FnMut() -> R) {
        self.run(label, f);
    }

    /// The median ns/op criterion estimated for row `id`.
    fn median_ns(&self, id: &str) -> Option<f64> {
        let path = self
            .dir
            .join(&self.group)
            .join(id)
            .join("new")
            .join("estimates.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        v.get("median")?.get("point_estimate")?.as_f64()
    }

    /// Prints the table: each row's median and its ratio to the baseline.
    pub fn report(self) {
        let medians: Vec<Option<f64>> =
            self.rows.iter().map(|(_, id)| self.median_ns(id)).collect();
        let base = medians.first().copied().flatten();
        let width = self
            .rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        println!();
        println!(
            "{:<width$}  {:>12}  {:>8}",
            self.group, "median ns/op", "ratio"
        );
        for ((label, _), m) in self.rows.iter().zip(&medians) {
            match (m, base) {
                (Some(m), Some(b)) => {
                    println!("{label:<width$}  {m:>12.0}  {:>7.2}x", m / b)
                }
                _ => println!("{label:<width$}  {:>12}  {:>8}", "(filtered)", "-"),
            }
        }
    }
}
