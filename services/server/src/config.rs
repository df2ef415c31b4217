//! Configuration: defaults, then an optional TOML file, then environment
//! variables prefixed `CORRIDOR_` (nested keys joined by `__`, e.g.
//! `CORRIDOR_SECRETS__KEY_ENCRYPTION_KEY`). Secrets are wrapped in
//! `SecretString` so they never print.
//!
//! `--dev` fills in what a first run on a laptop lacks: an SQLite database
//! under `./data`, fixed development secrets, and trust in the development
//! identity key that `corridor token` signs with. Those values are public
//! (they are in this file), so `--dev` must never face real users; without
//! it, the server refuses to start with any secret missing.

use std::net::SocketAddr;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use corridor_domain::caller::{IdentityMinter, IdentityVerifier};
use corridor_domain::holder::HolderHasher;
use corridor_domain::keys::KeyEncryptionKey;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Issuer (`iss`) of development identity tokens.
pub const DEV_IDP_ISSUER: &str = "https://idp.dev.g60-corridor.local";
/// Key id of the development identity key.
pub const DEV_IDP_KID: &str = "dev-idp-1";
/// The audience (`aud`) this service expects by default.
pub const DEFAULT_AUDIENCE: &str = "g60-talent-corridor";
/// Where `--dev` serves JWKS and status lists unless told otherwise.
pub const DEV_HTTP_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50052);
/// Where `--dev` keeps its SQLite database.
pub const DEV_DATABASE_URL: &str = "sqlite://data/corridor-dev.sqlite?mode=rwc";

/// A public, fixed 32-byte value derived from `label`: development secrets only.
fn dev_bytes(label: &str) -> [u8; 32] {
    Sha256::digest(format!("g60-talent-corridor development only: {label}")).into()
}

/// The development identity minter (and its public key).
pub fn dev_identity_minter(audience: &str) -> (IdentityMinter, [u8; 32]) {
    IdentityMinter::from_seed(DEV_IDP_KID, dev_bytes("identity"), DEV_IDP_ISSUER, audience)
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Database URL (`postgres://...` or `sqlite://...`); `--dev` defaults it.
    pub database_url: Option<String>,
    /// Run migrations on start.
    pub migrate_on_start: bool,
    /// Secrets.
    pub secrets: Secrets,
    /// The identity provider.
    pub identity: IdentitySettings,
    /// Server limits.
    pub limits: Limits,
    /// Log lines as `text` (colour only on a terminal) or `json`.
    pub log_format: LogFormat,
    /// Where Prometheus metrics are served over HTTP (`GET /metrics`); off
    /// when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// An OpenTelemetry collector (OTLP over gRPC, e.g.
    /// `http://otel-collector:4317`) to send traces to; off when unset.
    pub otlp_endpoint: Option<String>,
    /// The audit chain and the change stream.
    pub audit: AuditSettings,
    /// TLS for the gRPC listener (and mutual TLS with a client CA); plain
    /// HTTP/2 when unset.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// The plain HTTP/1.1 port: JWKS and status lists (`crate::http`).
    #[serde(default)]
    pub http: HttpSettings,
    /// Recognition attestations.
    #[serde(default)]
    pub attestations: AttestationSettings,
}

/// The plain HTTP/1.1 port for browsers, curl and JOSE libraries: per-city
/// JWKS and W3C Bitstring Status Lists, without a token (`crate::http`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Where to listen (`CORRIDOR_HTTP__LISTEN`); off when unset (`--dev`:
    /// 127.0.0.1:50052 unless a public URL is set).
    pub listen: Option<SocketAddr>,
    /// The URL verifiers reach that port at (`CORRIDOR_HTTP__PUBLIC_URL`,
    /// e.g. `https://status.corridor.example`). Credentials carry status
    /// list URLs under it, so it must stay stable. Default:
    /// `http://<listen>`. With neither set, credentials carry no
    /// `credentialStatus`.
    pub public_url: Option<String>,
    /// How long clients may cache a status list or a JWKS, seconds
    /// (`Cache-Control: max-age`, and the list's `ttl`).
    pub max_age_seconds: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: None,
            public_url: None,
            max_age_seconds: 60,
        }
    }
}

