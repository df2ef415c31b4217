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
    /// Not allowed in the current state: a stable reason (`ErrorInfo`)
    /// and the message.
    #[error("{1}")]
    FailedPrecondition(&'static str, String),
    /// Too many attempts, or too busy; retry later: a stable reason and the
    /// message.
    #[error("{1}")]
    Exhausted(&'static str, String),
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
        Self::FailedPrecondition("ILLEGAL_TRANSITION", e.to_string())
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

    /// The stable, machine-readable reason (`google.rpc.ErrorInfo.reason`,
    /// domain [`ERROR_DOMAIN`]) a client can localise its message by.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "INVALID_FIELDS",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Denied(_) => "PERMISSION_DENIED",
            Self::NotFound(_) => "NOT_FOUND",
            Self::UnknownCity { .. } => "UNKNOWN_CITY",
            Self::AlreadyExists(_) => "REQUEST_ID_REUSED",
            Self::FailedPrecondition(reason, _) | Self::Exhausted(reason, _) => reason,
            Self::Aborted(_) => "CONCURRENT_CHANGE",
            Self::Db(e) if crate::store::is_unavailable(e) => "DATABASE_UNAVAILABLE",
            Self::Db(_) | Self::Internal(_) => "INTERNAL",
        }
    }
}

/// The `google.rpc.ErrorInfo.domain` of the service's errors.
pub const ERROR_DOMAIN: &str = "talent.g60corridor.cn";

/// Result of the use cases.
pub type AppResult<T> = Result<T, AppError>;
