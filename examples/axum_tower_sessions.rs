//! An ordinary axum app on tower-sessions, its sessions kept in Upstash through
//! `UpstashSessionStore`: it counts visits and logs a user in and out.
//!
//! ```sh
//! UPSTASH_REDIS_REST_URL=https://eu1-example.upstash.io UPSTASH_REDIS_REST_TOKEN=... \
//!   cargo run --features tower-sessions --example axum_tower_sessions
//! curl -c jar -b jar http://127.0.0.1:3000/                    # {"user":null,"visits":1}
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/login/alice # {"user":"alice"}
//! curl -c jar -b jar http://127.0.0.1:3000/                    # {"user":"alice","visits":2}
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/logout      # {"user":null}
//! ```
//!
//! Settings: `UPSTASH_REDIS_REST_URL`, `UPSTASH_REDIS_REST_TOKEN`, and `PORT` (3000; 0 picks a
//! free port). It prints `listening on http://127.0.0.1:<port>` once it accepts requests.
//! Cookies are sent without `Secure` so that the curl walk-through works over plain http;
//! keep `Secure` (tower-sessions' default) in production.
//!
//! The API tests compile this file as a module and drive [`app`] against a fake Upstash, and
//! run the built binary against upstash-on-redis (`scripts/e2e-store.sh`).

use std::time::Duration;

use axum::{extract::Path, http::StatusCode, routing::get, routing::post, Json, Router};
use serde_json::{json, Value};
use tower_sessions::{cookie::time, Expiry, Session, SessionManagerLayer};
use upstash_sessions::{
    tower_sessions::UpstashSessionStore,
    upstash::{ClientConfig, UpstashClient},
};

/// A store failure, as the user sees it: an empty 500 (the store's error is logged).
fn internal(_: tower_sessions::session::Error) -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

/// `GET /` counts this session's visits and says who is logged in.
async fn visit(session: Session) -> Result<Json<Value>, StatusCode> {
    let visits = session.get::<u64>("visits").await.map_err(internal)?;
    let visits = visits.unwrap_or(0) + 1;
    session.insert("visits", visits).await.map_err(internal)?;
    let user = session.get::<String>("user").await.map_err(internal)?;
    Ok(Json(json!({ "visits": visits, "user": user })))
}

/// `POST /login/{user}` logs `user` in, under a new session id (no session fixation).
async fn login(session: Session, Path(user): Path<String>) -> Result<Json<Value>, StatusCode> {
    session.cycle_id().await.map_err(internal)?;
    session.insert("user", &user).await.map_err(internal)?;
    Ok(Json(json!({ "user": user })))
}

/// `POST /logout` ends the session: its key is deleted from Upstash.
async fn logout(session: Session) -> Result<Json<Value>, StatusCode> {
    session.flush().await.map_err(internal)?;
    Ok(Json(json!({ "user": null })))
}

/// The app: its routes behind the session layer. Idle sessions end after 30 minutes.
pub fn app(store: UpstashSessionStore) -> Router {
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)));
    Router::new()
        .route("/", get(visit))
        .route("/login/{user}", post(login))
        .route("/logout", post(logout))
        .layer(sessions)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The store's failures are logged here (`tower_sessions_store_failed`); users get a 500.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let url = var("UPSTASH_REDIS_REST_URL")?.parse()?;
    let token = var("UPSTASH_REDIS_REST_TOKEN")?;
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;

    let client = UpstashClient::new(ClientConfig::new(url, token, Duration::from_secs(3)))?;
    let store = UpstashSessionStore::new(client);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(store)).await?;
    Ok(())
}
