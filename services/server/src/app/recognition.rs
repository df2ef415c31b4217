//! Deciding, recording and re-deciding recognitions, and what a city's
//! policy says about a credential without recording anything.

use chrono::{DateTime, Utc};
use corridor_domain::RequestId;
use corridor_domain::authz;
use corridor_domain::caller::Caller;
use corridor_domain::city::CityCode;
use corridor_domain::credential::Credential;
use corridor_domain::qualification::Qualification;
use corridor_domain::recognition::RecognitionStatus;
use corridor_domain::status_list::StatusEntry;
use corridor_domain::vc::{self, AttestationClaims};
use corridor_policy::{Explanation, Facts, Outcome, Subject};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Done, Idempotent};
use crate::error::{AppError, AppResult};
use crate::paging::{Page, page_size};
use crate::policy_book::Decided;
use crate::state::AppState;
use crate::store::audit::NewEvent;
use crate::store::credentials as cred_store;
use crate::store::recognitions::{self as rec_store, Cursor, Filter};
use corridor_policy::Recognition;

/// A recognition with the qualification it is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecognitionView {
    /// The record.
    pub recognition: Recognition,
    /// The source credential's qualification (absent in listings).
    pub qualification: Option<Qualification>,
}

/// RequestRecognition.
#[derive(Debug)]
pub struct RequestRecognition {
    /// For idempotent retries.
    pub request_id: RequestId,
    /// The source credential.
    pub credential_id: Uuid,
    /// The receiving city.
    pub target_city: CityCode,
    /// The holder's situation there.
    pub facts: Facts,
}

/// UpdateRecognitionFacts.
#[derive(Debug)]
pub struct UpdateFacts {
    /// For idempotent retries.
    pub request_id: RequestId,
    /// The recognition.
    pub id: Uuid,
    /// New facts; those not given keep their recorded value.
    pub facts: Facts,
}

/// EvaluateRecognition: a dry run.
#[derive(Debug)]
pub struct EvaluateRecognition {
    /// The source credential.
    pub credential_id: Uuid,
    /// The receiving city.
    pub target_city: CityCode,
    /// The holder's situation there.
    pub facts: Facts,
    /// Decide with the policy in force then (default: now).
    pub as_of: Option<DateTime<Utc>>,
}

/// The answer of a dry run.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The outcome.
    pub outcome: Outcome,
    /// The mapped level.
    pub mapped_level: Option<u8>,
    /// Why.
    pub explanation: Explanation,
}

/// ListRecognitions.
#[derive(Debug, Default)]
pub struct ListRecognitions {
    /// Only into this city (default: the caller's, or all for auditors).
    pub target_city: Option<CityCode>,
    /// Only of this credential.
    pub credential_id: Option<Uuid>,
    /// Only with this status (`open`, `decided`, `suspended`, `void`).
    pub status: Option<&'static str>,
    /// Page size (parsed).
    pub page_size: u64,
    /// Opaque token of the page to read.
    pub page_token: String,
}

/// Parses a requested page size for recognition listings.
pub fn recognition_page_size(raw: i32) -> Result<u64, corridor_domain::Violations> {
    page_size(raw, 50, 500)
}

/// GetRecognitionMatrix.
#[derive(Debug)]
pub struct MatrixQuery {
    /// The qualification, as if issued by each city.
    pub qualification: Qualification,
    /// The holder's facts.
    pub facts: Facts,
    /// With the policies in force then (default: now).
    pub as_of: Option<DateTime<Utc>>,
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct MatrixCell {
    /// Issuing city.
    pub source: CityCode,
    /// Receiving city.
    pub target: CityCode,
    /// The decision.
    pub decided: Decided,
}

/// Source × target outcomes for one qualification.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Every corridor city, sorted.
    pub cities: Vec<CityCode>,
    /// One cell per (source, target), sources outer.
    pub cells: Vec<MatrixCell>,
}

/// What a city makes of a credential, for a verifier.
#[derive(Debug, Clone)]
pub struct RecognitionReport {
    /// The city asked about.
    pub city: CityCode,
    /// The recorded recognition this comes from, if any (else a dry run).
    pub recorded: Option<(Uuid, RecognitionStatus)>,
    /// The outcome (REJECTED while the recognition is suspended or void).
    pub outcome: Outcome,
    /// The mapped level.
    pub mapped_level: Option<u8>,
    /// Why.
    pub explanation: Explanation,
}

