//! The errors of the use cases (`app/`), in terms of what went wrong, not of
//! any transport. `api::status` maps them to gRPC status codes, once.
//!
//! Policy: a client gets a precise error it can act on; bad input is
//! [`AppError::Invalid`] listing every violated field. Internal failures
//! (database, crypto) carry their cause for the log and reach the client as
//! a bare INTERNAL or UNAVAILABLE, never with detail. No request path
//! panics: everything fallible returns an [`AppError`].

use corridor_domain::Violations;
use corridor_domain::caller::Denied;
use corridor_domain::credential::IllegalTransition;
use sea_orm::DbErr;

/// An error answering a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
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
    /// A well-formed city code of no corridor city, in a request field.
    #[error("no corridor city {code}")]
    UnknownCity {
        /// The request field.
        field: &'static str,
        /// The code asked for.
        code: String,
    },
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

impl From<IllegalTransition> for AppError {
    fn from(e: IllegalTransition) -> Self {
        Self::FailedPrecondition(e.to_string())
    }
}

impl From<corridor_domain::authz::Hidden> for AppError {
    fn from(_: corridor_domain::authz::Hidden) -> Self {
        // Callers replace this with "no <thing> <id>"; see `AppError::hidden`.
        Self::NotFound("not found".into())
    }
}

impl AppError {
    /// An internal error from any displayable cause.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Result of the use cases.
pub type AppResult<T> = Result<T, AppError>;
