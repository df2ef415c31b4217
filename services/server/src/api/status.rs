//! The one mapping from [`AppError`] to a gRPC status.
//!
//! Bad input is INVALID_ARGUMENT with a `google.rpc.BadRequest` listing
//! every violated field; an unknown city is NOT_FOUND with the field named
//! the same way. Internal failures are logged with their cause and answered
//! with a bare INTERNAL or UNAVAILABLE.

use corridor_domain::Violations;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::AppError;

fn with_violations(code: Code, message: String, vs: Violations) -> Status {
    let mut details = ErrorDetails::new();
    for v in vs.0 {
        details.add_bad_request_violation(v.field, v.description);
    }
    Status::with_error_details(code, message, details)
}

impl From<AppError> for Status {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(vs) => {
                let summary =
                    vs.0.iter()
                        .map(|v| format!("{}: {}", v.field, v.description))
                        .collect::<Vec<_>>()
                        .join("; ");
                with_violations(Code::InvalidArgument, summary, vs)
            }
            AppError::Unauthenticated => Status::unauthenticated(
                "a valid bearer token from the corridor identity provider is required",
            ),
            AppError::Denied(d) => Status::permission_denied(d.0),
            AppError::NotFound(m) => Status::not_found(m),
            AppError::UnknownCity { field, code } => {
                let message = format!("no corridor city {code}");
                with_violations(
                    Code::NotFound,
                    message.clone(),
                    Violations::one(field, message),
                )
            }
            AppError::AlreadyExists(m) => Status::already_exists(m),
            AppError::FailedPrecondition(m) => Status::failed_precondition(m),
            AppError::Aborted(m) => Status::aborted(m),
            AppError::Exhausted(m) => Status::resource_exhausted(m),
            AppError::Db(e) if crate::store::is_unavailable(&e) => {
                tracing::warn!(error = %e, "database unavailable");
                metrics::counter!("corridor_db_unavailable_total").increment(1);
                Status::unavailable("the database is unavailable; retry later")
            }
            AppError::Db(e) => {
                tracing::error!(error = %e, "database error");
                Status::internal("internal error")
            }
            AppError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
