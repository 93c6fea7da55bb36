//! actix-session + RedisSessionStore with the service's contract on the two hot routes:
//! `POST /login/` `{"username": ...}` creates a session (a fresh key, the cookie
//! `session_id`), `GET /profile/` returns it and extends its TTL (900 s) on every request,
//! 404 without one. Settings: `HOST`, `PORT`, `WORKERS`, `REDIS_URL`.

use actix_session::{
    config::{PersistentSession, TtlExtensionPolicy},
    storage::RedisSessionStore,
    Session, SessionMiddleware,
};
use actix_web::{
    cookie::{time::Duration, Key},
    web, App, HttpResponse, HttpServer,
};
use serde_json::{json, Value};

async fn login(session: Session, body: web::Json<Value>) -> HttpResponse {
    let Some(user) = body.get("username").and_then(Value::as_str) else {
        return HttpResponse::UnprocessableEntity().json(json!({"detail": "username is required"}));
    };
    session.renew();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if session.insert("user", user).is_err()
        || session.insert("status", "active").is_err()
        || session.insert("created_at", now).is_err()
    {
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok().json(json!({"message": "Logged in successfully"}))
}

async fn profile(session: Session) -> HttpResponse {
    match session.get::<String>("user") {
        Ok(Some(user)) => HttpResponse::Ok().json(json!({
            "session_data": {
                "user": user,
                "status": session.get::<String>("status").ok().flatten(),
                "created_at": session.get::<u64>("created_at").ok().flatten(),
            }
        })),
        _ => HttpResponse::NotFound().json(json!({"detail": "Session not found"})),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let store = RedisSessionStore::new(var("REDIS_URL", "redis://127.0.0.1:6379"))
        .await
        .map_err(|e| std::io::Error::other(format!("REDIS_URL: {e}")))?;
    let key = Key::generate();
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(
                SessionMiddleware::builder(store.clone(), key.clone())
                    .cookie_name("session_id".to_owned())
                    .cookie_secure(false)
                    .session_lifecycle(
                        PersistentSession::default()
                            .session_ttl(Duration::seconds(900))
                            .session_ttl_extension_policy(
                                if std::env::var("TTL_EXTENSION").as_deref() == Ok("state-changes")
                                {
                                    TtlExtensionPolicy::OnStateChanges
                                } else {
                                    TtlExtensionPolicy::OnEveryRequest
                                },
                            ),
                    )
                    .build(),
            )
            .route("/login/", web::post().to(login))
            .route("/profile/", web::get().to(profile))
            .route("/healthz", web::get().to(HttpResponse::Ok))
    });
    if let Ok(w) = var("WORKERS", "").parse() {
        server = server.workers(w);
    }
    server
        .bind((
            var("HOST", "127.0.0.1"),
            var("PORT", "8080").parse().unwrap_or(8080),
        ))?
        .run()
        .await
}
