//! Errors of the domain layer.
//!
//! Parsing collects every problem of a request as [`FieldViolation`]s, so a
//! client learns all that is wrong at once; the transport maps them to
//! `google.rpc.BadRequest`.

use std::fmt;

/// One invalid field of an input: its path (`qualification.level`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Dotted path of the field, as named in the API.
    pub field: String,
    /// What is wrong with it, for a human.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// A non-empty list of field violations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    /// A single violation.
    pub fn one(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self(vec![FieldViolation::new(field, description)])
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect();
        write!(f, "invalid argument: {}", parts.join("; "))
    }
}

/// Collects violations while parsing several fields.
#[derive(Debug, Default)]
pub struct Collector(Vec<FieldViolation>);

impl Collector {
    /// Records a violation.
    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Keeps the value of `r`, or records its violations.
    pub fn take<T>(&mut self, r: Result<T, Violations>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(Violations(vs)) => {
                self.0.extend(vs);
                None
            }
        }
    }

    /// `Ok(())` when nothing was recorded.
    pub fn finish(self) -> Result<(), Violations> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Violations(self.0))
        }
    }
}

/// The operating system could not provide random bytes.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the operating system random number generator failed")]
pub struct RandomError;
