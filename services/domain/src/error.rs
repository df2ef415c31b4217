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

/// A client's request id for an idempotent retry: 1 to 128 printable ASCII
/// characters. Request ids are scoped per caller subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Parses the `request_id` field.
    pub fn parse(raw: &str) -> Result<Self, Violations> {
        if (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Violations::one(
                "request_id",
                "a request id of 1 to 128 printable ASCII characters is required",
            ))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Both values, or every violation of either.
pub fn both<A, B>(
    a: Result<A, Violations>,
    b: Result<B, Violations>,
) -> Result<(A, B), Violations> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Violations(mut x)), Err(Violations(y))) => {
            x.extend(y);
            Err(Violations(x))
        }
        (Err(x), Ok(_)) | (Ok(_), Err(x)) => Err(x),
    }
}

/// A tuple of parse results: all the values, or every violation of all of
/// them, so a client learns everything that is wrong with a request at once.
pub trait AllOk {
    /// The tuple of values.
    type Out;
    /// All the values, or every violation.
    fn all_ok(self) -> Result<Self::Out, Violations>;
}

macro_rules! all_ok {
    ($first:ident $fv:ident, $($t:ident $v:ident),+) => {
        impl<$first, $($t),+> AllOk for (Result<$first, Violations>, $(Result<$t, Violations>),+) {
            type Out = ($first, $($t),+);
            fn all_ok(self) -> Result<Self::Out, Violations> {
                let ($fv, $($v),+) = self;
                let acc = $fv;
                $( let acc = both(acc, $v); )+
                #[allow(unused_parens)]
                acc.map(|all_ok!(@pat $fv, $($v),+)| ($fv, $($v),+))
            }
        }
    };
    (@pat $fv:ident, $($v:ident),+) => { all_ok!(@nest ($fv) $($v)+) };
    (@nest ($($acc:tt)+) $next:ident $($rest:ident)*) => { all_ok!(@nest (($($acc)+, $next)) $($rest)*) };
    (@nest ($($acc:tt)+)) => { $($acc)+ };
}

all_ok!(A a, B b);
all_ok!(A a, B b, C c);
all_ok!(A a, B b, C c, D d);
all_ok!(A a, B b, C c, D d, E e);
all_ok!(A a, B b, C c, D d, E e, F f);
all_ok!(A a, B b, C c, D d, E e, F f, G g);
all_ok!(A a, B b, C c, D d, E e, F f, G g, H h);

#[cfg(test)]
mod all_ok_tests {
    use super::*;

    #[test]
    fn every_violation_or_every_value() {
        let ok: Result<i32, Violations> = Ok(1);
        let bad = |f: &str| -> Result<i32, Violations> { Err(Violations::one(f, "bad")) };
        assert_eq!(
            (ok.clone(), Ok::<_, Violations>("x"), ok.clone()).all_ok(),
            Ok((1, "x", 1))
        );
        let Err(Violations(v)) = (bad("a"), ok.clone(), bad("c"), bad("d")).all_ok() else {
            unreachable!()
        };
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["a", "c", "d"]);
    }
}
