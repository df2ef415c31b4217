//! Errors of the service layer and their one mapping to gRPC status codes.
//!
//! Policy: a client gets a precise code and a message it can act on; bad
//! input gets INVALID_ARGUMENT with a `google.rpc.BadRequest` listing every
//! violated field. Internal failures (database, crypto) are logged with their
//! cause and answered with a bare INTERNAL/UNAVAILABLE, never leaking detail.
//! No request path panics: everything fallible returns an [`ApiError`].

use corridor_domain::Violations;
use corridor_domain::caller::Denied;
use corridor_domain::credential::IllegalTransition;
use sea_orm::DbErr;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// An error answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] Violations),
    /// No or bad credentials.
    #[error("unauthenticated")]
    Unauthenticated,
    /// Authenticated, but not allowed.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Unknown id.
    #[error("{0}")]
    NotFound(String),
    /// A request id reused with another payload.
    #[error("{0}")]
    AlreadyExists(String),
    /// Not allowed in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Too many attempts; retry later.
    #[error("{0}")]
    Exhausted(String),
    /// A concurrent change won; retry.
    #[error("{0}")]
    Aborted(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<IllegalTransition> for ApiError {
    fn from(e: IllegalTransition) -> Self {
        Self::FailedPrecondition(e.to_string())
    }
}

impl ApiError {
    /// An internal error from any displayable cause.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Invalid(Violations(vs)) => {
                let summary = vs
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut details = ErrorDetails::new();
                for v in vs {
                    details.add_bad_request_violation(v.field, v.description);
                }
                Status::with_error_details(Code::InvalidArgument, summary, details)
            }
            ApiError::Unauthenticated => Status::unauthenticated(
                "a valid bearer token from the corridor identity provider is required",
            ),
            ApiError::Denied(d) => Status::permission_denied(d.0),
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::AlreadyExists(m) => Status::already_exists(m),
            ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
            ApiError::Aborted(m) => Status::aborted(m),
            ApiError::Exhausted(m) => Status::resource_exhausted(m),
            ApiError::Db(e) => {
                tracing::error!(error = %e, "database error");
                match e {
                    DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                        Status::unavailable("the database is unavailable; retry later")
                    }
                    _ => Status::internal("internal error"),
                }
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// Result of the service layer.
pub type ApiResult<T> = Result<T, ApiError>;
