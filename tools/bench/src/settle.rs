//! Waiting for the server's background work between rows.
//!
//! Every issuance writes an audit event that the server's sequencer chains
//! later, off the request path; so do the baselines' pgbench runs of the
//! issuance and batch statements, which write tens of thousands. Without a
//! wait, the rows after them would be measured while the sequencer works
//! off that backlog on the server's one core and in the database. Before
//! each row the bench waits until every event written so far is chained,
//! and says how long that took: a sequencer that falls behind, or stops,
//! shows here. The baselines that write events (pgbench of the issuance
//! and batch statements) wait the same way.

use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

/// The longest wait before a row: past it the sequencer is taken as stuck.
const LIMIT: Duration = Duration::from_secs(300);

/// Events written but not yet in the chain.
const WAITING: &str = "SELECT count(*) FROM audit_events e \
     WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.seq = e.seq)";

/// The waits before each row.
pub struct Settler {
    db: DatabaseConnection,
    /// (row, events waiting when the wait began, how long it took)
    waits: Vec<(String, i64, Duration)>,
}

impl Settler {
    /// Connects to the server's database.
    pub async fn connect(database_url: &str) -> anyhow::Result<Self> {
        let mut opts = ConnectOptions::new(database_url.to_owned());
        opts.max_connections(1).sqlx_logging(false);
        Ok(Self {
            db: Database::connect(opts).await?,
            waits: Vec::new(),
        })
    }

    async fn waiting(&self) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                WAITING,
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no count"))?;
        Ok(row.try_get_by_index(0)?)
    }

    /// Waits until every audit event written so far is chained, before
    /// `row` is measured.
    pub async fn before(&mut self, row: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        let first = self.waiting().await?;
        let mut left = first;
        while left > 0 {
            anyhow::ensure!(
                started.elapsed() < LIMIT,
                "before {row}: the sequencer left {left} of {first} audit events unchained after {LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = self.waiting().await?;
        }
        self.waits.push((row.to_owned(), first, started.elapsed()));
        Ok(())
    }

    /// One line for the table's notes, `None` when no row waited.
    pub fn note(&self) -> Option<String> {
        let longest = self.waits.iter().max_by_key(|w| w.2)?;
        let events: i64 = self.waits.iter().map(|w| w.1).sum();
        let total: Duration = self.waits.iter().map(|w| w.2).sum();
        Some(format!(
            "before each row, and each baseline that writes audit events, the bench waited until the server's sequencer had chained every audit event written so far: {events} events, {:.1} s in all; the longest before {}: {} events, {:.1} s",
            total.as_secs_f64(),
            longest.0,
            longest.1,
            longest.2.as_secs_f64()
        ))
    }
}
