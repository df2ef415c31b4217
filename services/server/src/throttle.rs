//! Counting failed holder checks, per replica.
//!
//! The rule (how many failures per window, and why) is the domain's
//! (`corridor_domain::verify::holder_check_allowed`); this module only
//! keeps the counts. After the limit, holder checks of that (caller,
//! credential) are refused with RESOURCE_EXHAUSTED until the window passes.
//! Failed checks are also in the audit trail (`failed_checks` of
//! `credential.verified`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use corridor_domain::verify::{THROTTLE_WINDOW as WINDOW, holder_check_allowed};
/// Entries kept before old windows are swept.
const SWEEP_AT: usize = 100_000;

/// Counts failed holder checks.
#[derive(Debug, Default)]
pub struct HolderThrottle {
    failures: Mutex<HashMap<(String, uuid::Uuid), (u32, Instant)>>,
}

impl HolderThrottle {
    /// Whether `caller` may still run a holder check on `credential`.
    pub fn allowed(&self, caller: &str, credential: uuid::Uuid) -> bool {
        let Ok(map) = self.failures.lock() else {
            return false;
        };
        match map.get(&(caller.to_owned(), credential)) {
            Some((n, since)) => holder_check_allowed(*n, since.elapsed()),
            None => true,
        }
    }

    /// Records a failed holder check.
    pub fn failed(&self, caller: &str, credential: uuid::Uuid) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let e = map
            .entry((caller.to_owned(), credential))
            .or_insert((0, Instant::now()));
        if e.1.elapsed() >= WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corridor_domain::verify::MAX_HOLDER_FAILURES as MAX_FAILURES;

    #[test]
    fn five_failures_then_refused() {
        let t = HolderThrottle::default();
        let c = uuid::Uuid::new_v4();
        for _ in 0..MAX_FAILURES {
            assert!(t.allowed("emp", c));
            t.failed("emp", c);
        }
        assert!(!t.allowed("emp", c));
        assert!(t.allowed("other", c));
        assert!(t.allowed("emp", uuid::Uuid::new_v4()));
    }
}
