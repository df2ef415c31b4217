//! Integration tests of the gRPC API against Postgres. One binary; each
//! module covers one concern. Every test starts its own server on its own
//! database (see the `corridor-tests` kit).

mod audit;
mod auth;
mod batch;
mod cities;
mod cli;
mod consistency;
mod credentials;
mod hardening;
mod idempotency;
mod offline;
mod outages;
mod ports;
mod privacy;
mod recognition;
mod startup;
mod support;
mod tls;
mod verification;
