//! Clients of the public gRPC API, as a city system or an operator runs
//! them: `corridor import` and the commands `corridor credential`,
//! `recognition`, `policy` (all but the offline `check`), `keys` and
//! `events`. They reach a running server over the network with a bearer
//! token, like any other client: no database, no back door into `app/`.
//!
//! This module owns what they share: the connection options and the
//! connection (TLS and mutual TLS for `https://`), the bearer token, the
//! output (tables for people, `--json` for scripts) and the exit codes
//! ([`exit`]). One module per command group.

pub mod args;
pub mod credential;
pub mod events;
pub mod json;
pub mod keys;
pub mod policy;
pub mod recognition;
pub mod table;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// Where the clients connect unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// The exit codes of the client commands (`corridor import` keeps its own
/// 0, 2 for rejected rows, 1).
pub mod exit {
    /// The call succeeded (and `credential verify`: the credential is valid).
    pub const OK: u8 = 0;
    /// A failure that is not the caller's: the server unreachable,
    /// UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, a local file missing...
    pub const FAILURE: u8 = 1;
    /// A usage error: the command line does not parse (clap's own code).
    pub const USAGE: u8 = 2;
    /// The server refused the request as invalid: INVALID_ARGUMENT,
    /// FAILED_PRECONDITION, OUT_OF_RANGE, ALREADY_EXISTS, ABORTED (and
    /// `policy validate` with diagnostics).
    pub const REFUSED: u8 = 3;
    /// NOT_FOUND.
    pub const NOT_FOUND: u8 = 4;
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    pub const DENIED: u8 = 5;
    /// `credential verify` answered that the credential is not valid.
    pub const NOT_VALID: u8 = 6;
}

/// The exit code for a call that ended with `code`.
pub fn exit_code(code: Code) -> u8 {
    match code {
        Code::Ok => exit::OK,
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::AlreadyExists
        | Code::Aborted => exit::REFUSED,
        Code::NotFound => exit::NOT_FOUND,
        Code::Unauthenticated | Code::PermissionDenied => exit::DENIED,
        Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Unimplemented
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => exit::FAILURE,
    }
}

/// The canonical name of a gRPC code, as in `google.rpc.Code`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// How a client command ended, when not with success.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server answered with an error status.
    #[error("{}", describe(.0))]
    Status(#[from] tonic::Status),
    /// The answer is printed and says what went wrong; exit with this code.
    #[error("exit status {0}")]
    Exit(u8),
    /// Anything else: the server unreachable, a file missing, ...
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl Failure {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            Self::Status(s) => exit_code(s.code()),
            Self::Exit(c) => *c,
            Self::Other(_) => exit::FAILURE,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Other(e.into())
    }
}

/// What a status says, for stderr: the code, the stable reason of its
/// `google.rpc.ErrorInfo` (when there is one), the message and every field
/// violation of its `google.rpc.BadRequest`, one per line.
pub fn describe(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let mut text = code_name(status.code()).to_string();
    if let Some(info) = status.get_details_error_info() {
        text.push_str(&format!(" ({})", info.reason));
    }
    text.push_str(&format!(": {}", status.message()));
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    text
}

/// The connection options every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The server's URL; `https://` connects over TLS.
    #[arg(long, env = "CORRIDOR_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// The bearer token (from the identity provider; `corridor --dev token`
    /// for a development server).
    #[arg(long, env = "CORRIDOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// For an https:// server: a CA certificate (PEM) to trust besides the
    /// system's.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// For mutual TLS: the client certificate (PEM)...
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// ... and its key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Print the answer as JSON (the canonical protobuf mapping) instead of
    /// a table.
    #[arg(long)]
    pub json: bool,
}

/// Where to connect and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's URL, e.g. `http://127.0.0.1:50051`.
    pub server: String,
    /// A CA certificate (PEM) to trust for an `https://` server.
    pub ca_cert: Option<PathBuf>,
    /// A client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl ClientArgs {
    /// Where these options connect.
    pub fn target(&self) -> Target {
        Target {
            server: self.server.clone(),
            ca_cert: self.ca_cert.clone(),
            client_cert: self.cert.clone().zip(self.key.clone()),
        }
    }
}

