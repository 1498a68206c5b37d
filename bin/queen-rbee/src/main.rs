//! queen-rbee entry point: parse flags, start logging, bind, serve until SIGINT or SIGTERM.

use std::{io::IsTerminal as _, process::ExitCode};

use clap::Parser as _;
use queen_rbee::{Config, run, shutdown_signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(error) = config.validate() {
        #[allow(
            clippy::print_stderr,
            reason = "a bad configuration is reported before logging starts"
        )]
        {
            eprintln!("queen-rbee: {error}");
        }
        return ExitCode::from(2);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{}=info,tower_http=warn", env!("CARGO_CRATE_NAME")))
    });
    // A closed stderr must not panic the logger (and with it the task that handles signals).
    tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("failed to bind {}", config.bind))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = run(config, listener, shutdown.clone());
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            shutdown.cancel();
            server.await
        }
    }
}
