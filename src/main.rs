//! The `loyaltyd` binary: parse the command line, set up logging, call the library.

use std::io::IsTerminal;

use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match loyaltyd::cli::run(loyaltyd::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loyaltyd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
