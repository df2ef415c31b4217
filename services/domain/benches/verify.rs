//! How much of a credential verification is the signature check?
//!
//! Baseline: one raw Ed25519 verification (ed25519-dalek, with the public
//! key already decompressed) of the token's signing input. Measured against
//! it, in the same run: `vc::verify_token`, which parses the JWT, checks the
//! header, verifies the signature, parses the claims and runs the issuer and
//! validity-window checks. Both measured by criterion (through
//! `corridor-benchkit`), which prints the table with the ratio; `cargo bench
//! -p corridor-domain --bench verify` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use corridor_domain::city::CityCode;
use corridor_domain::credential::ValidityWindow;
use corridor_domain::keys::IssuerSigningKey;
use corridor_domain::qualification::{Category, Qualification};
use corridor_domain::vc::{self, CredentialClaims};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

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
        status: Vec::new(),
    };
    let token = vc::sign(&key, &claims)?;
    let vk = Arc::new(key.verifying_key(now - chrono::Duration::hours(1)));

    let (signing_input, sig_b64) = token.rsplit_once('.').ok_or("no signature")?;
    let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig_b64)?)?;
    let raw = VerifyingKey::from_bytes(&key.public_key())?;

    println!("token bytes: {}", token.len());
    let mut c = corridor_benchkit::Comparison::new("verify");
    c.baseline("raw Ed25519 verify of the signing input", || {
        raw.verify(black_box(signing_input.as_bytes()), &sig)
            .is_ok()
    });
    c.subject("vc::verify_token (every token check)", || {
        vc::verify_token(black_box(&token), |_| Some(vk.clone()), now)
            .claims
            .is_some()
    });
    c.report();
    Ok(())
}
