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
use corridor_domain::city::CityCode;
use corridor_domain::credential::Credential;
use corridor_policy::{
    CompiledPolicy, DEFAULT_POLICIES, Decision, Engine, Explanation, Facts, Subject, Target,
};
use sea_orm::ConnectionTrait;

use crate::error::{AppError, AppResult};
use crate::store::cities as city_store;
use crate::store::policies::{self as policy_store, PolicyVersion};

/// Compiled policies and city provinces.
#[derive(Debug)]
pub struct PolicyBook {
    engine: Engine,
    compiled: RwLock<HashMap<(CityCode, i32), Arc<CompiledPolicy>>>,
    provinces: RwLock<HashMap<CityCode, String>>,
}

/// A policy version in force, compiled.
pub type InForce = (i32, Arc<CompiledPolicy>);

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

impl Decided {
    /// Its explanation, as stored and shown, for a decision into `city`.
    pub fn explanation(&self, city: &CityCode) -> Explanation {
        Explanation::of(&self.decision, city.as_str(), self.policy_version, self.at)
    }
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
    pub async fn bootstrap(&self, conn: &impl ConnectionTrait) -> AppResult<()> {
        self.reload_cities(conn).await?;
        for (code, src) in DEFAULT_POLICIES {
            let city = CityCode::parse("city", code).map_err(AppError::internal)?;
            if self.province_cached(&city).is_none()
                || policy_store::latest_version(conn, &city).await? > 0
            {
                continue;
            }
            self.engine
                .load(src)
                .map_err(|d| AppError::internal(format!("default policy of {code}: {d:?}")))?;
            let inserted = policy_store::insert(
                conn,
                &PolicyVersion {
                    city,
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

    async fn reload_cities(&self, conn: &impl ConnectionTrait) -> AppResult<()> {
        let rows = city_store::all(conn).await?;
        if let Ok(mut p) = self.provinces.write() {
            *p = rows.into_iter().map(|c| (c.code, c.province)).collect();
        }
        Ok(())
    }

    fn province_cached(&self, city: &CityCode) -> Option<String> {
        self.provinces.read().ok()?.get(city).cloned()
    }

    /// The province of a city, `None` for a city not in the corridor.
    pub async fn province(
        &self,
        conn: &impl ConnectionTrait,
        city: &CityCode,
    ) -> AppResult<Option<String>> {
        if let Some(p) = self.province_cached(city) {
            return Ok(Some(p));
        }
        self.reload_cities(conn).await?;
        Ok(self.province_cached(city))
    }

    /// Every corridor city code, sorted.
    pub async fn cities(&self, conn: &impl ConnectionTrait) -> AppResult<Vec<CityCode>> {
        self.reload_cities(conn).await?;
        let mut v: Vec<CityCode> = self
            .provinces
            .read()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        Ok(v)
    }

    /// The target of a decision into `city`; `field` names the request field
    /// for the error when `city` is no corridor city.
    pub async fn target(
        &self,
        conn: &impl ConnectionTrait,
        city: &CityCode,
        field: &'static str,
    ) -> AppResult<Target> {
        let province = self
            .province(conn, city)
            .await?
            .ok_or_else(|| AppError::UnknownCity {
                field,
                code: city.to_string(),
            })?;
        Ok(Target {
            city: city.to_string(),
            province,
        })
    }

    /// A stored version, compiled (cached).
    pub fn compiled(&self, v: &PolicyVersion) -> AppResult<Arc<CompiledPolicy>> {
        let key = (v.city.clone(), v.version);
        if let Some(p) = self.compiled.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(p);
        }
        let p = Arc::new(self.engine.load(&v.source).map_err(|d| {
            AppError::internal(format!(
                "stored policy {} v{} does not compile: {d:?}",
                v.city, v.version
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
        city: &CityCode,
        at: DateTime<Utc>,
    ) -> AppResult<Option<InForce>> {
        match policy_store::in_force(conn, city, at).await? {
            Some(v) => Ok(Some((v.version, self.compiled(&v)?))),
            None => Ok(None),
        }
    }

    /// The rule's view of a registered credential.
    pub async fn subject(&self, conn: &impl ConnectionTrait, c: &Credential) -> AppResult<Subject> {
        let issuer_province = self
            .province(conn, &c.issuer_city)
            .await?
            .unwrap_or_default();
        let q = &c.qualification;
        Ok(Subject {
            credential_id: c.id.to_string(),
            category: q.category(),
            series: q.series().to_owned(),
            level: q.level(),
            title: q.title().to_owned(),
            issuer_city: c.issuer_city.to_string(),
            issuer_province,
            issued_at: c.issued_at,
            window: c.window,
            status: c.status,
        })
    }

    /// Decides with `policy`, the one in force (guard rails first; with no
    /// policy in force, REJECTED). No explanation of the rules that did not
    /// apply: for bulk decisions (matrix, simulation).
    pub fn decide_with(
        &self,
        policy: Option<&InForce>,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> AppResult<Decided> {
        self.decided(policy, at, |p| {
            self.engine.decide_in_force(p, subject, target, facts, at)
        })
    }

    /// `decide` with `policy`'s compiled form, as a [`Decided`].
    fn decided(
        &self,
        policy: Option<&InForce>,
        at: DateTime<Utc>,
        decide: impl FnOnce(Option<&CompiledPolicy>) -> Result<Decision, String>,
    ) -> AppResult<Decided> {
        let decision = decide(policy.map(|(_, p)| p.as_ref())).map_err(AppError::internal)?;
        // A guard rail decides before any policy is consulted.
        let consulted = policy.filter(|_| decision.guard_rail.is_none());
        Ok(Decided {
            decision,
            policy_version: consulted.map_or(0, |(v, _)| *v),
            at,
        })
    }

    /// A compiled version, when this replica has compiled it before.
    pub fn cached_compiled(&self, city: &CityCode, version: i32) -> Option<Arc<CompiledPolicy>> {
        self.compiled
            .read()
            .ok()?
            .get(&(city.clone(), version))
            .cloned()
    }

    /// Decides `subject` into `target` as of `at` under `policy` (the one in
    /// force then), with the full explanation (including, for every rule
    /// that did not apply, the condition that failed).
    pub fn decide_explained(
        &self,
        policy: Option<&InForce>,
        subject: &Subject,
        target: &Target,
        facts: &Facts,
        at: DateTime<Utc>,
    ) -> AppResult<Decided> {
        self.decided(policy, at, |p| {
            self.engine.decide_explained(p, subject, target, facts, at)
        })
    }
}

/// The version of a schedule in force at `at`: the latest `effective_from`
/// not after `at`, the higher version on a tie.
pub fn in_force_at(schedule: &[(i32, DateTime<Utc>)], at: DateTime<Utc>) -> Option<i32> {
    schedule
        .iter()
        .filter(|(_, from)| *from <= at)
        .max_by_key(|(v, from)| (*from, *v))
        .map(|(v, _)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_in_force() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap_or_default();
        let s = vec![(1, t(0)), (2, t(100)), (3, t(50)), (4, t(100))];
        assert_eq!(in_force_at(&s, t(10)), Some(1));
        assert_eq!(in_force_at(&s, t(60)), Some(3));
        assert_eq!(in_force_at(&s, t(100)), Some(4));
        assert_eq!(in_force_at(&s[1..], t(10)), None);
    }
}
