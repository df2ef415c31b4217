//! TLS for the gRPC listener, with rustls (ring, the backend the Postgres
//! driver already uses): the server certificate, and with a client CA,
//! mutual TLS whose client certificates name a city.
//!
//! The files are re-read when their contents change (a Kubernetes Secret
//! update, a certificate renewal), checked every `reload_interval_ms`: new
//! connections get the new configuration, open ones keep theirs. A change
//! that does not load (a key that does not match its certificate, a file
//! half-written) is logged and the previous configuration stays in use.
//!
//! With mutual TLS a client certificate is optional at the handshake (an
//! employer or an auditor need none), but when presented it must chain to
//! the client CA. The city binding is checked per request, after the token
//! (`crate::api::caller_of`): a token that names a city is accepted only
//! over a connection whose client certificate names that city, as the SAN
//! URI `urn:g60:city:<code>` (the issuer URI of the city's credentials).

use std::path::Path;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

/// The URI prefix of a city in a client certificate's SAN.
pub const CITY_URI_PREFIX: &str = "urn:g60:city:";

/// The listener's TLS configuration, reloaded when its files change.
#[derive(Debug)]
pub struct Tls {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    /// SHA-256 of the files' contents the current configuration came from
    /// (or of the last change that failed to load, so it is logged once).
    seen: RwLock<[u8; 32]>,
}

impl Tls {
    /// Loads the configuration; an error names the file and the cause.
    pub fn load(settings: &TlsSettings) -> anyhow::Result<Arc<Self>> {
        let files = Files::read(settings)?;
        let config = build(settings, &files)?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            current: RwLock::new(Arc::new(config)),
            seen: RwLock::new(files.digest()),
        }))
    }

    /// Whether client certificates are checked and bound to cities.
    pub fn mutual(&self) -> bool {
        self.settings.client_ca_file.is_some()
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    /// Reloads if the files changed. Returns whether a new configuration
    /// is now in use.
    pub fn reload_if_changed(&self) -> bool {
        // One read per check: the digest and the configuration come from
        // the same bytes.
        let Ok(files) = Files::read(&self.settings) else {
            // A file missing for a moment (a symlink swap): try again later.
            return false;
        };
        let digest = files.digest();
        let unchanged = self.seen.read().map(|s| *s == digest).unwrap_or(false);
        if unchanged {
            return false;
        }
        if let Ok(mut seen) = self.seen.write() {
            *seen = digest;
        }
        match build(&self.settings, &files) {
            Ok(config) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(config);
                }
                tracing::info!(cert_file = %self.settings.cert_file.display(), "TLS configuration reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "the changed TLS files do not load; keeping the previous configuration"
                );
                false
            }
        }
    }

    /// Checks the files every `reload_interval_ms` for as long as `self`
    /// is in use.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = Duration::from_millis(self.settings.reload_interval_ms.max(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(tls) = weak.upgrade() else { return };
                // File reads: off the async workers.
                let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
            }
        })
    }
}

/// The city a client certificate names: its one SAN URI
/// `urn:g60:city:<code>`. None when it names none, or more than one.
pub fn city_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    let mut cities = san.value.general_names.iter().filter_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => u.strip_prefix(CITY_URI_PREFIX),
        _ => None,
    });
    let city = cities.next()?;
    if cities.next().is_some() {
        return None;
    }
    Some(city.to_owned())
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("tls.{what} {}", path.display()))
}

/// The contents of the configured files, read once.
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Files {
    fn read(s: &TlsSettings) -> anyhow::Result<Self> {
        Ok(Self {
            cert: read(&s.cert_file, "cert_file")?,
            key: read(&s.key_file, "key_file")?,
            client_ca: match &s.client_ca_file {
                Some(p) => Some(read(p, "client_ca_file")?),
                None => None,
            },
        })
    }

    /// SHA-256 over the contents, each prefixed by its length.
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for bytes in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
        {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
        h.finalize().into()
    }
}

/// The server configuration the files make (`s` names them in errors).
fn build(s: &TlsSettings, files: &Files) -> anyhow::Result<ServerConfig> {
    let (cert_pem, key_pem, ca_pem) = (&files.cert, &files.key, &files.client_ca);
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "tls.cert_file {}: not PEM certificates",
                s.cert_file.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "tls.cert_file {}: no certificate in it",
            s.cert_file.display()
        );
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .with_context(|| format!("tls.key_file {}: no PEM private key", s.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match (&s.client_ca_file, ca_pem) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(pem) {
                let ca = ca.with_context(|| {
                    format!(
                        "tls.client_ca_file {}: not PEM certificates",
                        path.display()
                    )
                })?;
                roots.add(ca).with_context(|| {
                    format!(
                        "tls.client_ca_file {}: not a usable CA certificate",
                        path.display()
                    )
                })?;
            }
            if roots.is_empty() {
                anyhow::bail!(
                    "tls.client_ca_file {}: no certificate in it",
                    path.display()
                );
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .with_context(|| format!("tls.client_ca_file {}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "tls.key_file {} does not match tls.cert_file {}",
            s.key_file.display(),
            s.cert_file.display()
        )
    })?;
    // gRPC is HTTP/2: clients that negotiate ALPN must get h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
