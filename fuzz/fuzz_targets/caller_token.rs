//! The caller-token parser (`IdentityVerifier::verify_until`, what every
//! RPC's `authorization` header goes through), fed:
//! - `0…` any text as the token;
//! - `1…` any JSON as the claims, signed with the trusted key (so the claim
//!   checks behind the signature are reached).
//!
//! The properties of `services/domain/tests/properties.rs`: no panic, and a
//! caller only from claims that carry what a caller needs.

#![no_main]

use std::sync::LazyLock;

use corridor_domain::caller::{IdentityMinter, IdentityVerifier};
use libfuzzer_sys::fuzz_target;

const ISS: &str = "https://idp.test";
const AUD: &str = "corridor";
/// The leeway the verifier allows on `exp` and `nbf`, and then some.
const LEEWAY: i64 = 120;

static KEYS: LazyLock<(IdentityMinter, IdentityVerifier)> = LazyLock::new(|| {
    let (m, pk) = IdentityMinter::from_seed("k1", [9; 32], ISS, AUD);
    (m, IdentityVerifier::new(ISS, AUD, vec![("k1".into(), pk)]))
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (minter, verifier) = &*KEYS;
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        check(verifier, &token, None);
    } else {
        let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else {
            return;
        };
        let Ok(token) = minter.sign(&claims) else {
            return;
        };
        check(verifier, &token, Some(&claims));
    }
});

fn check(verifier: &IdentityVerifier, token: &str, claims: Option<&serde_json::Value>) {
    let Ok((caller, exp)) = verifier.verify_until(token) else {
        return;
    };
    let now = chrono::Utc::now().timestamp();
    assert!(
        !caller.subject.trim().is_empty(),
        "an empty subject was accepted"
    );
    assert!(caller.subject.len() <= 200, "a long subject was accepted");
    assert!(
        !caller
            .subject
            .chars()
            .any(corridor_domain::text::is_deceptive),
        "a deceptive subject was accepted: {:?}",
        caller.subject
    );
    assert!(
        exp > now - LEEWAY,
        "an expired token was accepted (exp {exp})"
    );
    let Some(claims) = claims else {
        return;
    };
    assert_eq!(claims["sub"].as_str(), Some(caller.subject.as_str()));
    assert_eq!(claims["iss"].as_str(), Some(ISS));
    assert_eq!(claims["exp"].as_i64(), Some(exp));
    let nbf = claims["nbf"].as_i64();
    assert!(
        nbf.is_some_and(|n| n < now + LEEWAY),
        "nbf {nbf:?} accepted"
    );
    let city = claims["city"].as_str().unwrap_or_default();
    assert_eq!(
        caller.city.map(|c| c.to_string()).unwrap_or_default(),
        city,
        "the caller's city is not the claim's"
    );
}
