//! An ordinary actix-web app on actix-session, its sessions kept in Upstash through
//! `UpstashSessionStore`: it counts visits and logs a user in and out.
//!
//! ```sh
//! UPSTASH_REDIS_REST_URL=https://eu1-example.upstash.io UPSTASH_REDIS_REST_TOKEN=... \
//!   cargo run --features actix-session --example actix_session_upstash
//! curl -c jar -b jar http://127.0.0.1:8080/                   # {"user":null,"visits":1}
//! curl -c jar -b jar -X POST http://127.0.0.1:8080/login/alice # {"user":"alice"}
//! curl -c jar -b jar http://127.0.0.1:8080/                   # {"user":"alice","visits":2}
//! curl -c jar -b jar -X POST http://127.0.0.1:8080/logout      # {"user":null}
//! ```
//!
//! Settings: `UPSTASH_REDIS_REST_URL`, `UPSTASH_REDIS_REST_TOKEN`, `PORT` (8080; 0 picks a
//! free port, printed at start), and `SESSION_KEY`: at least 64 bytes that sign the cookies
//! (random per start when unset, which logs everybody out at each restart). Cookies are sent
//! without `Secure` so that the curl walk-through works over plain http; keep `Secure` in
//! production.
//!
//! The API tests compile this file as a module and drive [`configure`] and [`middleware`]
//! against a fake Upstash; the end-to-end script runs the built binary against
//! upstash-on-redis.

use std::time::Duration;

use actix_session::{config::PersistentSession, Session, SessionMiddleware};
use actix_web::{
    cookie::{time, Key},
    web, App, HttpResponse, HttpServer,
};
use upstash_sessions::{
    actix_session::UpstashSessionStore,
    upstash::{ClientConfig, UpstashClient},
};

/// `GET /` counts this session's visits and says who is logged in.
async fn visit(session: Session) -> actix_web::Result<HttpResponse> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    let user = session.get::<String>("user")?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "visits": visits, "user": user })))
}

/// `POST /login/{user}` logs `user` in, under a new session key (no session fixation).
async fn login(session: Session, user: web::Path<String>) -> actix_web::Result<HttpResponse> {
    session.renew();
    session.insert("user", user.as_str())?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user": user.as_str() })))
}

/// `POST /logout` ends the session: its key is deleted from Upstash.
async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().json(serde_json::json!({ "user": null }))
}

/// The app's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(visit))
        .route("/login/{user}", web::post().to(login))
        .route("/logout", web::post().to(logout));
}

/// The session middleware: state in Upstash, idle sessions end after 30 minutes.
pub fn middleware(store: UpstashSessionStore, key: Key) -> SessionMiddleware<UpstashSessionStore> {
    SessionMiddleware::builder(store, key)
        .cookie_secure(false)
        .session_lifecycle(PersistentSession::default().session_ttl(time::Duration::minutes(30)))
        .build()
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let url = var("UPSTASH_REDIS_REST_URL")?.parse()?;
    let token = var("UPSTASH_REDIS_REST_TOKEN")?;
    let port: u16 = std::env::var("PORT").map_or(Ok(8080), |p| p.parse())?;
    let key = match std::env::var("SESSION_KEY") {
        Ok(secret) => {
            Key::try_from(secret.as_bytes()).map_err(|_| "SESSION_KEY must be at least 64 bytes")?
        }
        Err(_) => Key::generate(),
    };
    let client = UpstashClient::new(ClientConfig::new(url, token, Duration::from_secs(3)))?;
    let store = UpstashSessionStore::new(client);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware(store.clone(), key.clone()))
            .configure(configure)
    })
    .bind(("127.0.0.1", port))?;
    // The bound address, also when PORT=0 let the system pick one.
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    server.run().await?;
    Ok(())
}