impl AppState {
    /// Decides a recognition into the caller's city and records it.
    pub async fn request_recognition(
        &self,
        caller: &Caller,
        cmd: RequestRecognition,
    ) -> AppResult<RecognitionView> {
        authz::decide_recognition(caller, &cmd.target_city)?;
        let key = Idempotent {
            operation: "RequestRecognition",
            request_id: &cmd.request_id,
            fingerprint: json!({
                "credential_id": cmd.credential_id,
                "target_city": cmd.target_city,
                "facts": cmd.facts,
            }),
        };
        let target = &cmd.target_city;
        // Before any transaction (it may use the pool's only connection).
        let entry = self
            .status_lists
            .allocate(&self.db, target, async || {
                self.known_city(target, "target_city").await
            })
            .await?;
        self.mutate(
            caller,
            key,
            // Locked until commit: a concurrent suspension or revocation
            // waits, and its cascade then sees this recognition.
            async |txn| {
                cred_store::get_for_update(txn, cmd.credential_id)
                    .await?
                    .ok_or_else(|| {
                        AppError::NotFound(format!("no credential {}", cmd.credential_id))
                    })
            },
            async |txn, cred, now| {
                let decided = self
                    .decide(txn, &cred, (target, "target_city"), &cmd.facts, now)
                    .await?;
                let id = Uuid::now_v7();
                let attestation = self
                    .attest(txn, (id, entry), &cred, target, &decided)
                    .await?;
                let r = Recognition {
                    id,
                    credential_id: cred.id,
                    source_city: cred.issuer_city.clone(),
                    target_city: target.clone(),
                    outcome: decided.decision.outcome,
                    mapped_level: decided.decision.mapped_level,
                    facts: cmd.facts.clone(),
                    explanation: decided.explanation(target),
                    policy_version: decided.policy_version,
                    status: RecognitionStatus::after_decision(
                        decided.decision.outcome == Outcome::Conditional,
                    ),
                    attestation,
                    decided_by: caller.subject.clone(),
                    decided_at: now,
                    updated_at: now,
                    status_entry: entry,
                };
                rec_store::insert(txn, &r).await?;
                let event = NewEvent::by(
                    caller,
                    "recognition.decided",
                    "recognition",
                    id,
                    json!({
                        "credential_id": cred.id,
                        "source_city": cred.issuer_city,
                        "target_city": target,
                        "outcome": r.outcome.as_str(),
                        "mapped_level": r.mapped_level,
                        "policy_version": r.policy_version,
                        "deciding_rules": decided.decision.deciding_rules,
                    }),
                    now,
                )
                .concerning(target, Some(cred.issuer_city.to_string()));
                Ok(Done {
                    result: RecognitionView {
                        recognition: r,
                        qualification: Some(cred.qualification),
                    },
                    events: vec![event],
                })
            },
        )
        .await
        .inspect(|v| {
            let r = &v.recognition;
            metrics::counter!(
                "corridor_recognitions_total",
                "source" => r.source_city.to_string(),
                "target" => r.target_city.to_string(),
                "outcome" => r.outcome.as_str(),
            )
            .increment(1);
        })
    }

    /// Re-decides an open CONDITIONAL recognition with new facts, under the
    /// policy in force now.
    pub async fn update_recognition_facts(
        &self,
        caller: &Caller,
        cmd: UpdateFacts,
    ) -> AppResult<RecognitionView> {
        authz::may_call(caller, authz::Rpc::DecideRecognition)?;
        let id = cmd.id;
        let key = Idempotent {
            operation: "UpdateRecognitionFacts",
            request_id: &cmd.request_id,
            fingerprint: json!({ "id": id, "facts": cmd.facts }),
        };
        self.mutate(
            caller,
            key,
            // Locked; the caller must decide into its target city.
            async |txn| {
                let r = rec_store::get_for_update(txn, id)
                    .await?
                    .ok_or_else(|| AppError::NotFound(format!("no recognition {id}")))?;
                authz::decide_recognition(caller, &r.target_city)?;
                Ok(r)
            },
            async |txn, row, now| {
                if !row.status.can_redecide() {
                    return Err(AppError::FailedPrecondition(
                        "RECOGNITION_NOT_OPEN",
                        format!(
                        "only an open CONDITIONAL recognition can be re-decided; this one is {}",
                        row.status
                    ),
                    ));
                }
                let facts = row.facts.updated_with(&cmd.facts);
                let cred = cred_store::get(txn, row.credential_id)
                    .await?
                    .ok_or_else(|| AppError::internal("recognition without its credential"))?;
                let target = row.target_city.clone();
                let decided = self
                    .decide(txn, &cred, (&target, "target_city"), &facts, now)
                    .await?;
                let attestation = self
                    .attest(txn, (id, row.status_entry), &cred, &target, &decided)
                    .await?;
                let updated = Recognition {
                    outcome: decided.decision.outcome,
                    mapped_level: decided.decision.mapped_level,
                    facts,
                    explanation: decided.explanation(&target),
                    policy_version: decided.policy_version,
                    status: RecognitionStatus::after_decision(
                        decided.decision.outcome == Outcome::Conditional,
                    ),
                    attestation,
                    updated_at: now,
                    ..row.clone()
                };
                rec_store::update(txn, &updated).await?;
                let event = NewEvent::by(
                    caller,
                    "recognition.redecided",
                    "recognition",
                    id,
                    json!({
                        "from": row.outcome.as_str(),
                        "to": updated.outcome.as_str(),
                        "mapped_level": updated.mapped_level,
                        "policy_version": updated.policy_version,
                        "deciding_rules": decided.decision.deciding_rules,
                    }),
                    now,
                )
                .concerning(&updated.target_city, Some(updated.source_city.to_string()));
                Ok(Done {
                    result: RecognitionView {
                        recognition: updated,
                        qualification: Some(cred.qualification),
                    },
                    events: vec![event],
                })
            },
        )
        .await
    }

