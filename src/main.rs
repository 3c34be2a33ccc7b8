//! The `invited` binary: parses the command line and hands over to `app`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use invited::app::{RunningApp, load_config, migrate};
use invited::config::ApiKey;
use invited::mail::{EmailContent, TemplateName, Templates};

/// mimalloc instead of glibc's malloc: requests and batches allocate and free
/// many small values across the runtime's threads, and glibc's malloc took
/// about a quarter of the benchmark process's CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Check or preview the email templates in `templates.dir`.
    #[command(subcommand)]
    Templates(TemplatesCommand),
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// Render every template in every locale with its sample contexts; exit
    /// non-zero on a missing template, variable or locale.
    Check,
    /// Print one template rendered with its sample context: subject, text, HTML.
    Render {
        /// member_invitation, invitation_accepted, reminder, partner_invitation
        /// or partner_request.
        name: TemplateName,
        /// A language tag; falls back like a real email would (default:
        /// `templates.default_locale`).
        #[arg(long)]
        locale: Option<String>,
    },
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
    if let Command::Templates(command) = &cli.command {
        return templates(&config, command);
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
            Command::CheckConfig | Command::Templates(_) => unreachable!("handled above"),
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

fn templates(config: &invited::config::Config, command: &TemplatesCommand) -> ExitCode {
    let dir = &config.templates.dir;
    // The directory when it exists, else what the binary carries.
    let templates = match Templates::load_or_embedded(dir, config.templates.default_locale.as_str())
    {
        Ok(templates) => templates,
        Err(error) => {
            eprintln!("invited: {error}");
            return ExitCode::FAILURE;
        }
    };
    let source = templates.source();
    match command {
        TemplatesCommand::Check => {
            if let Err(report) = templates.check_report() {
                eprintln!("{report}");
                return ExitCode::FAILURE;
            }
            let locales: Vec<&str> = templates.locales().collect();
            println!(
                "templates ok: {} templates in {} locales ({}) under {source}",
                TemplateName::ALL.len(),
                locales.len(),
                locales.join(", ")
            );
            ExitCode::SUCCESS
        }
        TemplatesCommand::Render { name, locale } => {
            let requested = locale.as_deref().unwrap_or(templates.default_locale());
            let sample = EmailContent::sample(*name);
            let context = sample.render_context(&config.mail.brand());
            match templates.render(sample.template(), requested, &context) {
                Ok(r) => {
                    // A closed pipe (`| head`) is not an error worth a panic.
                    let _ = writeln!(
                        std::io::stdout().lock(),
                        "Template: {name}\nLocale: {} (requested {requested})\nSubject: {}\n\n\
                         ----- text/plain -----\n{}\n\n----- text/html -----\n{}",
                        r.locale,
                        r.subject,
                        r.text.trim_end(),
                        r.html.trim_end()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("invited: {error}");
                    ExitCode::FAILURE
                }
            }
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
    // A second SIGTERM or Ctrl-C exits at once (issue 12, item 1): the
    // operator has decided not to wait. Sends cut off are taken over by the
    // next process through its heartbeat, as after a crash.
    let again = shutdown_signal();
    tracing::info!("shutting down (a second SIGTERM or Ctrl-C exits at once)");
    tokio::select! {
        _ = app.shutdown(Duration::from_secs(30)) => {}
        _ = again => {
            tracing::warn!("second signal: exiting without waiting for the shutdown");
            std::process::exit(1);
        }
    }
    if stopped_by_itself {
        anyhow::bail!("the actor tree stopped (restart budget exhausted)");
    }
    Ok(())
}

/// Resolves on the next SIGTERM or Ctrl-C after this call (the handlers are
/// registered before it returns, so none is missed once it has).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {}
                _ = int => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
