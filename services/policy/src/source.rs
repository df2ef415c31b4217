//! Positions in a policy's text, and diagnostics that point at them.

/// A problem with a policy, pointing at where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
    /// The rule (`@id`) it concerns, when known.
    pub rule_id: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if let Some(r) = &self.rule_id {
            write!(f, "[{r}] ")?;
        }
        f.write_str(&self.message)
    }
}

/// The 1-based line and column (in characters) of byte `offset`.
pub(crate) fn line_col(src: &str, offset: usize) -> (u32, u32) {
    let mut o = offset.min(src.len());
    while !src.is_char_boundary(o) {
        o -= 1;
    }
    let before = &src[..o];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// The `@id` of the rule whose text contains `offset` (the last `@id` before it).
pub(crate) fn rule_at(src: &str, offset: usize) -> Option<String> {
    let head = src.get(..offset.min(src.len()))?;
    let start = head.rfind("@id(\"")? + 5;
    let rest = &src[start..];
    rest.find('"').map(|end| rest[..end].to_owned())
}

/// A diagnostic from one of Cedar's errors. `internal_ids` maps Cedar's
/// own policy ids (`policy0`, ...) to the rules' `@id`s, so that a message
/// never names an id the policy office did not write.
pub(crate) fn from_miette(
    src: &str,
    e: &dyn miette::Diagnostic,
    rule: Option<String>,
    fallback_line: u32,
    internal_ids: &[(String, String)],
) -> Diagnostic {
    let offset = e.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    let (line, column) = match offset {
        Some(o) => line_col(src, o),
        None => (fallback_line, 1),
    };
    let mut message = e.to_string();
    if let Some(h) = e.help() {
        message.push_str(&format!(" (help: {h})"));
    }
    for (internal, id) in internal_ids {
        message = message.replace(&format!("`{internal}`"), &format!("`{id}`"));
    }
    Diagnostic {
        line,
        column,
        rule_id: rule.or_else(|| offset.and_then(|o| rule_at(src, o))),
        message,
    }
}
