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

    /// Claims of any shape, signed with the right key: no panic, and
    /// accepted only when they carry what a caller needs: a subject, an
    /// expiry still ahead, a start already behind (30 s leeway), a city
    /// claim that is empty or a well-formed code.
    #[test]
    fn signed_claims_are_accepted_only_when_complete(
        sub in proptest::option::of(prop_oneof!["\\PC{0,40}", Just(String::new()), Just("a\u{0}b".to_owned())]),
        city in proptest::option::of("[a-z\\x00]{0,12}"),
        roles in proptest::collection::vec("[a-z_]{0,16}", 0..5),
        exp in proptest::option::of(prop_oneof![any::<i64>(), -3600i64..3600]),
        nbf in proptest::option::of(prop_oneof![any::<i64>(), -3600i64..3600]),
    ) {
        let (m, v) = setup();
        let now = Utc::now().timestamp();
        // Small values are offsets from now, large ones absolute times.
        let at = |t: i64| if (-3600..3600).contains(&t) { now + t } else { t };
        let mut claims = serde_json::json!({"iss": ISS, "aud": AUD, "roles": roles});
        if let Some(s) = &sub { claims["sub"] = s.clone().into(); }
        if let Some(c) = &city { claims["city"] = c.clone().into(); }
        if let Some(e) = exp { claims["exp"] = at(e).into(); }
        if let Some(n) = nbf { claims["nbf"] = at(n).into(); }
        let Ok(token) = m.sign(&claims) else { return Ok(()) };
        if let Ok(caller) = v.verify(&token) {
            let sub = sub.unwrap_or_default();
            prop_assert_eq!(&caller.subject, &sub);
            prop_assert!(!sub.trim().is_empty() && !sub.contains(char::from(0)));
            prop_assert!(exp.is_some_and(|e| at(e) > now - 60), "exp {:?}", exp);
            prop_assert!(nbf.is_some_and(|n| at(n) < now + 60), "nbf {:?}", nbf);
            let city = city.unwrap_or_default();
            prop_assert!(!city.contains(char::from(0)));
            prop_assert_eq!(caller.city.map(|c| c.to_string()).unwrap_or_default(), city);
        }
    }
}
