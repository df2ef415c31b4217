//! The replicas: processes of the server binary with a production
//! configuration (no `--dev`: real secrets, an identity provider whose key
//! only this run holds) over one database, each on its own loopback port,
//! with small limits so that every fault plays out in seconds.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use corridor_domain::caller::IdentityMinter;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The identity provider of the run.
const ISSUER: &str = "https://idp.chaos.g60-corridor.local";
const AUDIENCE: &str = "g60-talent-corridor";

/// The server limits of the run (`limits.*`), small so that faults are short.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `request_timeout_ms`.
    pub request_timeout: Duration,
    /// `db_acquire_timeout_ms`.
    pub db_acquire_timeout: Duration,
    /// `idle_timeout_ms`.
    pub idle_timeout: Duration,
    /// `shutdown_grace_ms`.
    pub shutdown_grace: Duration,
}

/// Chosen for the faults: a database wait (0.5 s) well under the request
/// timeout (2 s); an idle timeout (3 s) above the request timeout (the
/// idle timer counts bytes, not open calls: below it, a call waiting on the
/// database has its whole connection closed under it, and every other call
/// on that connection with it); a shutdown grace (2 s) far above a call's
/// time.
pub const LIMITS: Limits = Limits {
    request_timeout: Duration::from_millis(2_000),
    db_acquire_timeout: Duration::from_millis(500),
    idle_timeout: Duration::from_millis(3_000),
    shutdown_grace: Duration::from_millis(2_000),
};

fn random32() -> anyhow::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(b)
}

/// What every replica of the run shares: the binary, its configuration,
/// and the key that mints tokens they trust.
pub struct Setup {
    bin: PathBuf,
    config: PathBuf,
    dir: PathBuf,
    minter: IdentityMinter,
    log_level: String,
}

impl Setup {
    /// Copies `bin` into `dir` (a rebuild of target/ then cannot change or
    /// remove what the run restarts) and writes the configuration.
    pub fn new(
        bin: &Path,
        dir: &Path,
        database_url: &str,
        log_level: &str,
    ) -> anyhow::Result<Self> {
        let copy = dir.join("corridor");
        let tmp = dir.join("corridor.tmp");
        std::fs::copy(bin, &tmp).with_context(|| format!("copying {}", bin.display()))?;
        std::fs::rename(&tmp, &copy)?;
        let (minter, public) =
            IdentityMinter::from_seed("chaos-idp", random32()?, ISSUER, AUDIENCE);
        let config = dir.join("corridor.toml");
        let l = LIMITS;
        std::fs::write(
            &config,
            format!(
                "# Written by corridor-chaos: the replicas' production configuration.\n\
                 database_url = \"{database_url}\"\n\
                 migrate_on_start = false\n\n\
                 [secrets]\n\
                 key_encryption_key = \"{}\"\n\
                 holder_hash_key = \"{}\"\n\n\
                 [identity]\n\
                 issuer = \"{ISSUER}\"\n\
                 audience = \"{AUDIENCE}\"\n\
                 keys = [{{ kid = \"chaos-idp\", x = \"{}\" }}]\n\n\
                 [limits]\n\
                 request_timeout_ms = {}\n\
                 db_acquire_timeout_ms = {}\n\
                 idle_timeout_ms = {}\n\
                 shutdown_grace_ms = {}\n",
                STANDARD.encode(random32()?),
                STANDARD.encode(random32()?),
                URL_SAFE_NO_PAD.encode(public),
                l.request_timeout.as_millis(),
                l.db_acquire_timeout.as_millis(),
                l.idle_timeout.as_millis(),
                l.shutdown_grace.as_millis(),
            ),
        )?;
        Ok(Self {
            bin: copy,
            config,
            dir: dir.to_path_buf(),
            minter,
            log_level: log_level.to_owned(),
        })
    }

    /// A caller token, valid for the run.
    pub fn token(&self, sub: &str, city: Option<&str>, roles: &[&str]) -> anyhow::Result<String> {
        Ok(self.minter.mint(
            sub,
            city,
            roles,
            chrono::Utc::now(),
            chrono::Duration::hours(4),
        )?)
    }

    /// Runs `corridor migrate` once (replicas do not migrate: see
    /// `migrate_on_start = false`).
    pub fn migrate(&self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.join("migrate.log"))?;
        let status = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("migrate")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "corridor migrate failed ({status}); see {}",
            self.dir.join("migrate.log").display()
        );
        Ok(())
    }
}

/// One replica: its process (when running) and a channel to it.
pub struct Replica {
    /// 1, 2, 3...
    pub n: usize,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    /// A lazily connected channel, shared by the load (it reconnects).
    pub channel: Channel,
}

impl Replica {
    /// Starts replica `n` on `port` (not waiting for it).
    pub fn start(setup: &Setup, n: usize, port: u16) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy();
        let mut r = Self {
            n,
            port,
            child: None,
            log: setup.dir.join(format!("replica{n}.log")),
            channel,
        };
        r.spawn(setup)?;
        Ok(r)
    }

    /// The replica's gRPC address.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self, setup: &Setup) -> anyhow::Result<()> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        writeln!(log, "===== corridor-chaos: replica {} starts", self.n)?;
        let child = Command::new(&setup.bin)
            .arg("--config")
            .arg(&setup.config)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .env("RUST_LOG", &setup.log_level)
            .env("NO_COLOR", "1")
            // Credentials carry status entries as in production (the lists
            // themselves are not served: no HTTP port).
            .env("CORRIDOR_HTTP__PUBLIC_URL", "https://status.chaos.invalid")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", setup.bin.display()))?;
        std::fs::write(
            setup.dir.join(format!("replica{}.pid", self.n)),
            child.id().to_string(),
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts it again after it was killed or stopped.
    pub fn restart(&mut self, setup: &Setup) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "replica {} is still running", self.n);
        self.spawn(setup)
    }

    /// Whether its process is still running (false after it exited or was
    /// stopped here).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The overall health (service ""), or why there is none.
    pub async fn health(&self) -> Result<ServingStatus, String> {
        let mut client = HealthClient::new(self.channel.clone());
        let check = client.check(HealthCheckRequest::default());
        match tokio::time::timeout(Duration::from_secs(2), check).await {
            Ok(Ok(r)) => ServingStatus::try_from(r.into_inner().status).map_err(|e| e.to_string()),
            Ok(Err(s)) => Err(format!("{:?}", s.code())),
            Err(_) => Err("no answer in 2 s".into()),
        }
    }

    /// Waits until health is SERVING; returns how long that took.
    pub async fn wait_serving(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            anyhow::ensure!(
                self.alive(),
                "replica {} exited (see {})",
                self.n,
                self.log.display()
            );
            if self.health().await == Ok(ServingStatus::Serving) {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < within,
                "replica {} not SERVING within {} s (see {})",
                self.n,
                within.as_secs(),
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then waits up to `within` for it to exit (SIGKILL after
    /// that). Returns how long it took and its exit status, `None` if it
    /// had to be killed.
    pub async fn terminate(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<(Duration, Option<ExitStatus>)> {
        let Some(mut c) = self.child.take() else {
            anyhow::bail!("replica {} is not running", self.n);
        };
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM failed");
        loop {
            if let Some(status) = c.try_wait()? {
                return Ok((started.elapsed(), Some(status)));
            }
            if started.elapsed() > within {
                c.kill()?;
                c.wait()?;
                return Ok((started.elapsed(), None));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it for good at the end of the run (SIGTERM, SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        if self.child.is_some() {
            let _ = self.terminate(Duration::from_secs(10)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
