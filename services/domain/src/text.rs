//! Free text a person will read: holder names, titles, reasons.
//!
//! Such text ends up signed into credentials and shown in employers' and
//! bureaus' interfaces, so [`line`] refuses what would let it lie there:
//! - control characters (NUL included, which Postgres cannot store either);
//! - bidirectional controls (U+202A..U+202E, U+2066..U+2069, U+200E,
//!   U+200F, U+061C): a right-to-left override (U+202E) before "txt.exe" makes it
//!   read "exe.txt", not what was signed;
//! - zero-width and invisible characters (U+200B..U+200D, U+2060..U+2064,
//!   U+FEFF, U+180E, U+00AD): two names that look alike would differ.
//!
//! Chinese, Latin and other scripts' letters, digits, punctuation and
//! ordinary spaces pass unchanged (after trimming).

use crate::Violations;

/// Whether `c` may not appear in text a person reads.
pub fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}'
                | '\u{180E}'
                | '\u{00AD}'
        )
}

/// One line of text for `field`: trimmed, 1 to `max_chars` characters,
/// nothing deceptive in it (see the module docs).
pub fn line(field: &str, raw: &str, max_chars: usize) -> Result<String, Violations> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max_chars {
        return Err(Violations::one(
            field,
            format!("must be 1 to {max_chars} characters"),
        ));
    }
    if let Some(c) = t.chars().find(|c| is_deceptive(*c)) {
        return Err(Violations::one(
            field,
            format!(
                "must not contain control, invisible or direction-changing characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_passes_and_deceptive_text_does_not() {
        for ok in [
            "张三",
            "Zhang San",
            "Dr. Anne-Marie O'Neil",
            "高级工程师（副高级）",
            "李 四",
        ] {
            assert_eq!(line("f", &format!("  {ok} "), 100).as_deref(), Ok(ok));
        }
        for bad in [
            "张\u{0}三",
            "abc\u{202E}gpj.exe",
            "张\u{200B}三",
            "a\u{2066}b",
            "\u{FEFF}name",
            "x\ny",
            "x\u{7}",
            "a\u{00AD}b",
        ] {
            let e = line("holder_name", bad, 100)
                .err()
                .unwrap_or_else(|| Violations(Vec::new()));
            assert_eq!(e.0.len(), 1, "{bad:?} accepted");
            assert_eq!(e.0[0].field, "holder_name");
        }
        assert!(line("f", "   ", 10).is_err());
        assert!(line("f", &"字".repeat(11), 10).is_err());
        assert!(line("f", &"字".repeat(10), 10).is_ok());
    }
}
