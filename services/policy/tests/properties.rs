//! Property tests of the policy compiler: whatever a `policy_admin` sends,
//! compiling answers (a compiled policy or located diagnostics) and never
//! panics or overflows its stack, however deep the nesting.

use corridor_policy::{Engine, Target};
use proptest::prelude::*;

fn engine() -> Engine {
    Engine::new().unwrap_or_else(|e| unreachable!("{e}"))
}

/// Fragments of Cedar, assembled at random: most programs are wrong, some
/// are deeply nested, a few are valid.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("permit(principal, action, resource)".to_owned()),
        Just("forbid(principal, action, resource)".to_owned()),
        Just(" when { ".to_owned()),
        Just(" unless { ".to_owned()),
        Just(" }".to_owned()),
        Just(";".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(" && ".to_owned()),
        Just(" || ".to_owned()),
        Just(" + ".to_owned()),
        Just(" == ".to_owned()),
        Just("!".to_owned()),
        Just("-".to_owned()),
        Just("resource.level".to_owned()),
        Just("resource.category".to_owned()),
        Just("context.facts".to_owned()),
        Just("principal".to_owned()),
        Just("@id(\"r\")".to_owned()),
        Just("@outcome(\"recognized\")".to_owned()),
        Just("@priority(\"9999999999999999999999\")".to_owned()),
        Just("\"".to_owned()),
        Just("\\u{0}".to_owned()),
        Just("1".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just(".contains(".to_owned()),
        Just("if true then 1 else 2".to_owned()),
        "\\PC{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_text_compiles_or_is_diagnosed(src in "\\PC{0,400}") {
        let e = engine();
        if let Err(diags) = e.compile(&src, None) {
            prop_assert!(!diags.is_empty());
        }
    }

    #[test]
    fn assembled_fragments_compile_or_are_diagnosed(parts in proptest::collection::vec(fragment(), 0..200)) {
        let e = engine();
        let src: String = parts.concat();
        let target = Target { city: "hangzhou".into(), province: "zhejiang".into() };
        if let Err(diags) = e.compile(&src, Some(&target)) {
            prop_assert!(!diags.is_empty());
        }
        let _ = e.load(&src);
    }

    /// Nesting of every kind, at any depth up to far past the budget.
    #[test]
    fn deep_nesting_is_refused_or_compiled_never_fatal(
        depth in 0usize..5000,
        open in prop_oneof![Just(("(", ")")), Just(("[", "]")), Just(("!", "")), Just(("-", "")), Just(("if true then ", " else 1"))],
    ) {
        let e = engine();
        let expr = format!("{}1{}", open.0.repeat(depth), open.1.repeat(depth));
        let src = format!("@id(\"deep\")\n@outcome(\"recognized\")\npermit(principal, action, resource) when {{ {expr} == 1 }};");
        if let Err(diags) = e.compile(&src, None) {
            prop_assert!(!diags.is_empty());
        }
    }
}
