//! The table the benchmark prints, and the section of docs/PERFORMANCE.md
//! it rewrites (between `<!-- bench:begin -->` and `<!-- bench:end -->`).

use std::fmt::Write as _;
use std::path::Path;

use crate::load::Measured;

/// One measured row.
pub struct Row {
    id: String,
    what: String,
    m: Measured,
    target: Option<(f64, String, f64)>,
}

impl Row {
    /// A row without a target.
    pub fn new(id: &str, what: String, m: Measured) -> Self {
        Self {
            id: id.to_owned(),
            what,
            m,
            target: None,
        }
    }

    /// Compared with `baseline` (per second); met when the ratio is at least `min`.
    pub fn against(mut self, baseline: f64, target: &str, min: f64) -> Self {
        self.target = Some((baseline, target.to_owned(), min));
        self
    }
}

enum Line {
    Measured(Row),
    Check {
        id: String,
        what: String,
        result: String,
        target: String,
        met: bool,
    },
}

/// Baselines, rows and notes of one run.
#[derive(Default)]
pub struct Table {
    baselines: Vec<(String, f64, String)>,
    lines: Vec<Line>,
    notes: Vec<String>,
}

impl Table {
    /// A baseline figure.
    pub fn baseline(&mut self, what: String, rate: f64, unit: &str) {
        self.baselines.push((what, rate, unit.to_owned()));
    }

    /// The `i`-th baseline's figure, NaN when it was not measured.
    pub fn baseline_value(&self, i: usize) -> f64 {
        self.baselines.get(i).map_or(f64::NAN, |b| b.1)
    }

    /// A measured row.
    pub fn row(&mut self, r: Row) {
        self.lines.push(Line::Measured(r));
    }

    /// A yes/no target.
    pub fn check(&mut self, id: &str, what: String, result: String, target: &str, met: bool) {
        self.lines.push(Line::Check {
            id: id.to_owned(),
            what,
            result,
            target: target.to_owned(),
            met,
        });
    }

    /// A line under the table.
    pub fn note(&mut self, n: String) {
        self.notes.push(n);
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| # | what | rate /s | p50 ms | p99 ms | non-OK | baseline /s | ratio | target | met |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---|---:|---:|---|---|");
        for l in &self.lines {
            let _ = match l {
                Line::Measured(r) => {
                    let (base, ratio, target, met) = match &r.target {
                        Some((b, t, min)) => {
                            let ratio = r.m.rate() / b;
                            (
                                format!("{b:.0}"),
                                format!("{ratio:.2}"),
                                t.clone(),
                                if ratio >= *min { "yes" } else { "**no**" }.to_owned(),
                            )
                        }
                        None => ("".into(), "".into(), "".into(), "".into()),
                    };
                    writeln!(
                        s,
                        "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {base} | {ratio} | {target} | {met} |",
                        r.id,
                        r.what,
                        r.m.rate(),
                        r.m.ms(0.5),
                        r.m.ms(0.99),
                        r.m.error_summary()
                    )
                }
                Line::Check {
                    id,
                    what,
                    result,
                    target,
                    met,
                } => writeln!(
                    s,
                    "| {id} | {what} | {result} | | | | | | {target} | {} |",
                    if *met { "yes" } else { "**no**" }
                ),
            };
        }
        let _ = writeln!(s, "\nBaselines, measured in the same run:\n");
        for (what, rate, unit) in &self.baselines {
            let _ = writeln!(s, "- {what}: {rate:.0} {unit}");
        }
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        s
    }

    /// Prints the table.
    pub fn print(&self) {
        println!("\n{}", self.markdown());
    }

    /// Rewrites the figures section of `path` with this run.
    pub fn write_markdown(&self, path: &Path, command: &str) -> anyhow::Result<()> {
        const BEGIN: &str = "<!-- bench:begin -->";
        const END: &str = "<!-- bench:end -->";
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let section = format!(
            "{BEGIN}\nMeasured {} with `{command}`.\n\nMachine: {}.\n\n{}{END}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            machine(),
            self.markdown()
        );
        let new = match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if e > b => {
                format!("{}{section}{}", &old[..b], &old[e + END.len()..])
            }
            _ => format!("{old}\n{section}\n"),
        };
        std::fs::write(path, new)?;
        Ok(())
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // Not available_parallelism: this process is pinned to one CPU.
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0),
        );
    format!(
        "{cores} × {cpu}, {mem} RAM; server pinned to one core, load generator and baselines on the other, Postgres unpinned on the same machine"
    )
}
