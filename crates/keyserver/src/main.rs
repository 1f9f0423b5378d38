//! `bastion-keyserver`: see `bastion_keyserver::cli` and `docs/keyserver.md`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use bastion_keyserver::cli::{self, CliError};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args).and_then(cli::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ CliError::Usage(_)) => {
            eprintln!("bastion-keyserver: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("bastion-keyserver: {e}");
            ExitCode::FAILURE
        }
    }
}
