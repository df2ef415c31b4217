//! Issuing and managing a city's credentials.

use chrono::{DateTime, SubsecRound, Utc};
use corridor_domain::authz;
use corridor_domain::caller::Caller;
use corridor_domain::city::CityCode;
use corridor_domain::credential::{Credential, Status, Transition, ValidityWindow};
use corridor_domain::holder::NationalId;
use corridor_domain::qualification::{Category, Qualification};
use corridor_domain::recognition::Cascade;
use corridor_domain::status_list::StatusEntry;
use corridor_domain::vc::{self, CredentialClaims};
use corridor_domain::{RequestId, Violations};
use futures::StreamExt;
use sea_orm::ConnectionTrait;
use serde_json::json;
use uuid::Uuid;

use super::{Done, Idempotent};
use crate::error::{AppError, AppResult};
use crate::paging::{Page, page_size};
use crate::state::AppState;
use crate::store::audit::NewEvent;
use crate::store::credentials::{self as cred_store, Cursor, Filter};
use crate::store::keys::{self as key_store, Lock};
use crate::store::recognitions as rec_store;

/// Default page size of a credential listing.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page size of a credential listing; larger requests are capped.
pub const MAX_PAGE_SIZE: u64 = 500;

/// IssueCredential.
#[derive(Debug)]
pub struct IssueCredential {
    /// For idempotent retries.
    pub request_id: RequestId,
    /// The issuing city.
    pub issuer_city: CityCode,
    /// What is attested.
    pub qualification: Qualification,
    /// Holder display name.
    pub holder_name: String,
    /// Holder's national ID (kept only as a keyed hash).
    pub national_id: NationalId,
    /// Start of validity (default: now).
    pub valid_from: Option<DateTime<Utc>>,
    /// End of validity (default: none).
    pub valid_until: Option<DateTime<Utc>>,
}

/// Suspend, Reinstate or RevokeCredential.
#[derive(Debug)]
pub struct ChangeStatus {
    /// For idempotent retries.
    pub request_id: RequestId,
    /// The credential.
    pub id: Uuid,
    /// Why.
    pub reason: String,
    /// Which change.
    pub transition: Transition,
}

/// ListCredentials.
#[derive(Debug, Default)]
pub struct ListCredentials {
    /// Only this issuing city (default: the caller's, or all for auditors).
    pub issuer_city: Option<CityCode>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this category.
    pub category: Option<Category>,
    /// Only this holder.
    pub holder: Option<NationalId>,
    /// Page size (parsed).
    pub page_size: u64,
    /// Opaque token of the page to read.
    pub page_token: String,
}

impl ListCredentials {
    /// A listing with the default page size.
    pub fn first_page() -> Self {
        Self {
            page_size: DEFAULT_PAGE_SIZE,
            ..Self::default()
        }
    }
}

