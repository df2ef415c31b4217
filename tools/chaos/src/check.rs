//! What the database holds after a fault, against what the clients were
//! told: every acknowledged issuance stored exactly once, with exactly one
//! `credential.issued` audit event.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// The verdict on one fault's issuances.
#[derive(Debug, Default)]
pub struct Stored {
    /// Acknowledged, but the acknowledged credential is not stored.
    pub lost: Vec<String>,
    /// Request ids stored more than once.
    pub duplicated: Vec<String>,
    /// Stored credentials without exactly one issuance event.
    pub bad_events: Vec<String>,
    /// Stored issuances whose acknowledgement never came (the client gave
    /// up): not an error, for information.
    pub unacknowledged: usize,
}

/// Checks the issuances of request ids starting with `prefix`.
pub async fn stored(
    db: &DatabaseConnection,
    prefix: &str,
    acked: &[(String, String)],
) -> anyhow::Result<Stored> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT c.holder_name, c.id::text AS id,
                    (SELECT count(*) FROM audit_events e
                      WHERE e.subject_type = 'credential' AND e.subject_id = c.id::text
                        AND e.action = 'credential.issued')::bigint AS events
               FROM credentials c WHERE c.holder_name LIKE $1",
            [format!("{prefix}-%").into()],
        ))
        .await?;
    let mut by_request: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut out = Stored::default();
    for r in rows {
        let name: String = r.try_get("", "holder_name")?;
        let id: String = r.try_get("", "id")?;
        let events: i64 = r.try_get("", "events")?;
        if events != 1 {
            out.bad_events.push(format!("{id} ({events} events)"));
        }
        by_request.entry(name).or_default().push(id);
    }
    let acked_ids: BTreeSet<&str> = acked.iter().map(|(rid, _)| rid.as_str()).collect();
    for (rid, id) in acked {
        if !by_request.get(rid).is_some_and(|ids| ids.contains(id)) {
            out.lost.push(format!("{rid} ({id})"));
        }
    }
    for (rid, ids) in &by_request {
        if ids.len() > 1 {
            out.duplicated.push(format!("{rid} ({} rows)", ids.len()));
        }
        if !acked_ids.contains(rid.as_str()) {
            out.unacknowledged += 1;
        }
    }
    Ok(out)
}