/// A channel to `target.server`, over TLS for `https://`.
pub async fn connect(target: &Target) -> anyhow::Result<Channel> {
    let mut endpoint =
        Endpoint::from_shared(target.server.clone())?.connect_timeout(Duration::from_secs(5));
    if target.server.starts_with("https://") {
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &target.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        if let Some((cert, key)) = &target.client_cert {
            let cert_pem =
                std::fs::read(cert).map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
            let key_pem =
                std::fs::read(key).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
            tls = tls.identity(tonic::transport::Identity::from_pem(cert_pem, key_pem));
        }
        endpoint = endpoint.tls_config(tls)?;
    } else {
        anyhow::ensure!(
            target.ca_cert.is_none() && target.client_cert.is_none(),
            "certificates given for {}, which is not an https:// URL",
            target.server
        );
    }
    endpoint
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {}: {}", target.server, causes(&e)))
}

/// An error and its sources, `: `-separated (a transport error's own text
/// says only "transport error").
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// `msg` as a request carrying `authorization: Bearer <token>` when there
/// is a token.
pub fn authed<T>(msg: T, token: Option<&str>) -> anyhow::Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(msg);
    if let Some(token) = token {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}")
                .parse()
                .map_err(|_| anyhow::anyhow!("the token is not a valid header value"))?,
        );
    }
    Ok(req)
}

/// A connected client command: the channel, the token and the output.
pub struct Session<'a> {
    /// The connection.
    pub channel: Channel,
    token: Option<String>,
    json: Option<json::Json>,
    out: &'a mut (dyn Write + Send),
}

impl<'a> Session<'a> {
    /// Connects as `args` say; output goes to `out`.
    pub async fn open(args: &ClientArgs, out: &'a mut (dyn Write + Send)) -> Result<Self, Failure> {
        let json = if args.json {
            Some(json::Json::new()?)
        } else {
            None
        };
        Ok(Self {
            channel: connect(&args.target()).await?,
            token: args.token.clone(),
            json,
            out,
        })
    }

    /// `msg` with the bearer token.
    pub fn request<T>(&self, msg: T) -> Result<tonic::Request<T>, Failure> {
        Ok(authed(msg, self.token.as_deref())?)
    }

    /// Whether the answer is wanted as JSON.
    pub fn json(&self) -> bool {
        self.json.is_some()
    }

    /// Prints an answer: as indented JSON under `--json`, else the text
    /// `human` makes of it.
    pub fn print<M: json::Proto>(
        &mut self,
        msg: &M,
        human: impl FnOnce(&M) -> String,
    ) -> Result<(), Failure> {
        let text = match &self.json {
            Some(j) => j.pretty(msg)?,
            None => human(msg),
        };
        writeln!(self.out, "{}", text.trim_end())?;
        self.out.flush()?;
        Ok(())
    }

    /// Prints `msg` as JSON on one line under `--json`, else the line
    /// `human` makes of it; flushed, for streams.
    pub fn print_line<M: json::Proto>(
        &mut self,
        msg: &M,
        human: impl FnOnce(&M) -> String,
    ) -> Result<(), Failure> {
        let text = match &self.json {
            Some(j) => j.line(msg)?,
            None => human(msg),
        };
        writeln!(self.out, "{text}")?;
        self.out.flush()?;
        Ok(())
    }

    /// Prints arbitrary JSON (a composite answer of several calls).
    pub fn print_value(&mut self, value: &serde_json::Value) -> Result<(), Failure> {
        writeln!(
            self.out,
            "{}",
            serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?
        )?;
        self.out.flush()?;
        Ok(())
    }

    /// `msg` as a JSON value (under `--json`).
    pub fn value<M: json::Proto>(&self, msg: &M) -> Result<serde_json::Value, Failure> {
        match &self.json {
            Some(j) => Ok(j.value(msg)?),
            None => Ok(serde_json::Value::Null),
        }
    }

    /// Prints text for people (nothing under `--json`).
    pub fn say(&mut self, text: &str) -> Result<(), Failure> {
        if self.json.is_none() {
            writeln!(self.out, "{}", text.trim_end())?;
            self.out.flush()?;
        }
        Ok(())
    }
}

