//! The servers under test: release `corridor` processes with a production
//! configuration (no `--dev`) on a fresh database, pinned to a CPU.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use corridor_domain::caller::IdentityMinter;
use sea_orm::{ConnectOptions, ConnectionTrait, Database};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The public HTTP address the servers put in status entries (nothing
/// listens there: the benchmark does not fetch lists).
pub const PUBLIC_URL: &str = "https://status.bench.invalid";

/// The identity provider of the run: the servers trust its key.
pub const ISSUER: &str = "https://idp.bench.g60-corridor.local";
/// The audience.
pub const AUDIENCE: &str = "g60-talent-corridor";

/// A fresh database and the configuration every server of the run shares.
pub struct Setup {
    /// The configuration file.
    pub config: PathBuf,
    /// Mints caller tokens the servers trust.
    pub minter: IdentityMinter,
    /// The database's URL.
    pub database_url: String,
    admin_url: String,
    db_name: String,
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, chunk) in b.chunks_mut(16).enumerate() {
        let u = uuid::Uuid::new_v4();
        chunk.copy_from_slice(&u.as_bytes()[..16]);
        chunk[0] ^= i as u8;
    }
    b
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

impl Setup {
    /// Creates the database and writes the configuration into `dir`.
    pub async fn new(admin_url: &str, dir: &Path) -> anyhow::Result<Self> {
        let admin_url = with_database(admin_url, "postgres");
        let db_name = format!("corridor_bench_{}", std::process::id());
        let admin = Database::connect(ConnectOptions::new(admin_url.clone())).await?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {db_name}"))
            .await?;
        admin.close().await?;
        let database_url = with_database(&admin_url, &db_name);
        let (minter, public) = IdentityMinter::from_seed("bench-idp", random32(), ISSUER, AUDIENCE);
        std::fs::create_dir_all(dir)?;
        let config = dir.join("corridor.toml");
        std::fs::write(
            &config,
            format!(
                "database_url = \"{database_url}\"\nmigrate_on_start = true\n\n[secrets]\nkey_encryption_key = \"{}\"\nholder_hash_key = \"{}\"\n\n[identity]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\nkeys = [{{ kid = \"bench-idp\", x = \"{}\" }}]\n",
                STANDARD.encode(random32()),
                STANDARD.encode(random32()),
                URL_SAFE_NO_PAD.encode(public),
            ),
        )?;
        Ok(Self {
            config,
            minter,
            database_url,
            admin_url,
            db_name,
        })
    }

    /// A caller token.
    pub fn token(&self, sub: &str, city: Option<&str>, roles: &[&str]) -> anyhow::Result<String> {
        Ok(self.minter.mint(
            sub,
            city,
            roles,
            chrono::Utc::now(),
            chrono::Duration::hours(2),
        )?)
    }

    /// Drops the database.
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let admin = Database::connect(ConnectOptions::new(self.admin_url.clone())).await?;
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            ))
            .await?;
        Ok(())
    }
}

/// A running server process.
pub struct Server {
    child: Child,
    /// Its gRPC address.
    pub url: String,
}

impl Server {
    /// Starts `bin` on `port`, pinned to `cpu`, and waits until it is SERVING.
    pub async fn start(
        bin: &Path,
        setup: &Setup,
        port: u16,
        cpu: usize,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let child = Command::new("taskset")
            .arg("-c")
            .arg(cpu.to_string())
            .arg(bin)
            .arg("--config")
            .arg(&setup.config)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            // Credentials carry their status entries as in production (the
            // lists themselves are not served: no HTTP port).
            .env("CORRIDOR_HTTP__PUBLIC_URL", PUBLIC_URL)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            if let Ok(ch) = server.channel().await {
                let ok = HealthClient::new(ch)
                    .check(HealthCheckRequest::default())
                    .await
                    .is_ok();
                if ok {
                    return Ok(server);
                }
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the server on port {port} did not become healthy (see its log)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new connection to it.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(self.url.clone())?
            .tcp_nodelay(true)
            .connect()
            .await?)
    }

    /// The process's resident set size, MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        // taskset execs the server, so the pid is the server's.
        rss_mib_of(self.child.id())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident set size of process `pid`, MiB.
pub fn rss_mib_of(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok(kb / 1024.0)
}
