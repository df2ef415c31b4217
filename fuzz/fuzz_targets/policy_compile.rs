//! The policy compiler: `Engine::compile`, the entry ValidatePolicy and
//! PublishPolicy use (the budget check, then Cedar on its big-stack
//! thread, then the conflict search), fed any text.
//!
//! The properties of `services/policy/tests/properties.rs`: no panic (a
//! panic in Cedar would abort here through libFuzzer's panic hook, though
//! the server turns it into a diagnostic), no stack overflow, and a refusal
//! is located diagnostics, never the compiler's own failure; what compiles
//! as a draft also loads as a stored version.

#![no_main]

use std::sync::LazyLock;

use corridor_policy::{Engine, Target};
use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new().unwrap_or_else(|e| panic!("engine: {e}")));

fuzz_target!(|data: &[u8]| {
    // The server's source is a protobuf string: UTF-8.
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let target = Target {
        city: "hangzhou".into(),
        province: "zhejiang".into(),
    };
    match ENGINE.compile(src, Some(&target)) {
        Ok(_) => {
            if let Err(d) = ENGINE.load(src) {
                panic!("compiled as a draft but does not load: {d:?}");
            }
        }
        Err(diags) => {
            assert!(!diags.is_empty(), "refused without a diagnostic");
            for d in &diags {
                assert!(
                    !d.message.starts_with("the policy compiler "),
                    "the compiler itself failed: {d:?}"
                );
                assert!(d.line >= 1 && d.column >= 1, "unlocated: {d:?}");
            }
        }
    }
});
