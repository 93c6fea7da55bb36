//! Liveness and readiness probes for load balancers and orchestrators.

use actix_web::{web, HttpResponse};

use super::ApiError;
use crate::session::SessionManager;

/// The body of `/healthz` and `/readyz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// "ok" or "ready".
    pub status: &'static str,
    /// The store backend ("memory" or "upstash"), on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
}

/// `GET /healthz`: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        store: None,
    })
}

/// `GET /readyz`: the store answers a `PING` within the deadline (always, for memory), from a
/// check at most a second old, so probes cost about one `PING` a second.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses(
    (status = 200, body = Health),
    super::StoreFailure,
))]
pub async fn readyz(sessions: web::Data<SessionManager>) -> Result<HttpResponse, ApiError> {
    sessions.ready().await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ready",
        store: Some(sessions.store().backend()),
    }))
}
