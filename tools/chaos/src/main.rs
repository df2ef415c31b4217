//! `corridor-chaos`: the fault matrix (README "Chaos", run by `scripts/chaos`).
//!
//! It owns a throwaway Postgres cluster (initdb under the work directory,
//! its own port: the faults never touch another database) and three
//! replicas of the server binary with a production configuration, all on
//! loopback. For each fault it drives IssueCredential with request ids and
//! retries (`load.rs`), injects the fault (`faults.rs`: Postgres fast stop
//! and crash, a replica SIGKILLed or SIGTERMed under load, a table lock
//! longer than the request timeout, pool exhaustion, slow-body and idle
//! connection floods), and then checks that the replicas are SERVING and
//! issue again, and that the database holds every acknowledged issuance
//! exactly once (`check.rs`). It prints one row per fault and exits 1 when
//! any row is wrong. Whatever happens, it stops what it started.

mod check;
mod cluster;
mod faults;
mod floods;
mod load;
mod replicas;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sea_orm::{ConnectOptions, ConnectionTrait, Database};

use crate::cluster::Cluster;
use crate::faults::{Env, FAULTS, Sizes};
use crate::load::Client;
use crate::replicas::{Replica, Setup};

/// The fault matrix of the corridor service.
#[derive(Debug, Parser)]
#[command(name = "corridor-chaos")]
struct Args {
    /// The server binary (copied into the work directory first).
    #[arg(long, default_value = "target/debug/corridor")]
    server_bin: PathBuf,
    /// CI's run: every fault, small and short.
    #[arg(long)]
    short: bool,
    /// Only these faults (comma-separated keys: pg-fast, pg-crash, kill,
    /// slow-db, pool, slow-body, idle, term).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Replicas to run (at least 3: the faults kill the second and stop the third).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// The throwaway Postgres' port.
    #[arg(long, default_value_t = 20_532)]
    pg_port: u16,
    /// The first replica's gRPC port (the others follow).
    #[arg(long, default_value_t = 20_811)]
    base_port: u16,
    /// The replicas' RUST_LOG.
    #[arg(long, default_value = "warn")]
    log_level: String,
    /// Also print a message of each kind of failed attempt.
    #[arg(long)]
    verbose: bool,
    /// The cluster, the configuration, the logs.
    #[arg(long, default_value = "target/chaos")]
    work_dir: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corridor-chaos: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        // On Ctrl-C or SIGTERM the run is dropped: the replicas are killed
        // and the cluster stopped by their Drop.
        tokio::select! {
            r = run(&args) => r,
            () = interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "corridor-chaos: WRONG rows above; logs in {}",
                args.work_dir.display()
            );
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "corridor-chaos: {e:#} (logs in {})",
                args.work_dir.display()
            );
            std::process::ExitCode::FAILURE
        }
    }
}

async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}

/// Kills replicas a previous run left behind (its pid files, if the pid is
/// still our copied binary).
fn reap_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let ours = dir.join("corridor");
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("replica") && name.ends_with(".pid")) {
            continue;
        }
        if let Ok(pid) = std::fs::read_to_string(e.path()) {
            let pid = pid.trim();
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            let exe = exe.to_string_lossy();
            if exe.trim_end_matches(" (deleted)") == ours.to_string_lossy() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid])
                    .status();
            }
        }
        let _ = std::fs::remove_file(e.path());
    }
}

fn port_free(port: u16) -> anyhow::Result<()> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .with_context(|| format!("port {port} on 127.0.0.1 is taken (another run?)"))
}

async fn run(args: &Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    anyhow::ensure!(args.replicas >= 3, "--replicas must be at least 3");
    let faults: Vec<&str> = if args.only.is_empty() {
        FAULTS.to_vec()
    } else {
        for o in &args.only {
            anyhow::ensure!(
                FAULTS.contains(&o.as_str()),
                "no fault {o:?} (one of {})",
                FAULTS.join(", ")
            );
        }
        FAULTS
            .iter()
            .copied()
            .filter(|f| args.only.iter().any(|o| o == f))
            .collect()
    };
    anyhow::ensure!(
        args.server_bin.is_file(),
        "no server binary at {} (cargo build --workspace --tests --bins)",
        args.server_bin.display()
    );
    std::fs::create_dir_all(&args.work_dir)?;
    let work = std::fs::canonicalize(&args.work_dir)?;
    reap_leftovers(&work);
    for f in std::fs::read_dir(&work)?.flatten() {
        if f.file_name().to_string_lossy().ends_with(".log") {
            std::fs::remove_file(f.path())?;
        }
    }
    let ports: Vec<u16> = (0..args.replicas)
        .map(|i| args.base_port + u16::try_from(i).unwrap_or(u16::MAX))
        .collect();
    for p in ports.iter().chain([&args.pg_port]) {
        port_free(*p)?;
    }

    let cluster = tokio::task::block_in_place(|| Cluster::create(&work.join("pg"), args.pg_port))?;
    eprintln!(
        "corridor-chaos: a throwaway Postgres on 127.0.0.1:{} (log: {})",
        args.pg_port,
        cluster.log().display()
    );
    let admin = Database::connect(ConnectOptions::new(cluster.url("postgres"))).await?;
    admin.execute_unprepared("CREATE DATABASE corridor").await?;
    admin.close().await?;
    let database_url = cluster.url("corridor");
    let setup = Setup::new(&args.server_bin, &work, &database_url, &args.log_level)?;
    tokio::task::block_in_place(|| setup.migrate())?;

    // Replica 1 alone first: on a fresh database it creates the city keys.
    let mut replicas = vec![Replica::start(&setup, 1, ports[0])?];
    replicas[0].wait_serving(Duration::from_secs(60)).await?;
    for (i, port) in ports.iter().enumerate().skip(1) {
        replicas.push(Replica::start(&setup, i + 1, *port)?);
    }
    for r in &mut replicas {
        r.wait_serving(Duration::from_secs(60)).await?;
    }
    let mut db_options = ConnectOptions::new(database_url);
    db_options
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    let db = Database::connect(db_options).await?;
    let token = setup.token("chaos-hr", Some("hangzhou"), &["issuer"])?;
    let holder = corridor_domain::holder::NationalId::with_check_digit("33010619900101123")
        .context("a holder id")?;
    let client = Arc::new(Client::new(
        replicas.iter().map(|r| r.channel.clone()).collect(),
        token,
        holder,
        replicas::LIMITS.request_timeout,
        Duration::from_secs(30),
    ));
    let sizes = if args.short {
        Sizes::SHORT
    } else {
        Sizes::FULL
    };
    eprintln!(
        "corridor-chaos: {} replicas on 127.0.0.1:{}..{}, up after {:.1} s; {} run",
        replicas.len(),
        ports[0],
        ports[ports.len() - 1],
        started.elapsed().as_secs_f64(),
        if args.short { "the short" } else { "the full" }
    );
    let mut env = Env {
        sizes,
        cluster,
        setup,
        replicas,
        client,
        db,
    };
    let mut rows = Vec::new();
    let mut failure = None;
    for f in faults {
        match faults::run(&mut env, f).await {
            Ok(row) => rows.push(row),
            Err(e) => {
                failure = Some(e.context(format!("fault {f}")));
                break;
            }
        }
    }
    let passed = report::print(&rows, args.verbose);
    println!(
        "\n{} fault(s), {:.0} s in all ({} run; logs in {})",
        rows.len(),
        started.elapsed().as_secs_f64(),
        if args.short { "short" } else { "full" },
        args.work_dir.display()
    );
    for r in &mut env.replicas {
        r.stop().await;
    }
    env.db.close().await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(passed),
    }
}
