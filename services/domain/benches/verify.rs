//! How much of a credential verification is the signature check?
//!
//! Baseline: one raw Ed25519 verification (ed25519-dalek, with the public
//! key already decompressed) of the token's signing input. Measured against
//! it, in the same run: `vc::verify_token`, which parses the JWT, checks the
//! header, verifies the signature, parses the claims and runs the issuer and
//! validity-window checks. Prints ns/op and the ratio; `cargo bench -p
//! corridor-domain --bench verify`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use corridor_domain::city::CityCode;
use corridor_domain::credential::ValidityWindow;
use corridor_domain::keys::IssuerSigningKey;
use corridor_domain::qualification::{Category, Qualification};
use corridor_domain::vc::{self, CredentialClaims};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = Utc::now();
    let city = CityCode::parse("c", "hangzhou")?;
    let key = IssuerSigningKey::generate(&city, now)?;
    let claims = CredentialClaims {
        id: uuid::Uuid::now_v7(),
        issuer_city: city,
        qualification: Qualification::parse(
            "q",
            Some(Category::ProfessionalTitle),
            "engineering",
            4,
            "高级工程师",
        )?,
        holder_name: "张三".into(),
        window: ValidityWindow {
            from: now,
            until: None,
        },
        issued_at: now,
    };
    let token = vc::sign(&key, &claims)?;
    let vk = Arc::new(key.verifying_key(now - chrono::Duration::hours(1)));

    let (signing_input, sig_b64) = token.rsplit_once('.').ok_or("no signature")?;
    let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig_b64)?)?;
    let raw = VerifyingKey::from_bytes(&key.public_key())?;

    let iters = 20_000;
    // Interleave the two measurements to share whatever the machine is doing.
    let mut base = Vec::new();
    let mut full = Vec::new();
    for _ in 0..5 {
        base.push(time_per_op(iters, || {
            black_box(
                raw.verify(black_box(signing_input.as_bytes()), &sig)
                    .is_ok(),
            );
        }));
        full.push(time_per_op(iters, || {
            let v = vc::verify_token(black_box(&token), |_| Some(vk.clone()), now);
            black_box(v.claims.is_some());
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (b, f) = (median(&mut base), median(&mut full));
    println!("token bytes:                          {}", token.len());
    println!("baseline raw Ed25519 verify:          {b:>9.0} ns/op");
    println!("vc::verify_token (all token checks):  {f:>9.0} ns/op");
    println!("ratio verify_token / raw signature:   {:>9.2}x", f / b);
    println!(
        "time outside the signature check:     {:>9.0} ns/op ({:.0}%)",
        f - b,
        100.0 * (f - b) / f
    );
    Ok(())
}