impl HttpSettings {
    /// The base of the URLs credentials carry, if any.
    pub fn base_url(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_owned())
            .or_else(|| self.listen.map(|a| format!("http://{a}")))
    }
}

/// Recognition attestations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AttestationSettings {
    /// How long an attestation is valid, days (`validUntil`); 365 when
    /// unset or 0.
    pub validity_days: u32,
    /// Per city (its code), overriding `validity_days`.
    pub validity_days_by_city: std::collections::BTreeMap<String, u32>,
}

/// Default validity of an attestation, days.
pub const DEFAULT_ATTESTATION_VALIDITY_DAYS: u32 = 365;
/// Longest validity of an attestation, days (a hundred years).
pub const MAX_ATTESTATION_VALIDITY_DAYS: u32 = 36_500;

impl AttestationSettings {
    /// The validity of attestations `city` signs.
    pub fn validity(&self, city: &str) -> chrono::Duration {
        let days = self
            .validity_days_by_city
            .get(city)
            .copied()
            .filter(|d| *d > 0)
            .or(Some(self.validity_days).filter(|d| *d > 0))
            .unwrap_or(DEFAULT_ATTESTATION_VALIDITY_DAYS);
        chrono::Duration::days(i64::from(days))
    }
}

/// TLS for the gRPC listener (`crate::tls`). The files are PEM; they are
/// re-read when they change, without a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsSettings {
    /// The server's certificate chain (`CORRIDOR_TLS__CERT_FILE`).
    pub cert_file: std::path::PathBuf,
    /// Its private key, PKCS#8, PKCS#1 or SEC1 (`CORRIDOR_TLS__KEY_FILE`).
    pub key_file: std::path::PathBuf,
    /// With this CA (`CORRIDOR_TLS__CLIENT_CA_FILE`), mutual TLS: a client
    /// certificate, if presented, must chain to it, and a token that names
    /// a city is accepted only over a connection whose client certificate
    /// names the same city (SAN URI `urn:g60:city:<code>`).
    #[serde(default)]
    pub client_ca_file: Option<std::path::PathBuf>,
    /// How often the files are checked for a change, milliseconds.
    #[serde(default = "default_tls_reload_ms")]
    pub reload_interval_ms: u64,
}

fn default_tls_reload_ms() -> u64 {
    2000
}

/// The audit chain and the change stream (`docs/DESIGN.md`, Audit).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct AuditSettings {
    /// A checkpoint is signed at least every this many positions.
    pub checkpoint_every: i64,
    /// ... and at least this often while events arrive, seconds.
    pub checkpoint_interval_seconds: u64,
    /// Events older than this are pruned (their chain hashes are kept, so
    /// the rest still verifies), days; 0 keeps everything.
    pub retention_days: u32,
    /// How often the sequencer looks for settled events, milliseconds.
    pub sequencer_poll_ms: u64,
    /// WatchEvents sends a keep-alive after this long without an event,
    /// seconds.
    pub keepalive_seconds: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            checkpoint_every: 1000,
            checkpoint_interval_seconds: 60,
            retention_days: 365,
            sequencer_poll_ms: 20,
            keepalive_seconds: 15,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line per event, coloured on a terminal only.
    #[default]
    Text,
    /// For log pipelines: one JSON object per line.
    Json,
}

/// Everything secret or derived from configuration that the server needs,
/// checked before anything touches the database.
#[derive(Debug)]
pub struct Checked {
    /// The database URL.
    pub database_url: String,
    /// The key-encryption key.
    pub kek: KeyEncryptionKey,
    /// The national-ID hasher.
    pub hasher: HolderHasher,
    /// The identity-token verifier.
    pub identity: IdentityVerifier,
    /// The secret page tokens are signed under.
    pub page_token_secret: Vec<u8>,
}

/// Secret keys, base64 (standard alphabet).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Secrets {
    /// 32 bytes: seals issuer private keys at rest.
    #[serde(serialize_with = "ser_secret")]
    pub key_encryption_key: Option<SecretString>,
    /// At least 32 bytes: keys the national ID hash.
    #[serde(serialize_with = "ser_secret")]
    pub holder_hash_key: Option<SecretString>,
}

