//! The run's own Postgres cluster: made with `initdb` under the work
//! directory, on its own port, so that stopping and crashing it touches no
//! other database on the machine. Run as the `postgres` user when this runs
//! as root (Postgres refuses root). Stopped when dropped, whatever happened.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A throwaway cluster.
pub struct Cluster {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest `initdb`: Debian's `/usr/lib/postgresql/<version>/bin`, else `$PATH`.
fn find_bindir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .context("no initdb found: install PostgreSQL (apt-get install postgresql)")
}

impl Cluster {
    /// Creates a fresh cluster under `dir` (stopping and removing what a
    /// previous run left there) and starts it on 127.0.0.1:`port`.
    pub fn create(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let cluster = Self {
            bindir: find_bindir()?,
            dir: dir.to_path_buf(),
            port,
            as_postgres: is_root(),
        };
        if cluster.data().join("postmaster.pid").exists() {
            let _ = cluster.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("removing the old cluster at {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)?;
        if cluster.as_postgres {
            if Command::new("id").arg("postgres").output()?.status.code() != Some(0) {
                run(Command::new("useradd").args(["--system", "--no-create-home", "postgres"]))?;
            }
            run(Command::new("chown").arg("postgres").arg(dir))?;
        }
        cluster
            .command("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "--auth=trust", "--no-sync"])
            .output()
            .map_err(anyhow::Error::from)
            .and_then(checked)
            .context("initdb")?;
        cluster.start()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Its server log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// A `postgres://` URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let bin = self.bindir.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-t", "60"])
            .args(args)
            .output()?;
        checked(out)
    }

    /// Starts it and waits until it accepts connections.
    pub fn start(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.dir.display()
        );
        // Not through a pipe: the postmaster outlives pg_ctl, and a pipe it
        // inherited would keep `output()` waiting.
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-t", "60", "start", "-w", "-l"])
            .arg(self.log())
            .arg("-o")
            .arg(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!(
                "starting Postgres failed ({status}); see {}",
                self.log().display()
            );
        }
        Ok(started.elapsed())
    }

    /// Stops it: `fast` (sessions terminated, a clean shutdown) or
    /// `immediate` (every process killed: a crash, recovered at the next start).
    pub fn stop(&self, mode: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.pg_ctl(&["stop", "-w", "-m", mode])
            .with_context(|| format!("pg_ctl stop -m {mode}"))?;
        Ok(started.elapsed())
    }

    fn running(&self) -> bool {
        self.pg_ctl(&["status"]).is_ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running()
            && let Err(e) = self.stop("immediate")
        {
            eprintln!("corridor-chaos: could not stop the throwaway Postgres: {e:#}");
        }
    }
}

fn run(c: &mut Command) -> anyhow::Result<Output> {
    checked(c.output()?)
}

fn checked(out: Output) -> anyhow::Result<Output> {
    if !out.status.success() {
        bail!(
            "{}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}
