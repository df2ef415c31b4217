//! Property tests of the caller-token parser: whatever arrives in the
//! `authorization` header, verification answers (a caller or a refusal,
//! which the transport turns into UNAUTHENTICATED) and never panics; and no
//! alteration of a good token verifies as anyone else.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use corridor_domain::caller::{IdentityMinter, IdentityVerifier};
use proptest::prelude::*;

const ISS: &str = "https://idp.test";
const AUD: &str = "corridor";

fn setup() -> (IdentityMinter, IdentityVerifier) {
    let (m, pk) = IdentityMinter::from_seed("k1", [9; 32], ISS, AUD);
    (m, IdentityVerifier::new(ISS, AUD, vec![("k1".into(), pk)]))
}

fn good(m: &IdentityMinter) -> String {
    m.mint(
        "hangzhou-hr",
        Some("hangzhou"),
        &["issuer"],
        Utc::now(),
        chrono::Duration::minutes(5),
    )
    .unwrap_or_else(|e| unreachable!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any text at all.
    #[test]
    fn any_text_is_refused_without_panic(s in "\\PC{0,300}") {
        let (_, v) = setup();
        prop_assert!(v.verify(&s).is_err());
    }

    /// Three dot-separated parts of arbitrary base64url JSON-ish bytes.
    #[test]
    fn arbitrary_jws_shapes_are_refused(
        header in proptest::collection::vec(any::<u8>(), 0..120),
        payload in proptest::collection::vec(any::<u8>(), 0..400),
        sig in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let (_, v) = setup();
        let t = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(sig)
        );
        prop_assert!(v.verify(&t).is_err());
    }

    /// A good token with one character replaced: refused, or (a change
    /// base64 decodes to the same bytes) the very same caller.
    #[test]
    fn an_altered_token_is_never_someone_else(pos in any::<prop::sample::Index>(), c in any::<char>()) {
        let (m, v) = setup();
        let token = good(&m);
        let original = v.verify(&token).unwrap_or_else(|e| unreachable!("{e}"));
        let mut chars: Vec<char> = token.chars().collect();
        let i = pos.index(chars.len());
        chars[i] = c;
        let altered: String = chars.into_iter().collect();
        if let Ok(caller) = v.verify(&altered) {
            prop_assert_eq!(caller, original);
        }
    }

    /// Claims of any shape, signed with the right key: still no panic;
    /// accepted only when they carry everything a caller needs.
    #[test]
    fn signed_claims_of_any_shape_do_not_panic(
        sub in proptest::option::of("\\PC{0,40}"),
        city in proptest::option::of("[a-z\\x00]{0,12}"),
        roles in proptest::collection::vec("[a-z_]{0,16}", 0..5),
        exp in proptest::option::of(any::<i64>()),
        nbf in proptest::option::of(any::<i64>()),
    ) {
        let (m, v) = setup();
        let mut claims = serde_json::json!({"iss": ISS, "aud": AUD, "roles": roles});
        if let Some(s) = &sub { claims["sub"] = s.clone().into(); }
        if let Some(c) = &city { claims["city"] = c.clone().into(); }
        if let Some(e) = exp { claims["exp"] = e.into(); }
        if let Some(n) = nbf { claims["nbf"] = n.into(); }
        let Ok(token) = m.sign(&claims) else { return Ok(()) };
        let _ = v.verify(&token);
    }
}
