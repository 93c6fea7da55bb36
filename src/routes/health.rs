//! Liveness and readiness probes for load balancers and orchestrators.

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use super::ApiError;
use crate::session::SessionManager;

/// `GET /healthz`: the process is up and serving.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store answers a `PING` within the deadline (always, for memory).
#[get("/readyz")]
pub async fn readyz(sessions: web::Data<SessionManager>) -> Result<HttpResponse, ApiError> {
    sessions.ping().await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "store": sessions.store().backend()})))
}
