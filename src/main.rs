//! The `loyaltyd` binary: parse the command line, set up logging, call the library.

use std::io::IsTerminal;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // A write past the file size limit (RLIMIT_FSIZE, e.g. systemd's LimitFSIZE=) raises
    // SIGXFSZ, whose default action kills the process. Ignored, the write fails with
    // EFBIG instead, and storage failures are handled like a full disk: 503, nothing
    // acknowledged, a restart once writes work again.
    #[cfg(unix)]
    // SAFETY: the first statement of main, before any other thread exists; SIG_IGN is a
    // valid disposition for SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = loyaltyd::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        loyaltyd::cli::LogFormat::Json => logs.json().with_current_span(true).init(),
        loyaltyd::cli::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    match loyaltyd::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loyaltyd: {e:#}");
            if e.downcast_ref::<loyaltyd::ledger::commit::StorageRestart>()
                .is_some()
            {
                // EX_TEMPFAIL: a restart (systemd Restart=on-failure) reopens the store.
                return std::process::ExitCode::from(
                    loyaltyd::ledger::commit::EXIT_STORAGE_RESTART,
                );
            }
            std::process::ExitCode::FAILURE
        }
    }
}
