//! The one mapping from [`AppError`] to a gRPC status.
//!
//! Bad input is INVALID_ARGUMENT with a `google.rpc.BadRequest` listing
//! every violated field; an unknown city is NOT_FOUND with the field named
//! the same way. Internal failures are logged with their cause and answered
//! with a bare INTERNAL or UNAVAILABLE.

use std::collections::HashMap;

use corridor_domain::Violations;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{AppError, ERROR_DOMAIN};

/// A status with `google.rpc.ErrorInfo` (`reason`, our domain, `metadata`)
/// and, when given, a `google.rpc.BadRequest` of the violated fields.
fn detailed(
    code: Code,
    message: String,
    reason: &str,
    metadata: HashMap<String, String>,
    vs: Option<Violations>,
) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    for v in vs.into_iter().flat_map(|vs| vs.0) {
        details.add_bad_request_violation(v.field, v.description);
    }
    Status::with_error_details(code, message, details)
}

impl From<AppError> for Status {
    fn from(e: AppError) -> Self {
        let reason = e.reason();
        let plain = |code: Code, m: String| detailed(code, m, reason, HashMap::new(), None);
        match e {
            AppError::Invalid(vs) => {
                let summary =
                    vs.0.iter()
                        .map(|v| format!("{}: {}", v.field, v.description))
                        .collect::<Vec<_>>()
                        .join("; ");
                detailed(
                    Code::InvalidArgument,
                    summary,
                    reason,
                    HashMap::new(),
                    Some(vs),
                )
            }
            AppError::Unauthenticated => plain(
                Code::Unauthenticated,
                "a valid bearer token from the corridor identity provider is required".into(),
            ),
            AppError::Denied(d) => plain(Code::PermissionDenied, d.0),
            AppError::NotFound(m) => plain(Code::NotFound, m),
            AppError::UnknownCity { field, code } => {
                let message = format!("no corridor city {code}");
                let metadata = HashMap::from([
                    ("field".to_owned(), field.to_owned()),
                    ("city".to_owned(), code),
                ]);
                detailed(
                    Code::NotFound,
                    message.clone(),
                    reason,
                    metadata,
                    Some(Violations::one(field, message)),
                )
            }
            AppError::AlreadyExists(m) => plain(Code::AlreadyExists, m),
            AppError::FailedPrecondition(_, m) => plain(Code::FailedPrecondition, m),
            AppError::Aborted(m) => plain(Code::Aborted, m),
            AppError::Exhausted(_, m) => plain(Code::ResourceExhausted, m),
            AppError::Db(e) if crate::store::is_unavailable(&e) => {
                tracing::warn!(error = %e, "database unavailable");
                metrics::counter!("corridor_db_unavailable_total").increment(1);
                plain(
                    Code::Unavailable,
                    "the database is unavailable; retry later".into(),
                )
            }
            AppError::Db(e) => {
                tracing::error!(error = %e, "database error");
                plain(Code::Internal, "internal error".into())
            }
            AppError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                plain(Code::Internal, "internal error".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(s: &Status) -> (String, String) {
        let i = s.get_details_error_info().expect("ErrorInfo");
        (i.reason, i.domain)
    }

    #[test]
    fn every_error_carries_a_stable_reason() {
        let cases = [
            (
                AppError::Invalid(Violations::one("x", "bad")),
                "INVALID_FIELDS",
            ),
            (AppError::Unauthenticated, "UNAUTHENTICATED"),
            (AppError::NotFound("no x".into()), "NOT_FOUND"),
            (
                AppError::UnknownCity {
                    field: "city",
                    code: "atlantis".into(),
                },
                "UNKNOWN_CITY",
            ),
            (AppError::AlreadyExists("x".into()), "REQUEST_ID_REUSED"),
            (
                AppError::FailedPrecondition("RECOGNITION_NOT_OPEN", "x".into()),
                "RECOGNITION_NOT_OPEN",
            ),
            (
                AppError::Exhausted("SERVER_BUSY", "x".into()),
                "SERVER_BUSY",
            ),
            (AppError::Aborted("x".into()), "CONCURRENT_CHANGE"),
            (AppError::internal("boom"), "INTERNAL"),
        ];
        for (e, want) in cases {
            let s = Status::from(e);
            assert_eq!(info(&s), (want.to_owned(), ERROR_DOMAIN.to_owned()));
        }
        let s = Status::from(AppError::Invalid(Violations::one("holder_name", "empty")));
        let bad = s.get_details_bad_request().expect("BadRequest kept");
        assert_eq!(bad.field_violations[0].field, "holder_name");
        let s = Status::from(AppError::UnknownCity {
            field: "issuer_city",
            code: "atlantis".into(),
        });
        let i = s.get_details_error_info().expect("ErrorInfo");
        assert_eq!(i.metadata.get("city").map(String::as_str), Some("atlantis"));
        assert_eq!(
            s.get_details_bad_request()
                .expect("BadRequest")
                .field_violations
                .len(),
            1
        );
    }
}
