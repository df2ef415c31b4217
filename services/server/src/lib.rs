//! The Talent Corridor server.
//!
//! Owns everything between the wire and the database:
//! - [`api`]: the gRPC handlers, one module per service in the proto;
//! - [`store`]: the database connection and repository functions, one module per table;
//! - [`keyring`]: the in-memory cache of city issuer keys;
//! - [`policy_book`]: compiled recognition policies and the policy in force;
//! - [`caller_cache`]: bearer tokens already validated, until they expire;
//! - [`config`]: layered configuration and the `--dev` defaults;
//! - [`state`]: what every handler shares;
//! - [`server`]: assembling services, health, reflection and limits;
//! - [`sample`]: sample credentials for `--dev`;
//! - [`throttle`]: the limit on failed holder checks;
//! - [`cli`]: the `corridor` command line (`serve`, `migrate`, `token`).
//!
//! Domain rules live in `corridor-domain`; this crate only wires them up.

pub mod api;
pub mod caller_cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod keyring;
pub mod policy_book;
pub mod sample;
pub mod server;
pub mod state;
pub mod store;
pub mod throttle;
