//! The `invited` binary: parses the command line and hands over to `app`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use invited::app::{RunningApp, load_config, migrate};
use invited::config::ApiKey;

#[derive(Parser)]
#[command(
    name = "invited",
    version,
    about = "Invitations, partner requests and their emails, as a daemon"
)]
struct Cli {
    /// A TOML configuration file; `INVITED_*` variables and `DATABASE_URL` override it.
    #[arg(long, global = true, env = "INVITED_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: HTTP API, actors, mail delivery.
    Serve {
        /// Development mode: generate an API key and print it once.
        #[arg(long)]
        dev: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets masked); exit non-zero on any error.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig = cli.command {
        print!("{}", config.redacted_toml());
        return ExitCode::SUCCESS;
    }
    invited::telemetry::init(config.log.format, &config.log.filter);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Migrate => migrate(&config).await,
            Command::Serve { dev } => serve(config, dev).await,
            Command::CheckConfig => unreachable!("handled above"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "invited stopped");
            eprintln!("invited: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: invited::config::Config, dev: bool) -> anyhow::Result<()> {
    let mut keys = config.api.keys.clone();
    if dev {
        let key = invited::http::generate_api_key();
        // Printed once, to stdout, never logged.
        println!("development API key (shown once): {key}");
        keys.push(ApiKey::from_plaintext("dev", &key));
    }
    if keys.is_empty() {
        anyhow::bail!(
            "no API key configured: set api.keys in the configuration file \
             (keys = [{{ name = \"app\", key = \"...\" }}]) or INVITED_API__KEYS=app:<key>, \
             or run `invited serve --dev` for a generated development key"
        );
    }
    let mut app = RunningApp::start(&config, keys).await?;
    let stopped_by_itself = tokio::select! {
        _ = shutdown_signal() => false,
        _ = app.stopped() => true,
    };
    tracing::info!("shutting down");
    app.shutdown(Duration::from_secs(30)).await;
    if stopped_by_itself {
        anyhow::bail!("the actor tree stopped (restart budget exhausted)");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