fn ser_secret<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    // Only used to feed defaults into figment: secrets are never in defaults.
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// A trusted identity-provider signing key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdpKey {
    /// Key id, as in the token header.
    pub kid: String,
    /// Ed25519 public key, base64url (JWK `x`).
    pub x: String,
}

/// The identity provider whose tokens are accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentitySettings {
    /// Expected `iss`.
    pub issuer: Option<String>,
    /// Expected `aud`.
    pub audience: String,
    /// Trusted keys.
    pub keys: Vec<IdpKey>,
}

/// Server limits.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    /// Largest request message, bytes.
    pub max_message_bytes: usize,
    /// Per-request deadline, milliseconds.
    pub request_timeout_ms: u64,
    /// Requests of authenticated callers served at once, across connections.
    pub max_concurrent_requests: usize,
    /// Of those, at most this many for one caller subject.
    pub max_concurrent_per_caller: usize,
    /// Connections open at once (0: the descriptor limit minus 128).
    pub max_connections: usize,
    /// A connection without traffic for this long is closed, milliseconds.
    pub idle_timeout_ms: u64,
    /// After a shutdown signal, how long in-flight requests may finish
    /// before the remaining connections are closed, milliseconds.
    pub shutdown_grace_ms: u64,
    /// Streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Credentials kept in memory for verification (about 1.5 KiB each).
    pub status_cache_entries: usize,
    /// Longest wait for a database connection, milliseconds (then UNAVAILABLE).
    pub db_acquire_timeout_ms: u64,
    /// How long startup keeps trying to reach the database, seconds.
    pub db_startup_wait_seconds: u64,
    /// Change streams (WatchEvents) open at once.
    pub max_watchers: usize,
    /// Of those, at most this many for one caller subject.
    pub max_watchers_per_caller: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            request_timeout_ms: 10_000,
            max_concurrent_requests: 512,
            max_concurrent_per_caller: 128,
            max_connections: 0,
            idle_timeout_ms: 120_000,
            shutdown_grace_ms: 10_000,
            max_concurrent_streams: 128,
            status_cache_entries: 20_000,
            db_acquire_timeout_ms: 2_000,
            db_startup_wait_seconds: 60,
            max_watchers: 256,
            max_watchers_per_caller: 8,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_url: None,
            migrate_on_start: true,
            secrets: Secrets::default(),
            identity: IdentitySettings {
                issuer: None,
                audience: DEFAULT_AUDIENCE.to_owned(),
                keys: Vec::new(),
            },
            limits: Limits::default(),
            log_format: LogFormat::Text,
            metrics_listen: None,
            otlp_endpoint: None,
            audit: AuditSettings::default(),
            tls: None,
            http: HttpSettings::default(),
            attestations: AttestationSettings::default(),
        }
    }
}

