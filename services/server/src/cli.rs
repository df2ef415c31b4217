//! The `corridor` command line.

use std::path::PathBuf;

use chrono::Utc;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::client;
use crate::config::{Settings, dev_identity_minter};
use crate::state::AppState;
use crate::{server, store};

/// Exit codes of the client commands, shown under `corridor --help`.
const EXIT_CODES: &str = "\
Client commands (credential, recognition, policy but check, keys, events) talk
to a running server through the public gRPC API and exit with:
  0  success (and `credential verify`: the credential is valid)
  1  a failure that is not the caller's (server unreachable, UNAVAILABLE,
     INTERNAL, DEADLINE_EXCEEDED, a file missing, ...)
  2  usage error (the command line does not parse)
  3  the server refused the request as invalid (INVALID_ARGUMENT,
     FAILED_PRECONDITION, OUT_OF_RANGE, ALREADY_EXISTS, ABORTED; and
     `policy validate` when the draft has diagnostics)
  4  NOT_FOUND
  5  UNAUTHENTICATED or PERMISSION_DENIED
  6  `credential verify` answered that the credential is not valid
Errors (code, message, field violations) go to stderr. `import` exits 0 when
every row was issued, 2 when some were rejected, 1 on failure.";

/// Talent Corridor: the G60 credential service.
#[derive(Debug, Parser)]
#[command(name = "corridor", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file (TOML); `CORRIDOR_*` environment variables override it.
    #[arg(long, global = true, env = "CORRIDOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Development mode: SQLite under ./data, development secrets, trust the
    /// development identity key. Never for real users.
    #[arg(long, global = true)]
    pub dev: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve {
        /// Address to listen on (overrides the configuration).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Address of the HTTP/1.1 port for JWKS and status lists
        /// (overrides `http.listen`; the default public URL follows it).
        #[arg(long)]
        http_listen: Option<std::net::SocketAddr>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Credentials on a running server: issue, get, list, verify,
    /// suspend, reinstate, revoke.
    Credential {
        /// What to do.
        #[command(subcommand)]
        command: client::credential::Command,
    },
    /// Recognitions on a running server: request, get, list, update-facts,
    /// matrix.
    Recognition {
        /// What to do.
        #[command(subcommand)]
        command: client::recognition::Command,
    },
    /// Recognition policies: `check` offline; validate, publish, simulate,
    /// get, versions on a running server.
    Policy {
        /// What to do.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The cities' issuer keys on a running server: list, rotate.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: client::keys::Command,
    },
    /// The change stream of a running server: watch.
    Events {
        /// What to do.
        #[command(subcommand)]
        command: client::events::Command,
    },
    /// The audit chain, offline.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Register a CSV file of credentials through BatchIssueCredentials on
    /// a running server. Exits 0 when every row was issued (now or by an
    /// earlier import), 2 when some were rejected (listed), 1 on failure.
    Import {
        /// The CSV file (header row: issuer_city, category, series, level,
        /// title, holder_name, holder_national_id; optional request_id,
        /// valid_from, valid_until).
        file: PathBuf,
        /// The server.
        #[arg(
            long,
            env = "CORRIDOR_SERVER",
            default_value = "http://127.0.0.1:50051"
        )]
        server: String,
        /// Bearer token of an `issuer` of the rows' city.
        #[arg(long, env = "CORRIDOR_TOKEN", hide_env_values = true)]
        token: String,
        /// Rows per call (1 to 1,000).
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Also write the rejected rows to this CSV file.
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// For an https:// server: a CA certificate (PEM) to trust besides
        /// the system's.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// For mutual TLS: the city's client certificate (PEM)...
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// ... and its key (PEM).
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
    },
    /// Mint an identity token signed with the development identity key.
    Token {
        /// Subject.
        #[arg(long, default_value = "dev-user")]
        sub: String,
        /// City the token is scoped to.
        #[arg(long)]
        city: Option<String>,
        /// Roles, comma-separated (issuer, recognizer, policy_admin, verifier, auditor, corridor_admin).
        #[arg(long, value_delimiter = ',', default_value = "verifier")]
        roles: Vec<String>,
        /// Lifetime in minutes.
        #[arg(long, default_value_t = 60)]
        ttl_minutes: i64,
    },
}

/// `corridor policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file with the same diagnostics as ValidatePolicy and
    /// PublishPolicy; exits non-zero when it has problems.
    Check {
        /// The Cedar policy file.
        file: PathBuf,
        /// The city it is for (used in the rule-conflict search).
        #[arg(long, default_value = "draft")]
        city: String,
        /// The city's province (used in the rule-conflict search).
        #[arg(long, default_value = "")]
        province: String,
    },
    /// On a running server.
    #[command(flatten)]
    Remote(client::policy::Command),
}

