//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa), served at
//! `/openapi.json`, with Swagger UI at `/docs/` from files vendored in a crate.

use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, SecurityScheme},
    Modify, OpenApi,
};

use crate::{
    routes::{health, sessions, ErrorBody},
    store::SessionData,
};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "upstash-sessions",
        description = "Server-side sessions kept in Upstash Redis over its REST API. The session \
                       cookie is set by `POST /login/`; a browser sends it back by itself, so \
                       \"Try it out\" works on every endpoint once you have logged in here \
                       (over plain http, run the service with COOKIE_SECURE=false)."
    ),
    paths(
        sessions::login,
        sessions::profile,
        sessions::patch_profile,
        sessions::logout,
        sessions::list,
        sessions::end_one,
        sessions::logout_all,
        health::healthz,
        health::readyz,
    ),
    components(schemas(
        sessions::LoginRequest,
        sessions::LoginResponse,
        sessions::ProfileResponse,
        sessions::DataPatch,
        sessions::MessageResponse,
        sessions::LogoutAllResponse,
        sessions::SessionSummary,
        sessions::SessionList,
        health::Health,
        SessionData,
        ErrorBody,
    )),
    modifiers(&SessionCookie),
    tags(
        (name = "sessions", description = "Log in, read the session, log out, and manage a user's sessions"),
        (name = "probes", description = "Liveness and readiness for load balancers"),
    )
)]
pub struct ApiDoc;

/// Declares the session cookie as the API's credential.
struct SessionCookie;

impl Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "session_cookie",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    "session_id",
                    "The signed session cookie set by POST /login/ (name set by COOKIE_NAME)",
                ))),
            );
        }
    }
}
