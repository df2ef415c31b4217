//! City codes. The cities themselves (names, province) are data in the
//! registry, so a city can join the corridor without a code change; this
//! module only fixes what a code looks like.

use std::fmt;

use crate::Violations;

/// A city code: lowercase ASCII letters and `-`, 2 to 32 characters (`hangzhou`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct CityCode(String);

impl TryFrom<String> for CityCode {
    type Error = Violations;
    fn try_from(s: String) -> Result<Self, Violations> {
        Self::parse("city", &s)
    }
}

impl From<CityCode> for String {
    fn from(c: CityCode) -> String {
        c.0
    }
}

impl CityCode {
    /// Parses a city code for the API field `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, Violations> {
        let ok = (2..=32).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else if raw.is_empty() {
            Err(Violations::one(field, "a city code is required"))
        } else {
            Err(Violations::one(
                field,
                "must be a city code: 2 to 32 lowercase letters or '-'",
            ))
        }
    }

    /// The code as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_codes_and_rejects_the_rest() {
        assert_eq!(
            CityCode::parse("c", "hangzhou").map(|c| c.0),
            Ok("hangzhou".into())
        );
        for bad in [
            "",
            "H",
            "Hangzhou",
            "hang zhou",
            "-a",
            "a-",
            "杭州",
            &"a".repeat(33),
        ] {
            assert!(CityCode::parse("c", bad).is_err(), "{bad:?} accepted");
        }
    }
}