/// Configuration problems; the server does not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or merging failed.
    #[error("configuration: {0}")]
    Load(String),
    /// A required value is missing.
    #[error("configuration: {0} is required (or run with --dev)")]
    Missing(&'static str),
    /// A value is malformed.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads defaults, then `file` (if given: it must exist), then
    /// `CORRIDOR_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(f) = file {
            if !f.is_file() {
                return Err(ConfigError::Load(format!(
                    "the configuration file {} does not exist (or is not a file)",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file(f));
        }
        // `identity.keys` from the environment may be JSON (what Kubernetes
        // manifests write) as well as TOML's inline form, which figment
        // parses itself.
        let json_keys = std::env::var("CORRIDOR_IDENTITY__KEYS")
            .ok()
            .filter(|v| v.trim_start().starts_with('['))
            .and_then(|v| serde_json::from_str::<Vec<IdpKey>>(&v).ok());
        let skip_keys = json_keys.is_some();
        fig = fig.merge(
            Env::prefixed("CORRIDOR_")
                .split("__")
                .filter(move |k| !(skip_keys && k.as_str().eq_ignore_ascii_case("identity.keys"))),
        );
        if let Some(keys) = json_keys {
            fig = fig.merge(Serialized::default("identity.keys", keys));
        }
        fig.extract().map_err(|e| ConfigError::Load(e.to_string()))
    }

    /// Checks every setting the server needs and derives its keys, before
    /// anything touches the database: a replica with a short key or a
    /// missing secret must not migrate or seed a shared database first.
    pub fn check(&self) -> Result<Checked, ConfigError> {
        self.check_ranges()?;
        Ok(Checked {
            database_url: self.database_url()?.to_owned(),
            kek: self.kek()?,
            hasher: self.holder_hasher()?,
            identity: self.identity_verifier()?,
            page_token_secret: self.page_token_secret()?,
        })
    }

    /// Numbers whose range the code relies on.
    fn check_ranges(&self) -> Result<(), ConfigError> {
        let days = std::iter::once((
            "attestations.validity_days",
            self.attestations.validity_days,
        ))
        .chain(
            self.attestations
                .validity_days_by_city
                .values()
                .map(|d| ("attestations.validity_days_by_city", *d)),
        );
        for (key, d) in days {
            if d > MAX_ATTESTATION_VALIDITY_DAYS {
                return Err(ConfigError::Invalid(format!(
                    "{key} must be at most {MAX_ATTESTATION_VALIDITY_DAYS} days, not {d}"
                )));
            }
        }
        // The idle timer counts traffic, not calls: a call waiting longer
        // than the idle timeout (up to the request timeout) would have its
        // connection, and every other call on it, closed under it.
        if self.limits.idle_timeout_ms <= self.limits.request_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "limits.idle_timeout_ms ({}) must be longer than limits.request_timeout_ms ({}): a call still waiting would lose its connection",
                self.limits.idle_timeout_ms, self.limits.request_timeout_ms
            )));
        }
        if !(1..=86_400).contains(&self.http.max_age_seconds) {
            return Err(ConfigError::Invalid(format!(
                "http.max_age_seconds must be 1 to 86400, not {}",
                self.http.max_age_seconds
            )));
        }
        Ok(())
    }

    /// Fills in development values for whatever is not configured.
    pub fn with_dev_defaults(mut self) -> Self {
        if self.database_url.is_none() {
            self.database_url = Some(DEV_DATABASE_URL.to_owned());
        }
        if self.secrets.key_encryption_key.is_none() {
            self.secrets.key_encryption_key =
                Some(STANDARD.encode(dev_bytes("key-encryption-key")).into());
        }
        if self.secrets.holder_hash_key.is_none() {
            self.secrets.holder_hash_key =
                Some(STANDARD.encode(dev_bytes("holder-hash-key")).into());
        }
        if self.identity.issuer.is_none() {
            self.identity.issuer = Some(DEV_IDP_ISSUER.to_owned());
        }
        if self.http.listen.is_none() && self.http.public_url.is_none() {
            self.http.listen = Some(DEV_HTTP_LISTEN);
        }
        if !self.identity.keys.iter().any(|k| k.kid == DEV_IDP_KID) {
            let (_, pk) = dev_identity_minter(&self.identity.audience);
            self.identity.keys.push(IdpKey {
                kid: DEV_IDP_KID.to_owned(),
                x: URL_SAFE_NO_PAD.encode(pk),
            });
        }
        self
    }

    /// The database URL.
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database_url
            .as_deref()
            .ok_or(ConfigError::Missing("database_url (CORRIDOR_DATABASE_URL)"))
    }

    /// The key-encryption key.
    pub fn kek(&self) -> Result<KeyEncryptionKey, ConfigError> {
        let raw = secret_bytes(
            self.secrets.key_encryption_key.as_ref(),
            "secrets.key_encryption_key (CORRIDOR_SECRETS__KEY_ENCRYPTION_KEY)",
        )?;
        KeyEncryptionKey::new(&raw).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The holder hasher.
    pub fn holder_hasher(&self) -> Result<HolderHasher, ConfigError> {
        let raw = secret_bytes(
            self.secrets.holder_hash_key.as_ref(),
            "secrets.holder_hash_key (CORRIDOR_SECRETS__HOLDER_HASH_KEY)",
        )?;
        HolderHasher::new(&raw).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The secret page tokens are signed under (a key is derived from the
    /// holder hash key, under a label of its own).
    pub fn page_token_secret(&self) -> Result<Vec<u8>, ConfigError> {
        secret_bytes(
            self.secrets.holder_hash_key.as_ref(),
            "secrets.holder_hash_key (CORRIDOR_SECRETS__HOLDER_HASH_KEY)",
        )
    }

    /// The identity-token verifier.
    pub fn identity_verifier(&self) -> Result<IdentityVerifier, ConfigError> {
        let issuer = self.identity.issuer.as_deref().ok_or(ConfigError::Missing(
            "identity.issuer (CORRIDOR_IDENTITY__ISSUER)",
        ))?;
        if self.identity.keys.is_empty() {
            return Err(ConfigError::Missing("identity.keys"));
        }
        let mut keys = Vec::with_capacity(self.identity.keys.len());
        for k in &self.identity.keys {
            let pk: [u8; 32] = URL_SAFE_NO_PAD
                .decode(k.x.trim_end_matches('='))
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "identity key {} must be 32 bytes of base64url",
                        k.kid
                    ))
                })?;
            keys.push((k.kid.clone(), pk));
        }
        Ok(IdentityVerifier::new(issuer, &self.identity.audience, keys))
    }
}

