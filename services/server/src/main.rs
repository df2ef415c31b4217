//! `corridor`: the Talent Corridor binary. Arguments, then the command
//! (which sets up logs and traces from the configuration).

use clap::Parser;
use corridor_server::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<corridor_server::cli::ExitWith>().is_some() => {
            let code = e
                .downcast_ref::<corridor_server::cli::ExitWith>()
                .map_or(1, |x| x.0);
            std::process::ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
