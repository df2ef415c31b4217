//! Who gets to use the server's capacity, decided after authentication.
//!
//! A request holds a slot of the server-wide limit only once its caller is
//! known: a slot taken before the body was read and the token checked let
//! 600 slow, tokenless streams hold every slot until their timeout, and
//! normal calls failed meanwhile. Now:
//! - authenticated callers share [`Limits::max_concurrent_requests`]
//!   (`limits.max_concurrent_requests`) slots, at most
//!   `limits.max_concurrent_per_caller` of them per caller subject, so one
//!   misbehaving system cannot take them all;
//! - RPCs that need no token (ListCities, GetIssuerKeys) have a small pool
//!   of their own, so anonymous traffic cannot starve callers;
//! - no slot free: RESOURCE_EXHAUSTED at once (shedding load beats queueing
//!   it until the deadline), with a retry hint in the message.
//!
//! What a request holds before it is admitted (an HTTP/2 stream, its body
//! buffer) is bounded per connection (`max_concurrent_streams`, the message
//! size limit) and in time (the request timeout, the idle timeout).
//!
//! [`Limits::max_concurrent_requests`]: crate::config::Limits

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use corridor_domain::caller::Caller;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::AppError;

/// Slots for RPCs that need no token.
pub const ANONYMOUS_SLOTS: usize = 64;

/// The admission control of one server.
#[derive(Debug)]
pub struct Admission {
    callers: Arc<Semaphore>,
    anonymous: Arc<Semaphore>,
    per_caller: usize,
    by_caller: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A request's slots, released when it is dropped (the request ended).
#[derive(Debug)]
pub struct Ticket {
    _server: OwnedSemaphorePermit,
    _caller: Option<OwnedSemaphorePermit>,
}

fn busy(what: &str) -> AppError {
    AppError::Exhausted("SERVER_BUSY", format!("{what}; retry in a moment"))
}

impl Admission {
    /// `total` slots for authenticated callers, at most `per_caller` each.
    pub fn new(total: usize, per_caller: usize) -> Self {
        Self {
            callers: Arc::new(Semaphore::new(total.max(1))),
            anonymous: Arc::new(Semaphore::new(ANONYMOUS_SLOTS)),
            per_caller: per_caller.max(1),
            by_caller: Mutex::new(HashMap::new()),
        }
    }

    /// Admits an authenticated caller's request, or refuses it at once.
    pub fn admit(&self, caller: &Caller) -> Result<Ticket, AppError> {
        let mine = {
            let mut map = self
                .by_caller
                .lock()
                .map_err(|_| AppError::internal("admission lock poisoned"))?;
            if map.len() > 10_000 {
                // Forget callers with nothing in flight.
                let full = self.per_caller;
                map.retain(|_, s| s.available_permits() < full);
            }
            map.entry(caller.subject.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_caller)))
                .clone()
        };
        let caller_slot = mine
            .try_acquire_owned()
            .map_err(|_| busy("too many requests of this caller in flight"))?;
        let server_slot = self
            .callers
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy("the server is at capacity"))?;
        Ok(Ticket {
            _server: server_slot,
            _caller: Some(caller_slot),
        })
    }

    /// Admits a request that needs no token, or refuses it at once.
    pub fn admit_anonymous(&self) -> Result<Ticket, AppError> {
        let slot = self
            .anonymous
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy("too many unauthenticated requests in flight"))?;
        Ok(Ticket {
            _server: slot,
            _caller: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(s: &str) -> Caller {
        Caller {
            subject: s.into(),
            city: None,
            roles: Vec::new(),
        }
    }

    #[test]
    fn per_caller_and_total_limits() {
        let a = Admission::new(3, 2);
        let t1 = a.admit(&caller("a"));
        let t2 = a.admit(&caller("a"));
        assert!(t1.is_ok() && t2.is_ok());
        assert!(a.admit(&caller("a")).is_err(), "a third of one caller");
        let t3 = a.admit(&caller("b"));
        assert!(t3.is_ok());
        assert!(a.admit(&caller("c")).is_err(), "the server is full");
        drop(t1);
        assert!(a.admit(&caller("c")).is_ok(), "a slot came back");
        let anon: Vec<_> = (0..ANONYMOUS_SLOTS).map(|_| a.admit_anonymous()).collect();
        assert!(anon.iter().all(Result::is_ok));
        assert!(a.admit_anonymous().is_err());
        drop(t2);
        assert!(
            a.admit(&caller("d")).is_ok(),
            "anonymous load does not take callers' slots"
        );
    }
}
