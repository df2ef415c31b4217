//! Page tokens (`paging::PageTokens::decode`, what every List RPC runs on
//! the client's `page_token`), decoded as each listing's cursor type, fed:
//! - `0…` any text as the token;
//! - `1…` any bytes as the body of a correctly signed token (so the cursor
//!   parsing behind the signature is reached);
//! - `2…` a cursor made into a token, then one byte of it changed.
//!
//! The properties of the proptests in `services/server/src/paging.rs`: no
//! panic; a refusal is a `page_token` field violation (INVALID_ARGUMENT);
//! a token reads back as its cursor, and no changed token is accepted.

#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corridor_domain::Violations;
use corridor_server::paging::PageTokens;
use corridor_server::store;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use sha2::Sha256;

const SECRET: [u8; 32] = [7; 32];
const FILTERS: &str = "filters";

/// The tokens, and their MAC key derived as `PageTokens::derived_from`
/// does (checked once against a token it made).
static TOKENS: LazyLock<(PageTokens, Hmac<Sha256>)> = LazyLock::new(|| {
    let tokens = PageTokens::derived_from(&SECRET).unwrap_or_else(|e| panic!("{e}"));
    let mut kdf = Hmac::<Sha256>::new_from_slice(&SECRET).unwrap_or_else(|e| panic!("{e}"));
    kdf.update(b"g60 page tokens v1");
    let mac = Hmac::<Sha256>::new_from_slice(&kdf.finalize().into_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let page = tokens
        .page(vec![1i64, 2], 1, &FILTERS, |n| *n)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let made = URL_SAFE_NO_PAD
        .decode(&page.next_page_token)
        .unwrap_or_else(|e| panic!("{e}"));
    let (body, tag) = made.split_at(made.len() - 16);
    assert_eq!(
        sign(&mac, body),
        [body, tag].concat(),
        "the key derivation changed"
    );
    (tokens, mac)
});

fn sign(mac: &Hmac<Sha256>, body: &[u8]) -> Vec<u8> {
    let mut m = mac.clone();
    m.update(body);
    let tag = m.finalize().into_bytes();
    [body, &tag[..16]].concat()
}

fn answered<C: DeserializeOwned>(tokens: &PageTokens, raw: &str) -> Option<C> {
    match tokens.decode::<C>(raw, &FILTERS) {
        Ok(c) => c,
        Err(Violations(vs)) => {
            assert!(!vs.is_empty(), "refused without a violation");
            assert!(vs.iter().all(|v| v.field == "page_token"), "{vs:?}");
            None
        }
    }
}

/// Every listing's cursor type.
fn decode_all(tokens: &PageTokens, raw: &str) {
    let _ = answered::<store::credentials::Cursor>(tokens, raw);
    let _ = answered::<store::recognitions::Cursor>(tokens, raw);
    let _ = answered::<i64>(tokens, raw);
    let _ = answered::<i32>(tokens, raw);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (tokens, mac) = &*TOKENS;
    match mode % 3 {
        0 => decode_all(tokens, &String::from_utf8_lossy(rest)),
        1 => decode_all(tokens, &URL_SAFE_NO_PAD.encode(sign(mac, rest))),
        _ => {
            let mut u = Unstructured::new(rest);
            let Ok((cursor, at, xor)) = <((i64, String), usize, u8)>::arbitrary(&mut u) else {
                return;
            };
            let page = tokens
                .page(vec![cursor.clone(), cursor.clone()], 1, &FILTERS, |c| {
                    c.clone()
                })
                .unwrap_or_else(|e| panic!("{e:?}"));
            let back = answered::<(i64, String)>(tokens, &page.next_page_token);
            assert_eq!(back, Some(cursor), "a token did not read back");
            let mut bytes = URL_SAFE_NO_PAD
                .decode(&page.next_page_token)
                .unwrap_or_else(|e| panic!("{e}"));
            let i = at % bytes.len();
            bytes[i] ^= xor.max(1);
            let altered = URL_SAFE_NO_PAD.encode(bytes);
            assert!(
                tokens.decode::<(i64, String)>(&altered, &FILTERS).is_err(),
                "a changed token was accepted"
            );
        }
    }
});
