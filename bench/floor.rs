//! The floor under the service's cost per request, for `bench/bench.py --floor`.
//!
//! A bare actix-web server with none of the service's logic: `GET /profile/` answers the
//! same status, headers and body size as the service's profile, from constants. With
//! `FLOOR_UPSTREAM_URL` set, each profile first sends one `GETEX` to that Upstash REST URL
//! through reqwest (a per-worker client, the request the service sends, no pipelining) and
//! only then answers: the floor of "actix-web plus one REST round trip". Whatever the service
//! spends above these two rows is its own code: cookies, sessions, middleware, JSON.
//!
//! `POST /login/` answers a constant cookie so the benchmark's login step works unchanged.
//! Settings: `HOST`, `PORT`, `WORKERS`, `FLOOR_UPSTREAM_URL`, `FLOOR_UPSTREAM_TOKEN`.

use actix_web::{http::header, web, App, HttpResponse, HttpServer};

const COOKIE: &str = "session_id=00000000-0000-4000-8000-000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; HttpOnly; SameSite=Lax; Path=/; Max-Age=900";
const PROFILE: &str = r#"{"session_id":"00000000-0000-4000-8000-000000000000","session_data":{"user":"bench","status":"active","created_at":1795636498,"absolute_expires_at":1795679699}}"#;

struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: String,
}

fn answer() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, COOKIE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header(("x-request-id", "00000000000000000000000000000000"))
        .content_type("application/json")
        .body(PROFILE)
}

async fn profile(upstream: web::Data<Option<Upstream>>) -> HttpResponse {
    if let Some(up) = upstream.get_ref() {
        let sent = up
            .client
            .post(up.url.clone())
            .header("authorization", &up.auth)
            .header("content-type", "application/json")
            .header("upstash-encoding", "base64")
            .body(r#"["GETEX","session:floor","EX","900"]"#)
            .send()
            .await;
        let ok = match sent {
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        };
        if !ok {
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    answer()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let upstream_url = std::env::var("FLOOR_UPSTREAM_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| reqwest::Url::parse(&u))
        .transpose()
        .map_err(|e| std::io::Error::other(format!("FLOOR_UPSTREAM_URL: {e}")))?;
    let token = std::env::var("FLOOR_UPSTREAM_TOKEN").unwrap_or_default();
    let mut server = HttpServer::new(move || {
        // One reqwest client per worker, as the service keeps one pool per worker thread.
        let upstream = upstream_url.clone().map(|url| Upstream {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .tcp_nodelay(true)
                .build()
                .unwrap_or_default(),
            url,
            auth: format!("Bearer {token}"),
        });
        App::new()
            .app_data(web::Data::new(upstream))
            .route("/profile/", web::get().to(profile))
            .route("/healthz", web::get().to(HttpResponse::Ok))
            .route(
                "/login/",
                web::post().to(|| async {
                    HttpResponse::Ok()
                        .insert_header((header::SET_COOKIE, COOKIE))
                        .json(serde_json::json!({"message": "Logged in successfully"}))
                }),
            )
    });
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        server = server.workers(workers);
    }
    server.bind((host.as_str(), port))?.run().await
}
