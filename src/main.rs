//! The `upstash-sessions` binary: read settings, start logging (and traces when `OTEL_*` asks
//! for them), serve until SIGTERM/SIGINT, then flush the traces.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use upstash_sessions::{settings::Settings, startup::Application, telemetry};

#[actix_web::main]
async fn main() -> ExitCode {
    let env_file = match settings::load_dotenv() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("upstash-sessions: {error}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("upstash-sessions: {error}");
            return ExitCode::from(2);
        }
    };
    let traces = match telemetry::init_with_traces(settings.log_format, settings.traces.as_ref()) {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("upstash-sessions: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = env_file {
        tracing::info!(path = %path.display(), "loaded settings from .env file");
    }
    let shutdown_timeout = settings.shutdown_timeout;
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("upstash-sessions: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = app.run_until_stopped().await;
    // In-flight requests are done: export what they left queued, within the same budget.
    if let Some(traces) = traces {
        traces.shutdown(shutdown_timeout);
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("upstash-sessions: {error}");
            ExitCode::from(1)
        }
    }
}

use upstash_sessions::settings;