/// A client command group of the `corridor` binary.
#[derive(Debug)]
pub enum Group {
    /// `corridor credential ...`.
    Credential(credential::Command),
    /// `corridor recognition ...`.
    Recognition(recognition::Command),
    /// `corridor policy ...` (but `check`).
    Policy(policy::Command),
    /// `corridor keys ...`.
    Keys(keys::Command),
    /// `corridor events ...`.
    Events(events::Command),
}

/// Runs a client command: the answer goes to `out`; an error (the gRPC
/// code, the message, the field violations) to `err`. Returns the exit
/// code ([`exit`]).
pub async fn run(group: Group, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)) -> u8 {
    let result = match group {
        Group::Credential(c) => credential::run(c, out).await,
        Group::Recognition(c) => recognition::run(c, out).await,
        Group::Policy(c) => policy::run(c, out).await,
        Group::Keys(c) => keys::run(c, out).await,
        Group::Events(c) => events::run(c, out).await,
    };
    match result {
        Ok(()) => exit::OK,
        Err(Failure::Exit(code)) => code,
        Err(f) => {
            let _ = writeln!(err, "error: {f}");
            let _ = err.flush();
            f.code()
        }
    }
}

/// A fresh request id (UUID v4) for a mutating command given none.
pub fn fresh_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_grpc_code() {
        let cases = [
            (Code::Ok, 0),
            (Code::Unavailable, 1),
            (Code::Internal, 1),
            (Code::Unknown, 1),
            (Code::DeadlineExceeded, 1),
            (Code::ResourceExhausted, 1),
            (Code::Unimplemented, 1),
            (Code::Cancelled, 1),
            (Code::DataLoss, 1),
            (Code::InvalidArgument, 3),
            (Code::FailedPrecondition, 3),
            (Code::OutOfRange, 3),
            (Code::AlreadyExists, 3),
            (Code::Aborted, 3),
            (Code::NotFound, 4),
            (Code::Unauthenticated, 5),
            (Code::PermissionDenied, 5),
        ];
        for (code, exit) in cases {
            assert_eq!(exit_code(code), exit, "{code:?}");
        }
    }

    #[test]
    fn failures_exit_with_their_code() {
        assert_eq!(Failure::Status(tonic::Status::not_found("x")).code(), 4);
        assert_eq!(Failure::Exit(exit::NOT_VALID).code(), 6);
        assert_eq!(Failure::Other(anyhow::anyhow!("refused")).code(), 1);
    }

    #[test]
    fn a_status_is_described_with_its_field_violations() {
        use tonic_types::{ErrorDetails, StatusExt};
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("holder_national_id", "bad check digit");
        details.add_bad_request_violation("qualification.level", "must be 1 to 5");
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "the request is invalid",
            details,
        );
        assert_eq!(
            describe(&status),
            "INVALID_ARGUMENT: the request is invalid\n  \
             holder_national_id: bad check digit\n  \
             qualification.level: must be 1 to 5"
        );
        assert_eq!(
            describe(&tonic::Status::permission_denied("not yours")),
            "PERMISSION_DENIED: not yours"
        );
        let with_reason = tonic::Status::with_error_details(
            Code::FailedPrecondition,
            "only an open CONDITIONAL recognition can be re-decided",
            ErrorDetails::with_error_info(
                "RECOGNITION_NOT_OPEN",
                "d",
                std::collections::HashMap::new(),
            ),
        );
        assert_eq!(
            describe(&with_reason),
            "FAILED_PRECONDITION (RECOGNITION_NOT_OPEN): only an open CONDITIONAL recognition can be re-decided"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_failure_named_on_stderr() {
        // Port 1 on localhost: nothing listens there.
        let args = ClientArgs {
            server: "http://127.0.0.1:1".into(),
            token: None,
            ca_cert: None,
            cert: None,
            key: None,
            json: false,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            Group::Keys(keys::Command::List(keys::List {
                client: args,
                city: None,
            })),
            &mut out,
            &mut err,
        )
        .await;
        assert_eq!(code, exit::FAILURE);
        assert!(out.is_empty());
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.starts_with("error: cannot reach http://127.0.0.1:1"),
            "{err}"
        );
    }

    #[test]
    fn certificates_need_an_https_server() {
        let target = Target {
            server: "http://127.0.0.1:1".into(),
            ca_cert: Some("ca.crt".into()),
            client_cert: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(connect(&target)).unwrap_err();
        assert!(e.to_string().contains("not an https:// URL"), "{e}");
    }
}
