//! What authenticating a request costs, with and without the token cache.
//!
//! Baseline: `IdentityVerifier::verify` of a caller's bearer token (EdDSA
//! signature and claim checks), as every request did before the cache.
//! Measured against it, in the same run: a `CallerCache` hit for the same
//! token, which is what every request after the first pays. Prints ns/op and
//! the ratio; `cargo bench -p corridor-server --bench authenticate`.

#![allow(clippy::expect_used)] // a benchmark that cannot set up should stop

use std::hint::black_box;
use std::time::Instant;

use chrono::Utc;
use corridor_server::caller_cache::CallerCache;
use corridor_server::config::{Settings, dev_identity_minter};

fn time_per_op(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iters)
}

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

    let iters = 20_000;
    let (mut full, mut hit) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        full.push(time_per_op(iters, || {
            black_box(verifier.verify(black_box(&token)).is_ok());
        }));
        hit.push(time_per_op(iters, || {
            black_box(cache.get(black_box(&token)).is_some());
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (f, h) = (median(&mut full), median(&mut hit));
    println!("token bytes:                              {}", token.len());
    println!("baseline IdentityVerifier::verify:        {f:>9.0} ns/op");
    println!("CallerCache hit (SHA-256 + map lookup):   {h:>9.0} ns/op");
    println!("ratio cache hit / full validation:        {:>9.3}x", h / f);
}
