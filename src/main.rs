//! The `upstash-sessions` binary: read settings, start logging, serve until SIGTERM/SIGINT.
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
    telemetry::init(settings.log_format);
    if let Some(path) = env_file {
        tracing::info!(path = %path.display(), "loaded settings from .env file");
    }
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("upstash-sessions: {error}");
            return ExitCode::from(1);
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("upstash-sessions: {error}");
            ExitCode::from(1)
        }
    }
}

use upstash_sessions::settings;