/// Parses a requested page size for credential listings.
pub fn credential_page_size(raw: i32) -> Result<u64, corridor_domain::Violations> {
    page_size(raw, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
}

/// Most items in one BatchIssueCredentials (a 1 MiB message holds them).
pub const MAX_BATCH_ITEMS: usize = 1000;

/// Items of one batch in flight at once: enough to overlap the database
/// round trips.
const BATCH_CONCURRENCY: usize = 8;

/// Rows per multi-row issuance statement of a batch.
pub const GROUP_ROWS: usize = 250;

/// Batch items in flight across all batches of this replica
/// (`AppState::batch_items`): however many batches arrive, they take at most
/// this many database connections.
pub const BATCH_ITEMS_IN_FLIGHT: usize = 8;

impl AppState {
    /// Issues a credential: signs a VC-JWT with the city's current key and
    /// registers it.
    pub async fn issue_credential(
        &self,
        caller: &Caller,
        cmd: IssueCredential,
    ) -> AppResult<Credential> {
        authz::issue_credential(caller, &cmd.issuer_city)?;
        let holder_hash = self.hasher.hash(&cmd.national_id);
        let key = issue_key(&cmd, &holder_hash);
        let city = &cmd.issuer_city;
        // Before any transaction (it may use the pool's only connection).
        let entry = self
            .status_lists
            .allocate(&self.db, city, async || {
                self.known_city(city, "issuer_city").await
            })
            .await?;
        // The fast path: one statement, one round trip, with the key this
        // replica signed with last (the statement checks it is still current).
        if self.db.get_database_backend() == sea_orm::DbBackend::Postgres
            && let Some(signing) = self.keyring.last_signing(city)
        {
            let now = self.clock.now().trunc_subsecs(0);
            if let Ok(window) = ValidityWindow::parse(
                cmd.valid_from.unwrap_or(now),
                cmd.valid_until,
                "valid_until",
            ) {
                let (c, event) =
                    self.signed(&signing, &cmd, (window, entry), &holder_hash, caller, now)?;
                let answer = serde_json::to_vec(&c).map_err(AppError::internal)?;
                let claim = (
                    caller.subject.as_str(),
                    cmd.request_id.as_str(),
                    key.operation,
                    key.payload_hash(),
                );
                let stored = cred_store::issue_in_one_statement(
                    &self.db,
                    &c,
                    (claim.0, claim.1, claim.2, &claim.3),
                    answer,
                    &event,
                )
                .await?;
                if stored == cred_store::OneStatement::Stored {
                    tracing::info!(credential = %c.id, city = %c.issuer_city, "credential issued");
                    return Ok(c);
                }
                // A retry, or a key rotated elsewhere: the general path
                // replays, refuses, or signs with the current key.
            }
        }
        let c = self
            .mutate(
                caller,
                key,
                async |_| Ok(()),
                async |txn, (), now| {
                    // JWT times are whole seconds; the record keeps the same instant.
                    let now = now.trunc_subsecs(0);
                    let window = ValidityWindow::parse(
                        cmd.valid_from.unwrap_or(now),
                        cmd.valid_until,
                        "valid_until",
                    )?;
                    // Signed with the key current when this reads it; a rotation
                    // committing meanwhile leaves `iat` inside the key's window.
                    let key_row = self.current_key(txn, city, "issuer_city").await?;
                    let signing = self.keyring.signing_for(&key_row)?;
                    let (c, event) =
                        self.signed(&signing, &cmd, (window, entry), &holder_hash, caller, now)?;
                    cred_store::insert(txn, &c).await?;
                    Ok(Done {
                        result: c,
                        events: vec![event],
                    })
                },
            )
            .await?;
        tracing::info!(credential = %c.id, city = %c.issuer_city, "credential issued");
        Ok(c)
    }

    /// Issues a batch: each item on its own (its checks, its city's
    /// authorization, its idempotency claim, its audit event), a few at a
    /// time, with one result per item in the batch's order. Items that did
    /// not parse come in as their errors and stay so; an item whose request
    /// id repeats an earlier item's is refused. The batch itself is refused
    /// only when it is empty or too large.
    pub async fn batch_issue_credentials(
        &self,
        caller: &Caller,
        items: Vec<AppResult<IssueCredential>>,
    ) -> AppResult<Vec<AppResult<Credential>>> {
        if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
            return Err(Violations::one(
                "items",
                format!(
                    "must hold 1 to {MAX_BATCH_ITEMS} items, not {}",
                    items.len()
                ),
            )
            .into());
        }
        let mut first_of = std::collections::HashMap::new();
        let items: Vec<AppResult<IssueCredential>> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let cmd = item?;
                match first_of.entry(cmd.request_id.as_str().to_owned()) {
                    std::collections::hash_map::Entry::Occupied(e) => Err(Violations::one(
                        "request_id",
                        format!(
                            "the same as item {}'s: request ids must differ within a batch",
                            e.get()
                        ),
                    )
                    .into()),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(i);
                        Ok(cmd)
                    }
                }
            })
            .collect();
        // Most items go in multi-row statements; the rest (and any item
        // those did not store: a retry, a rotated key) one by one.
        let mut stored = self.issue_in_groups(caller, &items).await;
        Ok(futures::stream::iter(items.into_iter().enumerate())
            .map(|(i, item)| {
                let done = stored.remove(&i);
                async move {
                    if let Some(c) = done {
                        return Ok(c);
                    }
                    let cmd = item?;
                    let _slot = self
                        .batch_items
                        .acquire()
                        .await
                        .map_err(|_| AppError::internal("the batch slots are closed"))?;
                    self.issue_credential(caller, cmd).await
                }
            })
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await)
    }

    /// The items of a batch that can be issued in multi-row statements
    /// (Postgres; authorized, a valid window, a signing key this replica
    /// holds), issued [`GROUP_ROWS`] per statement: their positions in
    /// `items` and their credentials. Nothing is returned for an item a
    /// statement did not store, or when a statement failed (its rows are
    /// then tried one by one, which answers each with its own error).
    async fn issue_in_groups(
        &self,
        caller: &Caller,
        items: &[AppResult<IssueCredential>],
    ) -> std::collections::HashMap<usize, Credential> {
        let mut out = std::collections::HashMap::new();
        if self.db.get_database_backend() != sea_orm::DbBackend::Postgres {
            return out;
        }
        let now = self.clock.now().trunc_subsecs(0);
        let mut signed_items = Vec::new();
        // The key each city signs with: the one this replica used last, else
        // its current key read once (the statement checks it is current).
        let mut keys = std::collections::HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let Ok(cmd) = item else { continue };
            let city = &cmd.issuer_city;
            if authz::issue_credential(caller, city).is_err() {
                continue;
            }
            if !keys.contains_key(city) {
                let key = match self.keyring.last_signing(city) {
                    Some(k) => Some(k),
                    None => key_store::current(&self.db, city, Lock::None)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|row| self.keyring.signing_for(&row).ok()),
                };
                keys.insert(city.clone(), key);
            }
            let Some(Some(signing)) = keys.get(city).cloned() else {
                continue;
            };
            let Ok(window) = ValidityWindow::parse(
                cmd.valid_from.unwrap_or(now),
                cmd.valid_until,
                "valid_until",
            ) else {
                continue;
            };
            let known = async || self.known_city(city, "issuer_city").await;
            let Ok(entry) = self.status_lists.allocate(&self.db, city, known).await else {
                continue;
            };
            let holder_hash = self.hasher.hash(&cmd.national_id);
            let Ok((c, event)) =
                self.signed(&signing, cmd, (window, entry), &holder_hash, caller, now)
            else {
                continue;
            };
            let Ok(answer) = serde_json::to_vec(&c) else {
                continue;
            };
            let payload_hash = issue_key(cmd, &holder_hash).payload_hash();
            signed_items.push((i, cmd.request_id.as_str(), c, event, payload_hash, answer));
        }
        let mut stored_ids = std::collections::HashSet::new();
        for group in signed_items.chunks(GROUP_ROWS) {
            let rows: Vec<cred_store::ManyItem<'_>> = group
                .iter()
                .map(
                    |(_, request_id, c, event, payload_hash, answer)| cred_store::ManyItem {
                        credential: c,
                        request_id,
                        payload_hash,
                        answer,
                        event,
                    },
                )
                .collect();
            let stored = match self.batch_items.acquire().await {
                Ok(_slot) => cred_store::issue_many_in_one_statement(
                    &self.db,
                    &caller.subject,
                    "IssueCredential",
                    &rows,
                )
                .await
                .map_err(AppError::from),
                Err(_) => Err(AppError::internal("the batch slots are closed")),
            };
            match stored {
                Ok(ids) => stored_ids.extend(ids),
                Err(e) => {
                    tracing::warn!(error = %e, rows = group.len(), "multi-row issuance failed; issuing its rows one by one");
                }
            }
        }
        for (i, _, c, ..) in signed_items {
            if stored_ids.contains(&c.id) {
                out.insert(i, c);
            }
        }
        tracing::info!(
            issued = out.len(),
            of = items.len(),
            "batch issued in multi-row statements"
        );
        out
    }

    /// Reads one credential. Another city's is answered like a missing one.
    pub async fn get_credential(&self, caller: &Caller, id: Uuid) -> AppResult<Credential> {
        authz::may_call(caller, authz::Rpc::GetCredential)?;
        let missing = || AppError::NotFound(format!("no credential {id}"));
        let c = self.credential(id).await?.ok_or_else(missing)?;
        authz::read_credential(caller, &c.issuer_city).map_err(|_| missing())?;
        Ok(Credential::clone(&c))
    }

    /// Lists credentials, newest first.
    pub async fn list_credentials(
        &self,
        caller: &Caller,
        cmd: ListCredentials,
    ) -> AppResult<Page<Credential>> {
        let city = authz::list_credentials(caller, cmd.issuer_city.as_ref())?;
        if let Some(c) = &city {
            self.known_city(c, "issuer_city").await?;
        }
        let filter = Filter {
            issuer_city: city,
            status: cmd.status,
            category: cmd.category,
            holder_hash: cmd.holder.as_ref().map(|id| self.hasher.hash(id)),
        };
        let after = self
            .page_tokens
            .decode::<Cursor>(&cmd.page_token, &filter)?;
        // One extra row tells whether there is a next page.
        let rows = cred_store::list(&self.db, &filter, after, cmd.page_size + 1).await?;
        self.page_tokens
            .page(rows, cmd.page_size, &filter, |c| Cursor {
                issued_at: c.issued_at,
                id: c.id,
            })
    }

    /// Suspends, reinstates or revokes a credential; its recognitions follow
    /// in the same transaction.
    pub async fn change_credential_status(
        &self,
        caller: &Caller,
        cmd: ChangeStatus,
    ) -> AppResult<Credential> {
        authz::may_call(caller, authz::Rpc::ChangeCredentialStatus)?;
        let (operation, id) = (operation_of(cmd.transition), cmd.id);
        let mut fence = None;
        let key = Idempotent {
            operation,
            request_id: &cmd.request_id,
            fingerprint: json!({ "id": id, "reason": cmd.reason }),
        };
        let updated = self
            .mutate(
                caller,
                key,
                // The row is locked until commit; the caller must be its city's issuer.
                async |txn| {
                    let c = cred_store::get_for_update(txn, id)
                        .await?
                        .ok_or_else(|| AppError::NotFound(format!("no credential {id}")))?;
                    authz::change_credential_status(caller, &c.issuer_city)?;
                    Ok(c)
                },
                async |txn, c, now| {
                    let updated = c.transitioned(cmd.transition, &cmd.reason, now)?;
                    cred_store::set_status(txn, &updated).await?;
                    // Every replica drops the record when this commits; the
                    // answer waits for them (the verify consistency promise).
                    let f = self.status_cache.fence(id);
                    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
                        crate::status_cache::notify_in(txn, &f.notice).await?;
                    }
                    fence = Some(f);
                    // Recognitions follow their source credential.
                    let cascade = Cascade::of(cmd.transition);
                    let cascaded = rec_store::cascade(txn, id, cascade, now).await?;
                    // One event per recognition, in its target city's trail
                    // (and visible to the source city).
                    let mut events: Vec<NewEvent> = cascaded
                        .into_iter()
                        .map(|(rid, target, source)| {
                            NewEvent::by(
                                caller,
                                cascade.event(),
                                "recognition",
                                rid,
                                json!({
                                    "credential_id": id,
                                    "now": cascade.now(),
                                    "cause": cmd.transition.audit_action(),
                                }),
                                now,
                            )
                            .concerning(target, Some(source))
                        })
                        .collect();
                    events.push(
                        NewEvent::by(
                            caller,
                            cmd.transition.audit_action(),
                            "credential",
                            id,
                            json!({
                                "from": c.status.as_str(),
                                "to": updated.status.as_str(),
                                "reason": cmd.reason,
                            }),
                            now,
                        )
                        .concerning(&c.issuer_city, None),
                    );
                    Ok(Done {
                        result: updated,
                        events,
                    })
                },
            )
            .await?;
        match fence {
            Some(f) => f.wait().await,
            // A replay: the first answer may never have waited; wait out the
            // lease so that no replica can still trust a record without it.
            None => self.status_cache.wait_out_lease(id).await,
        }
        tracing::info!(credential = %id, to = %updated.status, "credential status changed");
        Ok(updated)
    }

    /// A registered credential: from the status cache when it may answer,
    /// else from the database (and then cached).
    pub(crate) async fn credential(
        &self,
        id: Uuid,
    ) -> AppResult<Option<std::sync::Arc<Credential>>> {
        if let Some(c) = self.status_cache.get(id) {
            return Ok(Some(c));
        }
        let read_at = self.status_cache.generation();
        let found = cred_store::get(&self.db, id)
            .await?
            .map(std::sync::Arc::new);
        if let Some(c) = &found {
            self.status_cache.insert(c.clone(), read_at);
        }
        Ok(found)
    }

    /// The city's current key as `txn` sees it. None found: the city is
    /// unknown (NOT_FOUND naming `field`), or a rotation is half-way in what
    /// this read sees (a rare race): ABORTED, retry.
    pub(crate) async fn current_key(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        city: &CityCode,
        field: &'static str,
    ) -> AppResult<corridor_domain::keys::IssuerKeyRecord> {
        match key_store::current(txn, city, Lock::None).await? {
            Some(k) => Ok(k),
            None => {
                self.known_city(city, field).await?;
                Err(AppError::Aborted(format!(
                    "{city}'s issuer key was rotated concurrently; retry"
                )))
            }
        }
    }

    /// NOT_FOUND (naming `field`) unless `city` is a corridor city.
    pub(crate) async fn known_city(&self, city: &CityCode, field: &'static str) -> AppResult<()> {
        match self.policies.province(&self.db, city).await? {
            Some(_) => Ok(()),
            None => Err(AppError::UnknownCity {
                field,
                code: city.to_string(),
            }),
        }
    }
}

