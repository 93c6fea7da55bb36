//! The `upstash-sessions` binary: answer `--help` or `--version`, or read settings, start
//! logging (and traces when `OTEL_*` asks for them), serve until SIGTERM/SIGINT, then flush
//! the traces.
#![forbid(unsafe_code)]

use std::{fmt::Display, process::ExitCode};

use upstash_sessions::{
    settings::{self, Settings},
    startup::Application,
    telemetry,
};

/// Exit code of a usage or settings error (as clap and sysexits' `EX_USAGE` family use);
/// 1 is a failure at run time.
const USAGE: u8 = 2;

#[actix_web::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("upstash-sessions: {message}");
            ExitCode::from(code)
        }
    }
}

/// The exit code and the one line to print on failure.
type Failure = (u8, String);

/// Pairs an error with the exit code it ends the process with.
fn exit_with<E: Display>(code: u8) -> impl FnOnce(E) -> Failure {
    move |error| (code, error.to_string())
}

async fn run() -> Result<(), Failure> {
    // Three fixed words and no options: hand-read rather than through clap, whose generated
    // help could not print the settings table anyway (settings come from the environment).
    if let Some(argument) = std::env::args_os().nth(1) {
        match argument.to_str() {
            Some("--help" | "-h") => {
                print!("{}", help());
                return Ok(());
            }
            Some("--version" | "-V") => {
                println!("upstash-sessions {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            _ => {
                return Err((
                    USAGE,
                    format!(
                        "unknown argument {argument:?}: settings come from environment \
                         variables (see --help)"
                    ),
                ))
            }
        }
    }
    let env_file = settings::load_dotenv().map_err(exit_with(USAGE))?;
    let settings = Settings::from_env().map_err(exit_with(USAGE))?;
    let traces = telemetry::init_with_traces(settings.log_format, settings.traces.as_ref())
        .map_err(exit_with(USAGE))?;
    if let Some(path) = env_file {
        tracing::info!(path = %path.display(), "loaded settings from .env file");
    }
    let shutdown_timeout = settings.shutdown_timeout;
    let app = Application::build(settings).await.map_err(exit_with(1))?;
    let outcome = app.run_until_stopped().await;
    // In-flight requests are done: export what they left queued, within the same budget.
    if let Some(traces) = traces {
        traces.shutdown(shutdown_timeout);
    }
    outcome.map_err(exit_with(1))
}

/// What `--help` prints: what the binary is, how to run it, and every setting with its default.
fn help() -> String {
    format!(
        "upstash-sessions {version}: {description}\n\
         \n\
         Usage: upstash-sessions [--help | --version]\n\
         \n\
         Serves the session API (POST /login/, GET /profile/, ...; /docs/ shows it) on HOST:PORT.\n\
         /login/ trusts its caller: put your own identity check in front of it.\n\
         \n\
         Settings come from environment variables, or from a .env file in the working\n\
         directory (variables already set win). Without UPSTASH_REDIS_REST_URL and\n\
         UPSTASH_REDIS_REST_TOKEN sessions live in this process's memory.\n\
         \n\
         {variables}",
        version = env!("CARGO_PKG_VERSION"),
        description = env!("CARGO_PKG_DESCRIPTION"),
        variables = settings::describe_variables(),
    )
}
