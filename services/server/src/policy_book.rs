//! The policy book: compiled city policies and what deciding needs.
//!
//! Versions are immutable, so compiled policies are cached by (city,
//! version) for good. Which version is in force is read from the database at
//! each decision (one indexed query), so a publication on any replica takes
//! effect everywhere at its `effective_from`. City provinces are cached and
//! reloaded when an unknown city appears.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use corridor_domain::credential::ValidityWindow;
use corridor_domain::qualification::Category;
use corridor_policy::{CompiledPolicy, DEFAULT_POLICIES, Decision, Engine, Facts, Subject, Target};
use sea_orm::ConnectionTrait;

use crate::api::convert::row_status;
use crate::error::{ApiError, ApiResult};
use crate::store::cities as city_store;
use crate::store::entities::{credential, policy_version};
use crate::store::policies as policy_store;

/// Compiled policies and city provinces.
#[derive(Debug)]
pub struct PolicyBook {
    engine: Engine,
    compiled: RwLock<HashMap<(String, i32), Arc<CompiledPolicy>>>,
    provinces: RwLock<HashMap<String, String>>,
}

/// A decision with the policy version that made it (0: none was consulted).
#[derive(Debug, Clone)]
pub struct Decided {
    /// The decision.
    pub decision: Decision,
    /// The target's policy version.
    pub policy_version: i32,
    /// When.
    pub at: DateTime<Utc>,
}

impl PolicyBook {
    /// A book with the schema parsed.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            engine: Engine::new().map_err(anyhow::Error::msg)?,
            compiled: RwLock::new(HashMap::new()),
            provinces: RwLock::new(HashMap::new()),
        })
    }

    /// The policy engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Stores each founding city's default policy as its version 1, effective
    /// since the epoch, where the city has no policy yet; loads provinces.
    pub async fn bootstrap(&self, conn: &impl ConnectionTrait) -> ApiResult<()> {
        self.reload_cities(conn).await?;
        for (code, src) in DEFAULT_POLICIES {
            if self.province_cached(code).is_none()
                || policy_store::latest_version(conn, code).await? > 0
            {
                continue;
            }
            self.engine
                .load(src)
                .map_err(|d| ApiError::internal(format!("default policy of {code}: {d:?}")))?;
            let inserted = policy_store::insert(
                conn,
                policy_version::Model {
                    city_code: code.to_owned(),
                    version: 1,
                    source: src.to_owned(),
                    effective_from: DateTime::<Utc>::UNIX_EPOCH,
                    published_at: Utc::now(),
                    published_by: "system".to_owned(),
                },
            )
            .await?;
            if inserted {
                tracing::info!(city = code, "loaded the default policy as version 1");
            }
        }
        Ok(())
    }

    async fn reload_cities(&self, conn: &impl ConnectionTrait) -> ApiResult<()> {
        let rows = city_store::all(conn).await?;
        if let Ok(mut p) = self.provinces.write() {
            *p = rows.into_iter().map(|c| (c.code, c.province)).collect();
        }
        Ok(())
    }

    fn province_cached(&self, city: &str) -> Option<String> {
        self.provinces.read().ok()?.get(city).cloned()
    }

    /// The province of a city, `None` for a city not in the corridor.
    pub async fn province(
        &self,
        conn: &impl ConnectionTrait,
        city: &str,
    ) -> ApiResult<Option<String>> {
        if let Some(p) = self.province_cached(city) {
            return Ok(Some(p));
        }
        self.reload_cities(conn).await?;
        Ok(self.province_cached(city))
    }

    /// Every corridor city code, sorted.
    pub async fn cities(&self, conn: &impl ConnectionTrait) -> ApiResult<Vec<String>> {
        self.reload_cities(conn).await?;
        let mut v: Vec<String> = self
            .provinces
            .read()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        Ok(v)
    }

    /// The target of a decision into `city`, or NOT_FOUND.
    pub async fn target(&self, conn: &impl ConnectionTrait, city: &str) -> ApiResult<Target> {
        let province = self
            .province(conn, city)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no corridor city {city}")))?;
        Ok(Target {
            city: city.to_owned(),
            province,
        })
    }

    /// A stored version, compiled (cached).
    pub fn compiled(&self, row: &policy_version::Model) -> ApiResult<Arc<CompiledPolicy>> {
        let key = (row.city_code.clone(), row.version);
        if let Some(p) = self.compiled.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(p);
        }
        let p = Arc::new(self.engine.load(&row.source).map_err(|d| {
            ApiError::internal(format!(
                "stored policy {} v{} does not compile: {d:?}",
                row.city_code, row.version
            ))
        })?);
        if let Ok(mut m) = self.compiled.write() {
            m.insert(key, p.clone());
        }
        Ok(p)
    }

    /// The policy of `city` in force at `at`, compiled.
    pub async fn in_force(
        &self,
        conn: &impl ConnectionTrait,
        city: &str,
        at: DateTime<Utc>,
    ) -> ApiResult<Option<(i32, Arc<CompiledPolicy>)>> {
        match policy_store::in_force(conn, city, at).await? {
            Some(row) => Ok(Some((row.version, self.compiled(&row)?))),
            None => Ok(None),
        }
    }

    /// The rule's view of a stored credential.
    pub async fn subject(
        &self,
        conn: &impl ConnectionTrait,
        row: &credential::Model,
    ) -> ApiResult<Subject> {
        let category = Category::from_name(&row.category)
            .ok_or_else(|| ApiError::internal(format!("bad stored category {}", row.category)))?;
        let issuer_province = self
            .province(conn, &row.issuer_city)
            .await?
            .unwrap_or_default();
        Ok(Subject {
            credential_id: row.id.to_string(),
            category,
            series: row.series.clone(),
            level: u8::try_from(row.level).unwrap_or(0),
            title: row.title.clone(),
            issuer_city: row.issuer_city.clone(),
            issuer_province,
            issued_at: row.issued_at,
            window: ValidityWindow {
                from: row.valid_from,
                until: row.valid_until,
            },
            status: row_status(row)?,
        })
    }

    /// Decides with the policy in force at `at` (guard rails first; with no
    /// policy in force, REJECTED).
    pub fn decide_with(
        &self,
        policy: Option<&(i32, Arc<CompiledPolicy>)>,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> ApiResult<Decided> {
        let decision = self
            .engine
            .decide_in_force(policy.map(|(_, p)| p.as_ref()), subject, target, facts, at)
            .map_err(ApiError::internal)?;
        // A guard rail decides before any policy is consulted.
        let consulted = policy.filter(|_| decision.guard_rail.is_none());
        Ok(Decided {
            decision,
            policy_version: consulted.map_or(0, |(v, _)| *v),
            at,
        })
    }

    /// Decides `subject` into `target` as of `at`, reading the policy in
    /// force, with the full explanation (including, for every rule that did
    /// not apply, the condition that failed).
    pub async fn decide(
        &self,
        conn: &impl ConnectionTrait,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> ApiResult<Decided> {
        let policy = self.in_force(conn, &target.city, at).await?;
        let mut d = self.decide_with(policy.as_ref(), subject, target, facts, at)?;
        if let Some((_, p)) = &policy {
            self.engine
                .explain_not_applied(p, &mut d.decision, subject, target, facts, at)
                .map_err(ApiError::internal)?;
        }
        Ok(d)
    }
}
