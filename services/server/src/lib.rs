//! The Talent Corridor server.
//!
//! Owns everything between the wire and the database, in layers that only
//! call downwards:
//! - [`admission`]: slots of the server's capacity, taken after authentication;
//! - [`api`]: the gRPC handlers, one module per service in the proto; they
//!   parse requests into commands, call a use case, convert the answer;
//! - [`app`]: the use cases, one module per capability; they authorize, own
//!   the transaction and the idempotency claim, call the domain and the
//!   store, append audit events, and return domain results;
//! - [`store`]: the database connection and repository functions, one module
//!   per table, returning typed records;
//! - [`clock`]: the time the use cases see (tests move it);
//! - [`metrics`]: Prometheus metrics and the RPC layer that counts and times calls;
//! - [`telemetry`]: logs (text or JSON) and OpenTelemetry traces;
//! - [`paging`]: page sizes and signed page tokens of the List use cases;
//! - [`keyring`]: the in-memory cache of city issuer keys;
//! - [`policy_book`]: compiled recognition policies and the policy in force;
//! - [`caller_cache`]: bearer tokens already validated, until they expire;
//! - [`config`]: layered configuration and the `--dev` defaults;
//! - [`state`]: what every use case shares;
//! - [`status_cache`]: registered credentials in memory, coherent across replicas;
//! - [`server`]: assembling services, health, reflection and limits;
//! - [`transport`]: accepted connections (limits, idle timeout, TLS, the
//!   peer's certificate city), and the codes of requests no handler saw;
//! - [`tls`]: the listener's TLS configuration, reloaded when its files change;
//! - [`http`]: the plain HTTP/1.1 port: per-city JWKS and W3C status lists;
//! - [`status_lists`]: status-list entries handed out, and the signed lists built;
//! - [`sequencer`]: the audit chain's order, hashes and signed checkpoints;
//! - [`audit_offline`]: exporting and verifying the audit chain without a server;
//! - [`import`]: `corridor import`, a client of BatchIssueCredentials;
//! - [`client`]: the operator CLI's commands, clients of the public gRPC API;
//! - [`sample`]: sample credentials for `--dev`;
//! - [`throttle`]: the limit on failed holder checks;
//! - [`error`]: the use cases' errors;
//! - [`cli`]: the `corridor` command line (`serve`, `migrate`, `token`,
//!   `policy check`, `audit export|verify`, `import`, and the client
//!   commands `credential`, `recognition`, `policy`, `keys`, `events`).
//!
//! Domain rules (the credential and recognition lifecycles, verification,
//! the role table) live in `corridor-domain`, recognition policy in
//! `corridor-policy`; this crate wires them to the network and the database.

pub mod admission;
pub mod api;
pub mod app;
pub mod audit_offline;
pub mod caller_cache;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod import;
pub mod keyring;
pub mod metrics;
pub mod paging;
pub mod policy_book;
pub mod sample;
pub mod sequencer;
pub mod server;
pub mod state;
pub mod status_cache;
pub mod status_lists;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod tls;
pub mod transport;