fn secret_bytes(s: Option<&SecretString>, name: &'static str) -> Result<Vec<u8>, ConfigError> {
    let s = s.ok_or(ConfigError::Missing(name))?;
    STANDARD
        .decode(s.expose_secret().trim())
        .map_err(|_| ConfigError::Invalid(format!("{name} must be base64")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_settings_need_every_secret() {
        let s = Settings::default();
        assert!(s.kek().is_err());
        assert!(s.holder_hasher().is_err());
        assert!(s.identity_verifier().is_err());
        assert!(s.database_url().is_err());
        let d = Settings::default().with_dev_defaults();
        assert!(d.kek().is_ok() && d.holder_hasher().is_ok() && d.identity_verifier().is_ok());
    }

    #[test]
    fn out_of_range_numbers_are_refused_at_startup() {
        let ok = Settings::default().with_dev_defaults();
        assert!(ok.check().is_ok());
        assert_eq!(
            ok.attestations.validity("hangzhou"),
            chrono::Duration::days(365)
        );
        let mut s = ok.clone();
        s.attestations
            .validity_days_by_city
            .insert("hangzhou".into(), 100_000_000);
        let e = s.check().expect_err("a validity chrono cannot add");
        assert!(
            e.to_string().contains("attestations.validity_days_by_city"),
            "{e}"
        );
        let mut s = ok.clone();
        s.http.max_age_seconds = 0;
        assert!(s.check().is_err());
        let mut s = ok.clone();
        s.limits.idle_timeout_ms = s.limits.request_timeout_ms;
        let e = s.check().expect_err("idle no longer than a call may wait");
        assert!(e.to_string().contains("limits.idle_timeout_ms"), "{e}");
        let mut s = ok;
        s.attestations.validity_days = 30;
        s.attestations
            .validity_days_by_city
            .insert("suzhou".into(), 7);
        assert_eq!(
            s.attestations.validity("hangzhou"),
            chrono::Duration::days(30)
        );
        assert_eq!(s.attestations.validity("suzhou"), chrono::Duration::days(7));
    }

    #[test]
    fn a_missing_configuration_file_is_named() {
        let e = Settings::load(Some(Path::new("/nonexistent/corridor.toml")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("/nonexistent/corridor.toml"), "{e}");
    }

    /// `identity.keys` from the environment, as JSON and as TOML.
    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own signature
    fn identity_keys_from_the_environment_in_either_form() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "CORRIDOR_IDENTITY__KEYS",
                r#"[{"kid":"idp-1","x":"AAAA"},{"kid":"idp-2","x":"BBBB"}]"#,
            );
            jail.set_env("CORRIDOR_LOG_FORMAT", "json");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.identity.keys.len(), 2);
            assert_eq!(s.identity.keys[1].kid, "idp-2");
            assert_eq!(s.log_format, LogFormat::Json);
            jail.set_env("CORRIDOR_IDENTITY__KEYS", r#"[{kid="idp-3", x="CCCC"}]"#);
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.identity.keys[0].kid, "idp-3");
            Ok(())
        });
    }

    #[test]
    fn secrets_do_not_print() {
        let d = Settings::default().with_dev_defaults();
        let shown = format!("{d:?}");
        let Some(kek) = &d.secrets.key_encryption_key else {
            unreachable!()
        };
        assert!(!shown.contains(kek.expose_secret()));
    }
}
