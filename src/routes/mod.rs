//! HTTP routes. [`configure`] mounts every endpoint on an Actix-web `App` or scope; each
//! answers with and without its trailing slash, and any other path or method gets a JSON
//! error.

mod error;
pub mod health;
pub mod request_id;
pub mod sessions;

use std::borrow::Cow;

use actix_web::{
    guard::{self, GuardContext},
    http::{header, StatusCode},
    web, HttpResponse,
};

pub use error::{json_error, ApiError, ErrorBody, StoreFailure};

/// Largest accepted JSON body, in bytes, beyond the session data it may carry (a login's
/// or a `PATCH /profile/`'s body may be `SESSION_DATA_MAX_BYTES` more).
pub const MAX_BODY_BYTES: usize = 4096;

/// Mounts the session routes and probes. Needs `web::Data<SessionManager>` on the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(json_error),
    )
    .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::RouteNotFound.into()));
    // One static resource per spelling (with and without the slash): a resource with two
    // patterns is matched through a regex set, which costs on every request. The hot
    // `/profile/` comes first.
    both_spellings(cfg, "/profile/", |r| {
        r.route(web::get().to(sessions::profile))
            .route(
                web::patch()
                    .guard(guard::fn_guard(is_merge_patch))
                    .to(sessions::patch_profile),
            )
            .route(web::patch().to(unsupported_patch_type))
    });
    both_spellings(cfg, "/login/", |r| {
        r.route(
            web::post()
                .guard(guard::fn_guard(is_json))
                .to(sessions::login),
        )
        .route(web::post().to(unsupported_media_type))
    });
    both_spellings(cfg, "/logout/", |r| {
        r.route(web::post().to(sessions::logout))
    });
    both_spellings(cfg, "/logout/all/", |r| {
        r.route(web::post().to(sessions::logout_all))
    });
    both_spellings(cfg, "/sessions/", |r| {
        r.route(web::get().to(sessions::list))
    });
    both_spellings(cfg, "/sessions/{session_id}/", |r| {
        r.route(web::delete().to(sessions::end_one))
    });
    cfg.service(health::healthz).service(health::readyz);
}

/// The paths [`configure`] serves with and without their trailing slash.
const BOTH_SPELLINGS: [&str; 6] = [
    "/profile",
    "/login",
    "/logout",
    "/logout/all",
    "/sessions",
    "/sessions/{session_id}",
];

/// The metrics `endpoint` label of a matched route pattern: the slash-less spelling of a
/// route counts as its slashed one, so each route is one series.
pub fn endpoint_label(pattern: &str) -> Cow<'_, str> {
    if BOTH_SPELLINGS.iter().any(|p| pattern.ends_with(p)) {
        Cow::Owned(format!("{pattern}/"))
    } else {
        Cow::Borrowed(pattern)
    }
}

/// Registers `path` (ending in `/`) and the same path without its trailing slash, each as
/// its own resource built by `routes`, with a JSON 405 for other methods.
fn both_spellings(
    cfg: &mut web::ServiceConfig,
    path: &str,
    routes: impl Fn(actix_web::Resource) -> actix_web::Resource,
) {
    for spelling in [path, path.trim_end_matches('/')] {
        cfg.service(routes(web::resource(spelling)).default_service(web::to(method_not_allowed)));
    }
}

/// Whether the request body is declared as exactly `application/json` (parameters such as
/// `charset` allowed). actix's JSON extractor also takes `text/json` and `*/*+json`; login
/// must not, so that no cross-site form or unusual type can log a browser in.
fn is_json(ctx: &GuardContext<'_>) -> bool {
    ctx.head()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a `PATCH` body is declared as `application/merge-patch+json` (RFC 7396) or
/// `application/json`, parameters allowed.
fn is_merge_patch(ctx: &GuardContext<'_>) -> bool {
    ctx.head()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/merge-patch+json")
                || mime.eq_ignore_ascii_case("application/json")
        })
}

/// `PATCH /profile/` with another content type.
async fn unsupported_patch_type() -> Result<HttpResponse, ApiError> {
    Err(ApiError::BadBody {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: "Content-Type must be application/merge-patch+json or application/json".to_owned(),
    })
}

/// Login with a body that is not `application/json`.
async fn unsupported_media_type() -> Result<HttpResponse, ApiError> {
    Err(ApiError::BadBody {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: "Content-Type must be application/json".to_owned(),
    })
}

/// Fallback for a known path with another method.
async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Fallback for unknown paths: JSON 404, never an HTML page.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

/// Headers every response carries: nothing here may be cached, nor sniffed.
pub fn default_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}