    /// What the target city's policy would decide (nothing is recorded).
    pub async fn evaluate_recognition(
        &self,
        caller: &Caller,
        cmd: EvaluateRecognition,
    ) -> AppResult<Evaluation> {
        authz::evaluate_recognition(caller)?;
        let at = cmd.as_of.unwrap_or_else(|| self.clock.now());
        let cred = self
            .credential(cmd.credential_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no credential {}", cmd.credential_id)))?;
        let d = self
            .decide(
                &self.db,
                &cred,
                (&cmd.target_city, "target_city"),
                &cmd.facts,
                at,
            )
            .await?;
        Ok(Evaluation {
            outcome: d.decision.outcome,
            mapped_level: d.decision.mapped_level,
            explanation: d.explanation(&cmd.target_city),
        })
    }

    /// One recognition, with its qualification. Answered like a missing one
    /// to callers who may not read it.
    pub async fn get_recognition(&self, caller: &Caller, id: Uuid) -> AppResult<RecognitionView> {
        authz::may_call(caller, authz::Rpc::GetRecognition)?;
        let missing = || AppError::NotFound(format!("no recognition {id}"));
        let r = rec_store::get(&self.db, id).await?.ok_or_else(missing)?;
        authz::read_recognition(caller, &r.source_city, &r.target_city).map_err(|_| missing())?;
        let cred = cred_store::get(&self.db, r.credential_id).await?;
        Ok(RecognitionView {
            recognition: r,
            qualification: cred.map(|c| c.qualification),
        })
    }

    /// Lists recognitions, newest first.
    pub async fn list_recognitions(
        &self,
        caller: &Caller,
        cmd: ListRecognitions,
    ) -> AppResult<Page<Recognition>> {
        let city = authz::list_recognitions(caller, cmd.target_city.as_ref())?;
        if let Some(c) = &city {
            self.known_city(c, "target_city").await?;
        }
        let filter = Filter {
            target_city: city,
            credential_id: cmd.credential_id,
            status: cmd.status,
        };
        let after = self
            .page_tokens
            .decode::<Cursor>(&cmd.page_token, &filter)?;
        let rows = rec_store::list(&self.db, &filter, after, cmd.page_size + 1).await?;
        self.page_tokens
            .page(rows, cmd.page_size, &filter, |r| Cursor {
                decided_at: r.decided_at,
                id: r.id,
            })
    }

    /// Source × target outcomes for one qualification, under the policies
    /// in force at `as_of`.
    pub async fn recognition_matrix(&self, caller: &Caller, q: MatrixQuery) -> AppResult<Matrix> {
        authz::recognition_matrix(caller)?;
        let at = q.as_of.unwrap_or_else(|| self.clock.now());
        let (db, book) = (&self.db, &self.policies);
        let cities = book.cities(db).await?;
        let mut targets = Vec::with_capacity(cities.len());
        for c in &cities {
            targets.push((
                c.clone(),
                book.target(db, c, "target_city").await?,
                book.in_force(db, c, at).await?,
            ));
        }
        let mut cells = Vec::with_capacity(cities.len() * cities.len());
        for source in &cities {
            let province = book.province(db, source).await?.unwrap_or_default();
            let qual = &q.qualification;
            let mut subject = Subject::synthetic(
                qual.category(),
                qual.series(),
                qual.level(),
                source.as_str(),
                &province,
                at,
            );
            subject.title = qual.title().to_owned();
            for (city, t, policy) in &targets {
                cells.push(MatrixCell {
                    source: source.clone(),
                    target: city.clone(),
                    decided: book.decide_with(policy.as_ref(), &subject, t, &q.facts, at)?,
                });
            }
        }
        Ok(Matrix { cities, cells })
    }

    /// Whether and how `cred` is recognized in `city`: the latest recorded
    /// recognition, else a dry run of the city's policy in force.
    pub(crate) async fn recognition_report(
        &self,
        city: &CityCode,
        cred: &Credential,
        now: DateTime<Utc>,
    ) -> AppResult<RecognitionReport> {
        if let Some(r) = rec_store::latest_for(&self.db, cred.id, city).await? {
            let mut explanation = r.explanation.clone();
            // A verifier learns what a city decided, not the holder's
            // situation there: the facts given stay with the recognition.
            for u in &mut explanation.unmet {
                u.given = None;
            }
            let (outcome, mapped_level) = match r.status {
                RecognitionStatus::Void => {
                    explanation.reason = format!(
                        "void: the source credential was revoked ({})",
                        explanation.reason
                    );
                    (Outcome::Rejected, None)
                }
                RecognitionStatus::Suspended { .. } => {
                    explanation.reason = format!(
                        "suspended: the source credential is suspended ({})",
                        explanation.reason
                    );
                    (Outcome::Rejected, None)
                }
                RecognitionStatus::Open | RecognitionStatus::Decided => (r.outcome, r.mapped_level),
            };
            return Ok(RecognitionReport {
                city: city.clone(),
                recorded: Some((r.id, r.status)),
                outcome,
                mapped_level,
                explanation,
            });
        }
        let d = self
            .decide(
                &self.db,
                cred,
                (city, "recognition_city"),
                &Facts::default(),
                now,
            )
            .await?;
        Ok(RecognitionReport {
            city: city.clone(),
            recorded: None,
            outcome: d.decision.outcome,
            mapped_level: d.decision.mapped_level,
            explanation: d.explanation(city),
        })
    }

    /// Decides `cred` into `city` with `facts` at `at`, fully explained.
    async fn decide(
        &self,
        conn: &impl ConnectionTrait,
        cred: &Credential,
        (city, field): (&CityCode, &'static str),
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> AppResult<Decided> {
        let book = &self.policies;
        let target = book.target(conn, city, field).await?;
        let subject = book.subject(conn, cred).await?;
        let policy = self.policy_in_force(conn, city, at).await?;
        book.decide_explained(policy.as_ref(), &subject, &target, facts, at)
    }

    /// The policy of `city` in force at `at`, compiled: from memory when the
    /// cache may answer (publications notify every replica, like status
    /// changes), else from the database.
    ///
    /// Reads through `conn`: inside a transaction that is the transaction's
    /// own connection (SQLite, under `--dev`, has only one).
    pub(crate) async fn policy_in_force(
        &self,
        conn: &impl ConnectionTrait,
        city: &CityCode,
        at: DateTime<Utc>,
    ) -> AppResult<Option<crate::policy_book::InForce>> {
        let schedule = match self.status_cache.schedule(city.as_str()) {
            Some(s) => s,
            None => {
                let read_at = self.status_cache.generation();
                let s = crate::store::policies::schedule(conn, city).await?;
                self.status_cache
                    .insert_schedule(city.as_str(), s.clone(), read_at);
                std::sync::Arc::new(s)
            }
        };
        let Some(version) = crate::policy_book::in_force_at(&schedule, at) else {
            return Ok(None);
        };
        if let Some(p) = self.policies.cached_compiled(city, version) {
            return Ok(Some((version, p)));
        }
        let v = crate::store::policies::get(conn, city, version)
            .await?
            .ok_or_else(|| AppError::internal(format!("{city} v{version} vanished")))?;
        Ok(Some((version, self.policies.compiled(&v)?)))
    }

    /// Signs the attestation of a decision with the target city's current
    /// key, valid for the city's attestation validity, carrying the
    /// recognition's status `entry`.
    async fn attest(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        (id, entry): (Uuid, Option<StatusEntry>),
        cred: &Credential,
        target: &CityCode,
        d: &Decided,
    ) -> AppResult<String> {
        let key_row = self.current_key(txn, target, "target_city").await?;
        let key = self.keyring.signing_for(&key_row)?;
        // The city's validity, and never past the source credential's end.
        let valid_until =
            d.at.checked_add_signed(self.attestations.validity(target.as_str()))
                .ok_or_else(|| AppError::internal("attestation validity out of range"))?;
        let valid_until = cred
            .window
            .until
            .map_or(valid_until, |until| valid_until.min(until));
        vc::sign_attestation(
            &key,
            &AttestationClaims {
                recognition_id: id,
                credential_id: cred.id,
                source_city: cred.issuer_city.clone(),
                qualification: cred.qualification.clone(),
                target_city: target.clone(),
                outcome: d.decision.outcome.as_str().to_owned(),
                mapped_level: d.decision.mapped_level,
                policy_version: d.policy_version,
                deciding_rules: d.decision.deciding_rules.clone(),
                issued_at: d.at,
                valid_until,
                status: self.status_lists.entries(target, entry),
            },
        )
        .map_err(AppError::internal)
    }
}