impl AppState {
    /// A new credential signed with `key`, with its status `entry`, and its
    /// audit event.
    fn signed(
        &self,
        key: &corridor_domain::keys::IssuerSigningKey,
        cmd: &IssueCredential,
        (window, entry): (ValidityWindow, Option<StatusEntry>),
        holder_hash: &corridor_domain::holder::HolderHash,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> AppResult<(Credential, NewEvent)> {
        let claims = CredentialClaims {
            id: Uuid::now_v7(),
            issuer_city: cmd.issuer_city.clone(),
            qualification: cmd.qualification.clone(),
            holder_name: cmd.holder_name.clone(),
            window,
            issued_at: now,
            status: self.status_lists.entries(&cmd.issuer_city, entry),
        };
        let token = vc::sign(key, &claims).map_err(AppError::internal)?;
        let c = Credential {
            id: claims.id,
            issuer_city: claims.issuer_city,
            qualification: claims.qualification,
            holder_name: claims.holder_name,
            holder_hash: holder_hash.clone(),
            window,
            status: Status::Active,
            status_reason: None,
            kid: key.kid().to_owned(),
            token,
            issued_by: caller.subject.clone(),
            issued_at: now,
            updated_at: now,
            status_entry: entry,
        };
        let q = &c.qualification;
        let event = NewEvent::by(
            caller,
            "credential.issued",
            "credential",
            c.id,
            json!({
                "issuer_city": c.issuer_city,
                "category": q.category().as_str(),
                "series": q.series(),
                "level": q.level(),
                "kid": c.kid,
            }),
            now,
        )
        .concerning(&c.issuer_city, None);
        Ok((c, event))
    }
}

/// The idempotency key of an issuance: the same for IssueCredential and a
/// batch item, so either replays the other's answer.
fn issue_key<'a>(
    cmd: &'a IssueCredential,
    holder_hash: &corridor_domain::holder::HolderHash,
) -> Idempotent<'a> {
    Idempotent {
        operation: "IssueCredential",
        request_id: &cmd.request_id,
        fingerprint: json!({
            "issuer_city": cmd.issuer_city,
            "qualification": cmd.qualification,
            "holder_name": cmd.holder_name,
            "holder": holder_hash,
            "valid_from": cmd.valid_from,
            "valid_until": cmd.valid_until,
        }),
    }
}

fn operation_of(t: Transition) -> &'static str {
    match t {
        Transition::Suspend => "SuspendCredential",
        Transition::Reinstate => "ReinstateCredential",
        Transition::Revoke => "RevokeCredential",
    }
}
