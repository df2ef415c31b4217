//! The matrix: one row per fault, and the checks behind each row.

use std::collections::BTreeMap;

use crate::check::Stored;
use crate::load::Stats;

/// One yes/no check of a fault, with what was seen.
#[derive(Debug)]
pub struct Check {
    /// What was checked and seen.
    pub text: String,
    /// Whether it held.
    pub ok: bool,
}

/// A check.
pub fn check(ok: bool, text: impl Into<String>) -> Check {
    Check {
        text: text.into(),
        ok,
    }
}

/// One fault's outcome.
pub struct Row {
    /// The fault.
    pub fault: &'static str,
    /// The load's counts.
    pub stats: Stats,
    /// The database's verdict.
    pub stored: Stored,
    /// The failed-attempt labels this fault may cause (`conn:*`: any
    /// `conn:` label).
    pub allowed: &'static [&'static str],
    /// The fault's own checks.
    pub checks: Vec<Check>,
}

impl Row {
    fn allows(&self, label: &str) -> bool {
        self.allowed.iter().any(|a| {
            a.strip_suffix('*')
                .map_or(*a == label, |prefix| label.starts_with(prefix))
        })
    }

    /// Failed attempts whose label this fault should not cause.
    pub fn wrong(&self) -> BTreeMap<&str, u64> {
        self.stats
            .codes
            .iter()
            .filter(|(l, _)| !self.allows(l))
            .map(|(l, n)| (l.as_str(), *n))
            .collect()
    }

    /// Whether the row is right: nothing lost or duplicated, no wrong code,
    /// every issuance acknowledged in the end, every check held.
    pub fn passed(&self) -> bool {
        self.stored.lost.is_empty()
            && self.stored.duplicated.is_empty()
            && self.stored.bad_events.is_empty()
            && self.stats.gave_up.is_empty()
            && self.wrong().is_empty()
            && !self.stats.acked.is_empty()
            && self.checks.iter().all(|c| c.ok)
    }
}

fn codes(m: impl IntoIterator<Item = (impl AsRef<str>, u64)>) -> String {
    let s: Vec<String> = m
        .into_iter()
        .map(|(c, n)| format!("{}:{n}", c.as_ref()))
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s.join(" ")
    }
}

/// Prints the matrix and each row's checks (`verbose`: and a message of
/// each failed-attempt label); returns whether every row passed.
pub fn print(rows: &[Row], verbose: bool) -> bool {
    let header = [
        "fault",
        "calls",
        "ok",
        "retried",
        "lost",
        "duplicated",
        "wrong codes",
        "result",
        "codes seen (failed attempts)",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.fault.to_owned(),
                r.stats.calls.to_string(),
                r.stats.acked.len().to_string(),
                r.stats.retried.to_string(),
                r.stored.lost.len().to_string(),
                r.stored.duplicated.len().to_string(),
                codes(r.wrong()),
                if r.passed() { "ok" } else { "WRONG" }.to_owned(),
                codes(r.stats.codes.iter().map(|(c, n)| (c, *n))),
            ]
        })
        .collect();
    let mut width = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let s: Vec<String> = cols
            .iter()
            .zip(width)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w.saturating_sub(c.chars().count());
                if (1..=5).contains(&i) {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
        println!("{}", s.join(" | ").trim_end());
    };
    println!();
    line(&header.map(str::to_owned));
    println!(
        "{}",
        width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-|-")
    );
    for row in &cells {
        line(row);
    }
    println!();
    for r in rows {
        let mut notes: Vec<String> = r
            .checks
            .iter()
            .map(|c| {
                if c.ok {
                    c.text.clone()
                } else {
                    format!("FAILED: {}", c.text)
                }
            })
            .collect();
        let show = |what: &str, v: &[String]| {
            format!(
                "{what}: {}{}",
                v.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                if v.len() > 5 { ", ..." } else { "" }
            )
        };
        if !r.stored.lost.is_empty() {
            notes.push(format!("FAILED: {}", show("lost", &r.stored.lost)));
        }
        if !r.stored.duplicated.is_empty() {
            notes.push(format!(
                "FAILED: {}",
                show("duplicated", &r.stored.duplicated)
            ));
        }
        if !r.stored.bad_events.is_empty() {
            notes.push(format!(
                "FAILED: {}",
                show("not exactly one issuance event", &r.stored.bad_events)
            ));
        }
        if !r.stats.gave_up.is_empty() {
            let v: Vec<String> = r
                .stats
                .gave_up
                .iter()
                .map(|(id, code)| format!("{id} {code}"))
                .collect();
            notes.push(format!("FAILED: {}", show("given up", &v)));
        }
        let wrong = r.wrong();
        for (label, m) in &r.stats.examples {
            if wrong.contains_key(label.as_str()) {
                notes.push(format!("FAILED: {label} (e.g. \"{m}\")"));
            } else if verbose {
                notes.push(format!("{label} e.g. \"{m}\""));
            }
        }
        if r.stored.unacknowledged > 0 {
            notes.push(format!(
                "{} stored but never acknowledged (given up)",
                r.stored.unacknowledged
            ));
        }
        println!("{}: {}", r.fault, notes.join("; "));
    }
    rows.iter().all(Row::passed)
}