/// `corridor audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the audit chain, its checkpoints and the corridor keys of the
    /// configured database as CSV files into a directory.
    Export {
        /// The directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a dump written by `export` with the same rules as
    /// VerifyAuditChain; exits 1 and names the first broken sequence number
    /// when it does not verify.
    Verify {
        /// The dump's directory.
        dir: PathBuf,
        /// Trust only this corridor key (`KID=X`, X base64url as
        /// GetCheckpoint publishes it) instead of the dump's own.
        #[arg(long)]
        key: Option<String>,
    },
}

impl Command {
    /// The client command this is, if it is one (`credential`,
    /// `recognition`, `policy` but `check`, `keys`, `events`); else itself.
    pub fn into_client(self) -> Result<client::Group, Box<Self>> {
        match self {
            Self::Credential { command } => Ok(client::Group::Credential(command)),
            Self::Recognition { command } => Ok(client::Group::Recognition(command)),
            Self::Policy {
                command: PolicyCommand::Remote(command),
            } => Ok(client::Group::Policy(command)),
            Self::Keys { command } => Ok(client::Group::Keys(command)),
            Self::Events { command } => Ok(client::Group::Events(command)),
            other => Err(Box::new(other)),
        }
    }
}

impl Cli {
    /// Parses a command line (its first item is the program name); clap's
    /// error when it does not parse. For running commands in-process.
    pub fn parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(args)
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        let s = Settings::load(self.config.as_deref())?;
        Ok(if self.dev { s.with_dev_defaults() } else { s })
    }

    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        let _telemetry = match &self.command {
            // `serve` sets up logs from its configuration.
            Command::Serve { .. } => None,
            _ => Some(crate::telemetry::init(
                crate::config::LogFormat::Text,
                None,
            )?),
        };
        let command = match self.command.into_client() {
            Ok(group) => {
                let code = client::run(group, &mut std::io::stdout(), &mut std::io::stderr()).await;
                return if code == client::exit::OK {
                    Ok(())
                } else {
                    Err(ExitWith(code).into())
                };
            }
            Err(command) => *command,
        };
        let this = Cli { command, ..self };
        this.run_local().await
    }

    /// Runs a command that is not a client of a running server.
    async fn run_local(self) -> anyhow::Result<()> {
        match &self.command {
            Command::Serve {
                listen,
                http_listen,
            } => {
                let mut settings = self.settings()?;
                let _telemetry =
                    crate::telemetry::init(settings.log_format, settings.otlp_endpoint.as_deref())?;
                if settings.metrics_listen.is_some() && crate::metrics::handle().is_none() {
                    anyhow::bail!("the metrics recorder could not be installed");
                }
                if let Some(l) = listen {
                    settings.listen = *l;
                }
                if let Some(h) = http_listen {
                    settings.http.listen = Some(*h);
                }
                if self.dev {
                    std::fs::create_dir_all("data")?;
                    tracing::warn!(
                        "development mode: public development secrets, SQLite, dev identity key trusted"
                    );
                }
                // Before the database: a bad certificate must not start a
                // replica that then migrates or seeds.
                let tls = settings
                    .tls
                    .as_ref()
                    .map(crate::tls::Tls::load)
                    .transpose()?;
                let (state, audit_task) = AppState::build(&settings).await?;
                if self.dev {
                    crate::sample::seed(&state).await?;
                }
                let mut metrics_task = None;
                if let Some(addr) = settings.metrics_listen {
                    let metrics = TcpListener::bind(addr).await?;
                    let state = state.clone();
                    metrics_task = Some(tokio::spawn(async move {
                        if let Err(e) = crate::metrics::serve(metrics, state).await {
                            tracing::error!(error = %e, "metrics server stopped");
                        }
                    }));
                }
                let mut http_task = None;
                if let Some(addr) = settings.http.listen {
                    let http = TcpListener::bind(addr).await.map_err(|e| {
                        anyhow::anyhow!("binding the HTTP port {addr} (http.listen): {e}")
                    })?;
                    let state = state.clone();
                    http_task = Some(tokio::spawn(async move {
                        if let Err(e) = crate::http::serve(http, state).await {
                            tracing::error!(error = %e, "HTTP server stopped");
                        }
                    }));
                }
                let listener = TcpListener::bind(settings.listen).await?;
                server::serve_with(listener, state, settings.limits, tls, shutdown_signal())
                    .await?;
                // The HTTP server holds a state clone too.
                if let Some(h) = http_task {
                    h.abort();
                    let _ = h.await;
                }
                // The metrics server holds a state clone: stop it so the
                // state can drop and the audit writer can finish.
                if let Some(m) = metrics_task {
                    m.abort();
                    let _ = m.await;
                }
                // The server has dropped its state; the audit writer flushes and ends.
                let _ = audit_task.await;
                Ok(())
            }
            Command::Migrate => {
                let settings = self.settings()?;
                if self.dev {
                    std::fs::create_dir_all("data")?;
                }
                let db = store::connect_waiting(
                    settings.database_url()?,
                    std::time::Duration::from_millis(settings.limits.db_acquire_timeout_ms),
                    std::time::Duration::from_secs(settings.limits.db_startup_wait_seconds),
                )
                .await?;
                store::migrate(&db).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Policy {
                command:
                    PolicyCommand::Check {
                        file,
                        city,
                        province,
                    },
            } => {
                let src = std::fs::read_to_string(file)?;
                let engine = corridor_policy::Engine::new().map_err(anyhow::Error::msg)?;
                let target = corridor_policy::Target {
                    city: city.clone(),
                    province: province.clone(),
                };
                match engine.compile(&src, Some(&target)) {
                    Ok(p) => {
                        println!("{}: valid, {} rules", file.display(), p.rules().len());
                        Ok(())
                    }
                    Err(diags) => {
                        for d in &diags {
                            println!("{}:{d}", file.display());
                        }
                        anyhow::bail!("{}: {} problem(s)", file.display(), diags.len())
                    }
                }
            }
            Command::Audit {
                command: AuditCommand::Export { out },
            } => {
                let settings = self.settings()?;
                let db = store::connect(
                    settings.database_url()?,
                    std::time::Duration::from_millis(settings.limits.db_acquire_timeout_ms),
                )
                .await?;
                let e = crate::audit_offline::export(&db, out).await?;
                println!(
                    "exported sequence numbers {}..={} and {} checkpoint(s) to {}",
                    e.from,
                    e.through,
                    e.checkpoints,
                    out.display()
                );
                Ok(())
            }
            Command::Audit {
                command: AuditCommand::Verify { dir, key },
            } => {
                let pinned = match key {
                    None => None,
                    Some(k) => {
                        use base64::Engine;
                        let (kid, x) = k
                            .split_once('=')
                            .ok_or_else(|| anyhow::anyhow!("--key is KID=X"))?;
                        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(x)
                            .map_err(|_| anyhow::anyhow!("--key: X is not base64url"))?;
                        let x: [u8; 32] = x
                            .as_slice()
                            .try_into()
                            .map_err(|_| anyhow::anyhow!("--key: X is not 32 bytes"))?;
                        Some(std::collections::BTreeMap::from([(kid.to_owned(), x)]))
                    }
                };
                let r = crate::audit_offline::verify(dir, pinned)?;
                match r.broken {
                    None => {
                        println!(
                            "intact: verified through sequence {}, {} checkpoint(s) checked",
                            r.verified_through, r.checkpoints_checked
                        );
                        Ok(())
                    }
                    Some(b) => {
                        println!("broken at sequence {}: {}", b.position, b.reason);
                        anyhow::bail!("the audit chain does not verify")
                    }
                }
            }
            Command::Import {
                file,
                server,
                token,
                batch,
                rejects,
                json,
                ca_cert,
                cert,
                key,
            } => {
                let reader = std::fs::File::open(file)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let opts = crate::import::ImportOptions {
                    server: server.clone(),
                    token: token.clone(),
                    batch: *batch,
                    progress: !*json,
                    ca_cert: ca_cert.clone(),
                    client_cert: cert.clone().zip(key.clone()),
                };
                let report = crate::import::import(reader, &opts).await?;
                if let Some(path) = rejects {
                    let mut w = csv::Writer::from_path(path)?;
                    w.write_record(["line", "request_id", "code", "message", "fields"])?;
                    for r in &report.rejected {
                        w.write_record([
                            r.line.to_string(),
                            r.request_id.clone(),
                            r.code.clone(),
                            r.message.clone(),
                            r.fields.join(" "),
                        ])?;
                    }
                    w.flush()?;
                }
                if *json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!(
                        "{} rows: {} issued (now or before), {} rejected",
                        report.rows,
                        report.issued,
                        report.rejected.len()
                    );
                    for r in &report.rejected {
                        let fields = if r.fields.is_empty() {
                            String::new()
                        } else {
                            format!(" [{}]", r.fields.join(", "))
                        };
                        println!("line {}: {}{fields}: {}", r.line, r.code, r.message);
                    }
                }
                if report.rejected.is_empty() {
                    Ok(())
                } else {
                    Err(ExitWith(2).into())
                }
            }
            Command::Token {
                sub,
                city,
                roles,
                ttl_minutes,
            } => {
                let settings = self.settings()?;
                let (minter, _) = dev_identity_minter(&settings.identity.audience);
                let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
                let token = minter.mint(
                    sub,
                    city.as_deref(),
                    &roles,
                    Utc::now(),
                    chrono::Duration::minutes(*ttl_minutes),
                )?;
                println!("{token}");
                Ok(())
            }
            // `run` has sent these to the client.
            Command::Credential { .. }
            | Command::Recognition { .. }
            | Command::Keys { .. }
            | Command::Events { .. }
            | Command::Policy {
                command: PolicyCommand::Remote(_),
            } => anyhow::bail!("a client command runs through `client::run`"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// An exit status other than 1, for a command whose outcome is not a plain
/// failure (it has printed what happened).
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct ExitWith(pub u8);
