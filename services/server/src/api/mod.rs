//! The gRPC handlers, one module per service of the proto. A handler only
//! translates: it authenticates the caller (and checks the roles that may
//! call the RPC at all, from `corridor_domain::authz::ROLE_TABLE`), parses
//! the request into a use case's command, collecting every field violation,
//! calls the use case (`crate::app`) and converts its answer. Errors map to
//! gRPC status codes in [`status`], once.

pub mod audit;
pub mod city_registry;
pub mod convert;
pub mod credentials;
pub mod policy;
pub mod recognition;
pub mod status;
pub mod verification;

use corridor_domain::authz::{self, Rpc};
use corridor_domain::caller::{Caller, Denied};

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::transport::PeerInfo;

/// An authenticated caller and the slots its request holds until it ends.
#[derive(Debug)]
pub struct Admitted {
    /// Who is calling.
    pub caller: Caller,
    _ticket: crate::admission::Ticket,
}

impl std::ops::Deref for Admitted {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

/// Authenticates the caller from `authorization: Bearer <JWT>`, checks
/// that one of its roles may call `rpc` at all, and admits the request
/// (`crate::admission`): only then does it hold a slot of the server.
pub fn authenticate<T>(state: &AppState, req: &tonic::Request<T>, rpc: Rpc) -> AppResult<Admitted> {
    let caller = caller_of(state, req, rpc)?;
    let ticket = state.admission.admit(&caller)?;
    Ok(Admitted {
        caller,
        _ticket: ticket,
    })
}

/// Authenticates the caller of a stream that outlives its call, from the
/// token itself (not the cache: the stream needs the token's expiry, and
/// ends there). Returns the caller and the expiry (Unix seconds).
pub fn authenticate_stream<T>(
    state: &AppState,
    req: &tonic::Request<T>,
    rpc: Rpc,
) -> AppResult<(Caller, i64)> {
    let token = bearer(req)?;
    let (caller, exp) = state.identity.verify_until(token).map_err(|e| {
        tracing::info!(reason = %e, "identity token refused");
        AppError::Unauthenticated
    })?;
    authz::may_call(&caller, rpc)?;
    bound_to_connection(req, &caller)?;
    Ok((caller, exp))
}

fn bearer<T>(req: &tonic::Request<T>) -> AppResult<&str> {
    let header = req
        .metadata()
        .get("authorization")
        .ok_or(AppError::Unauthenticated)?
        .to_str()
        .map_err(|_| AppError::Unauthenticated)?;
    Ok(header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(AppError::Unauthenticated)?
        .trim())
}

/// Admits a request of an RPC that needs no token.
pub fn admit_anonymous(state: &AppState) -> AppResult<crate::admission::Ticket> {
    state.admission.admit_anonymous()
}

fn caller_of<T>(state: &AppState, req: &tonic::Request<T>, rpc: Rpc) -> AppResult<Caller> {
    let token = bearer(req)?;
    let cached = state.callers.get(token);
    crate::metrics::cache_lookup("caller_token", cached.is_some());
    let caller = match cached {
        Some(caller) => caller,
        None => {
            let (caller, exp) = state.identity.verify_until(token).map_err(|e| {
                // The reason is for operators; the client learns only that it failed.
                tracing::info!(reason = %e, "identity token refused");
                AppError::Unauthenticated
            })?;
            state.callers.put(token, caller.clone(), exp);
            caller
        }
    };
    authz::may_call(&caller, rpc)?;
    bound_to_connection(req, &caller)?;
    Ok(caller)
}

/// Under mutual TLS, a token that names a city is accepted only over a
/// connection whose client certificate names the same city (`crate::tls`):
/// a stolen city token is of no use without the city's certificate.
/// Fails closed: a request that carries no connection information (served
/// by a transport other than `crate::transport`) is refused for a city
/// token, as the binding cannot be checked.
fn bound_to_connection<T>(req: &tonic::Request<T>, caller: &Caller) -> AppResult<()> {
    let Some(city) = caller.city.as_ref() else {
        return Ok(());
    };
    let Some(peer) = req.extensions().get::<PeerInfo>() else {
        tracing::error!(
            "a request without connection information: the server's transport is not crate::transport"
        );
        return Err(Denied(format!(
            "a token of {city} over a connection this server cannot identify"
        ))
        .into());
    };
    if !peer.mutual_tls {
        return Ok(());
    }
    match peer.client_city.as_deref() {
        Some(c) if c == city.as_str() => Ok(()),
        Some(c) => Err(Denied(format!(
            "a token of {city} over a connection whose client certificate is {c}'s"
        ))
        .into()),
        None => Err(Denied(format!(
            "a token of {city} needs a client certificate of {city} (mutual TLS)"
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corridor_domain::city::CityCode;

    fn caller(city: Option<&str>) -> Caller {
        Caller {
            subject: "s".into(),
            city: city.and_then(|c| CityCode::parse("city", c).ok()),
            roles: Vec::new(),
        }
    }

    fn over(peer: Option<PeerInfo>) -> tonic::Request<()> {
        let mut req = tonic::Request::new(());
        if let Some(p) = peer {
            req.extensions_mut().insert(p);
        }
        req
    }

    #[test]
    fn a_city_token_without_connection_information_is_refused() {
        assert!(bound_to_connection(&over(None), &caller(Some("hangzhou"))).is_err());
        assert!(bound_to_connection(&over(None), &caller(None)).is_ok());
    }

    #[test]
    fn under_mutual_tls_the_certificate_must_name_the_tokens_city() {
        let peer = |client_city: Option<&str>| PeerInfo {
            mutual_tls: true,
            client_city: client_city.map(str::to_owned),
            ..PeerInfo::default()
        };
        let hz = caller(Some("hangzhou"));
        assert!(bound_to_connection(&over(Some(peer(Some("hangzhou")))), &hz).is_ok());
        assert!(bound_to_connection(&over(Some(peer(Some("suzhou")))), &hz).is_err());
        assert!(bound_to_connection(&over(Some(peer(None))), &hz).is_err());
        assert!(bound_to_connection(&over(Some(PeerInfo::default())), &hz).is_ok());
    }
}
