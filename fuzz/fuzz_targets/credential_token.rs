//! The credential-token (VC-JWT) parser and verifier (`vc::verify_token`,
//! what VerifyCredential runs on a token a verifier pastes in), then the
//! registry rules (`verify::verify`), fed:
//! - `0…` any text as the token;
//! - `1…` any bytes as the payload, under a good header, signed with the
//!   registered key (so the claims parsing behind the signature is reached);
//! - `2…` `header\npayload`, any bytes each, signed with the registered key.
//!
//! Properties: no panic; claims only behind a signature that passed; a
//! report is valid only when signature, issuer and window passed; and the
//! claims read from a token sign and read back as the same claims.

#![no_main]

use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use corridor_domain::city::CityCode;
use corridor_domain::keys::{IssuerSigningKey, IssuerVerifyingKey};
use corridor_domain::vc::{self, Outcome, TokenVerification};
use corridor_domain::verify;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;

const KID: &str = "hangzhou-20250101-00000000";
const HEADER: &str = r#"{"typ":"vc+jwt","alg":"EdDSA","kid":"hangzhou-20250101-00000000"}"#;

struct Keys {
    /// The registered key of the tokens the fuzzer writes (seed `[7; 32]`).
    signing: SigningKey,
    verifying: Arc<IssuerVerifyingKey>,
    /// A key `vc::sign` takes, for the round trip.
    issuer: IssuerSigningKey,
    issuer_verifying: Arc<IssuerVerifyingKey>,
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .unwrap_or_else(|| unreachable!())
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let city = CityCode::parse("city", "hangzhou").unwrap_or_else(|_| unreachable!());
    let signing = SigningKey::from_bytes(&[7; 32]);
    let verifying = IssuerVerifyingKey::from_public(
        KID.into(),
        city.clone(),
        signing.verifying_key().to_bytes(),
        at(2025, 1, 1),
        None,
    );
    let issuer =
        IssuerSigningKey::generate(&city, at(2025, 1, 1)).unwrap_or_else(|_| unreachable!());
    let issuer_verifying = issuer.verifying_key(at(2025, 1, 1));
    Keys {
        signing,
        verifying: Arc::new(verifying),
        issuer,
        issuer_verifying: Arc::new(issuer_verifying),
    }
});

fn signed(keys: &Keys, header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = keys.signing.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = &*KEYS;
    let token = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => signed(keys, HEADER.as_bytes(), rest),
        _ => {
            let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            signed(keys, header, payload)
        }
    };
    let now = at(2026, 6, 1);
    let key_for = |kid: &str| (kid == KID).then(|| keys.verifying.clone());
    let tv = vc::verify_token(&token, key_for, now);
    check(&tv, &token);

    // The claims of a token sign and read back unchanged.
    if let Some(claims) = &tv.claims {
        let again = vc::sign(&keys.issuer, claims).unwrap_or_else(|e| panic!("re-signing: {e}"));
        let kid = keys.issuer.kid().to_owned();
        let back = vc::verify_token(
            &again,
            |k: &str| (k == kid).then(|| keys.issuer_verifying.clone()),
            now,
        );
        assert_eq!(
            back.claims.as_ref(),
            Some(claims),
            "claims changed on a round trip"
        );
    }
});

fn check(tv: &TokenVerification, token: &str) {
    if tv.claims.is_some() {
        assert!(
            matches!(tv.signature, Outcome::Passed(_)),
            "claims without a passed signature: {tv:?}"
        );
        assert_eq!(tv.kid.as_deref(), Some(KID));
    }
    // No registry record and no national ID: never throttled, and valid
    // only when the token checks passed (the status check then fails: the
    // credential is not in the registry).
    let verdict = verify::verify(tv, token, None, None)
        .unwrap_or_else(|_| panic!("throttled without a holder check"));
    assert!(!verdict.report.valid, "valid without a registry record");
    assert!(verdict.live_status.is_none() && !verdict.holder_failed);
    let report = vc::Report::new(tv, Outcome::Passed("active".into()), Outcome::skipped("-"));
    if report.valid {
        assert!(tv.claims.is_some(), "a valid report without claims");
        assert!(
            matches!(tv.window, Outcome::Passed(_)),
            "valid outside its window"
        );
    }
}
