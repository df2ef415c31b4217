//! The size and nesting budget a policy must fit before Cedar parses it.
//!
//! Why: Cedar's parser, validator and evaluator are recursive over the
//! expression tree. A few hundred bytes of nested parentheses, or a sum of
//! forty thousand terms, overflow a thread's stack, and a stack overflow is
//! not a panic that can be caught: it aborts the whole process. Any city's
//! `policy_admin` could then take the corridor down with one ValidatePolicy.
//!
//! So before a policy reaches Cedar, a small lexer (strings and `//`
//! comments skipped, which is all Cedar's lexical grammar needs here) bounds
//! what makes the tree deep:
//! - bracket nesting (`(`, `[`, `{`): at most [`MAX_NESTING`] levels;
//! - operators and accessors per rule (`&&`, `||`, `!`, comparisons, `+`,
//!   `-`, `*`, `.`, `in`, `has`, `like`, `is`, `if`/`then`/`else`): at most
//!   [`MAX_OPERATORS_PER_RULE`], so no operator chain is deeper than that.
//!
//! Real rules use a handful of levels and a few dozen operators; the bounds
//! are an order of magnitude above that. The engine also compiles on a
//! thread with a stack sized for the worst policy inside the budget (see
//! `Engine::compile`), and a policy inside the budget decides on an ordinary
//! 2 MiB thread (tested in `tests.rs`).

use crate::source::Diagnostic;

/// Deepest bracket nesting accepted.
pub const MAX_NESTING: usize = 32;
/// Most operator and accessor tokens in one rule (or one `@condition`).
pub const MAX_OPERATORS_PER_RULE: usize = 128;

/// Checks `src` against the budget. On failure, one diagnostic located at the
/// token that went over it.
pub fn check(src: &str) -> Result<(), Diagnostic> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut ops = 0usize;
    let mut i = 0usize;
    let over = |offset: usize, message: String| Diagnostic {
        line: crate::source::line_col(src, offset).0,
        column: crate::source::line_col(src, offset).1,
        rule_id: crate::source::rule_at(src, offset),
        message,
    };
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match b {
            b'"' => {
                // A string literal (annotation values included): skip it.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            b'/' if next == Some(b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(over(
                        i,
                        format!("brackets nest deeper than {MAX_NESTING} levels"),
                    ));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b';' if depth == 0 => ops = 0,
            b'&' | b'|' if next == Some(b) => {
                ops += 1;
                i += 2;
                if ops > MAX_OPERATORS_PER_RULE {
                    return Err(over(i - 2, too_many()));
                }
                continue;
            }
            b'!' | b'=' | b'<' | b'>' | b'+' | b'-' | b'*' | b'.' => {
                ops += 1;
                // Two-character operators count once.
                if next == Some(b'=') {
                    i += 1;
                }
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if matches!(
                    &src[start..i],
                    "in" | "has" | "like" | "is" | "if" | "then" | "else"
                ) {
                    ops += 1;
                }
                if ops > MAX_OPERATORS_PER_RULE {
                    return Err(over(start, too_many()));
                }
                continue;
            }
            _ => {}
        }
        if ops > MAX_OPERATORS_PER_RULE {
            return Err(over(i, too_many()));
        }
        i += 1;
    }
    Ok(())
}

fn too_many() -> String {
    format!(
        "a rule may hold at most {MAX_OPERATORS_PER_RULE} operators; split it into several rules"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_and_chains_are_bounded() {
        let deep = format!("{}1{}", "(".repeat(33), ")".repeat(33));
        let d = check(&deep).err().map(|d| d.message).unwrap_or_default();
        assert!(d.contains("nest"), "{d}");
        assert!(check(&format!("{}1{}", "(".repeat(32), ")".repeat(32))).is_ok());
        let sum = vec!["1"; 130].join(" + ");
        assert!(check(&sum).is_err());
        assert!(check(&vec!["1"; 129].join(" + ")).is_ok());
        // Rules are counted one by one.
        let two = format!(
            "{};\n{};",
            vec!["1"; 100].join("+"),
            vec!["1"; 100].join("+")
        );
        assert!(check(&two).is_ok());
        // Strings and comments are not code.
        let s = format!("\"{}\" // {}", "(".repeat(100), "+".repeat(1000));
        assert!(check(&s).is_ok());
        let esc = r#""a \" ((((" == "b""#;
        assert!(check(esc).is_ok());
    }

    #[test]
    fn the_diagnostic_points_at_the_excess() {
        let src = format!(
            "@id(\"r\")\npermit(principal, action, resource) when {{ {} }};",
            "!".repeat(300)
        );
        let d = check(&src).err();
        let d = d.as_ref();
        assert_eq!(d.map(|d| d.line), Some(2));
        assert_eq!(d.and_then(|d| d.rule_id.clone()).as_deref(), Some("r"));
    }
}
