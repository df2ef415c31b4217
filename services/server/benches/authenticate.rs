//! What authenticating a request costs, with and without the token cache.
//!
//! Baseline: `IdentityVerifier::verify` of a caller's bearer token (EdDSA
//! signature and claim checks), as every request did before the cache.
//! Measured against it, in the same run: a `CallerCache` hit for the same
//! token, which is what every request after the first pays. Criterion
//! (through `corridor-benchkit`) prints the table with the ratio; `cargo
//! bench -p corridor-server --bench authenticate`.

#![allow(clippy::expect_used)] // a benchmark that cannot set up should stop

use std::hint::black_box;

use chrono::Utc;
use corridor_server::caller_cache::CallerCache;
use corridor_server::config::{Settings, dev_identity_minter};

fn main() {
    let settings = Settings::default().with_dev_defaults();
    let verifier = settings.identity_verifier().expect("verifier");
    let (minter, _) = dev_identity_minter(&settings.identity.audience);
    let token = minter
        .mint(
            "employer-1",
            None,
            &["verifier"],
            Utc::now(),
            chrono::Duration::minutes(10),
        )
        .expect("token");
    let cache = CallerCache::default();
    let (caller, exp) = verifier.verify_until(&token).expect("valid");
    cache.put(&token, caller, exp);

    println!("token bytes: {}", token.len());
    let mut c = corridor_benchkit::Comparison::new("authenticate");
    c.baseline("IdentityVerifier::verify (signature and claims)", || {
        verifier.verify(black_box(&token)).is_ok()
    });
    c.subject("CallerCache hit (SHA-256 and a map lookup)", || {
        cache.get(black_box(&token)).is_some()
    });
    c.report();
}
