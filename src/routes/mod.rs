//! HTTP routes. [`configure`] mounts every endpoint on an Actix-web `App` or scope; each
//! answers with and without its trailing slash, `HEAD` wherever `GET`, `OPTIONS` everywhere,
//! any other method a JSON `405` with `Allow` ([`Endpoint`]), and any other path a JSON
//! `404`.

mod error;
pub mod health;
pub mod origin;
pub mod request_id;
pub mod sessions;
pub mod unread_body;

use std::{borrow::Cow, time::Duration};

use actix_web::{
    guard::{self, GuardContext},
    http::{
        header::{self, HeaderValue},
        Method, StatusCode,
    },
    web, HttpRequest, HttpResponse, ResponseError,
};

use crate::ratelimit::{ClientLimits, Limit};

pub use error::{ApiError, ErrorBody, StoreFailure, TooManyRequests};
pub use origin::OriginPolicy;
pub use unread_body::CloseUnreadBodies;

/// Largest accepted JSON body, in bytes, beyond the session data it may carry (a login's
/// or a `PATCH /profile/`'s body may be `SESSION_DATA_MAX_BYTES` more).
pub const MAX_BODY_BYTES: usize = 4096;

/// Default of [`BodyTimeout`] (`REQUEST_BODY_TIMEOUT_MS`).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request body may take to arrive in full, counted from when its handler starts
/// reading it; past it the request is answered `408` and its connection closed, and nothing
/// is stored. Put it on the app with `App::app_data`; without it, [`DEFAULT_BODY_TIMEOUT`].
///
/// actix-web bounds only the request head (`client_request_timeout`) and has no hook for the
/// body, so the handlers that read one (login, `PATCH /profile/`) bound the read themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

impl Default for BodyTimeout {
    fn default() -> Self {
        Self(DEFAULT_BODY_TIMEOUT)
    }
}

/// Mounts the session routes and probes. Needs `web::Data<SessionManager>` on the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Bodies are read by the handlers themselves (their limit grows with the data limit).
    cfg.app_data(web::PathConfig::default().error_handler(|_, _| ApiError::RouteNotFound.into()));
    // One static resource per spelling (with and without the slash): a resource with two
    // patterns is matched through a regex set, which costs on every request. The hot
    // `/profile/` comes first.
    both_spellings(cfg, "/profile/", |e| {
        e.route(Method::GET, |r| r.to(sessions::profile))
            .route(Method::PATCH, |r| {
                r.guard(guard::fn_guard(is_merge_patch))
                    .to(sessions::patch_profile)
            })
            .route(Method::PATCH, |r| r.to(unsupported_patch_type))
    });
    both_spellings(cfg, "/login/", |e| {
        e.route(Method::POST, |r| {
            r.guard(guard::fn_guard(is_json)).to(sessions::login)
        })
        .route(Method::POST, |r| r.to(unsupported_media_type))
    });
    both_spellings(cfg, "/logout/", |e| {
        e.route(Method::POST, |r| r.to(sessions::logout))
    });
    both_spellings(cfg, "/logout/all/", |e| {
        e.route(Method::POST, |r| r.to(sessions::logout_all))
    });
    both_spellings(cfg, "/sessions/", |e| {
        e.route(Method::GET, |r| r.to(sessions::list))
    });
    both_spellings(cfg, "/sessions/{session_id}/", |e| {
        e.route(Method::DELETE, |r| r.to(sessions::end_one))
    });
    cfg.service(
        Endpoint::new("/healthz")
            .route(Method::GET, |r| r.to(health::healthz))
            .finish(),
    )
    .service(
        Endpoint::new("/readyz")
            .route(Method::GET, |r| r.to(health::readyz))
            .finish(),
    );
}

/// The paths [`configure`] serves with and without their trailing slash, each spelled as
/// the API documents it (`/sessions/{session_id}` without the slash, the others with it).
const DOCUMENTED: [&str; 6] = [
    "/profile/",
    "/login/",
    "/logout/",
    "/logout/all/",
    "/sessions/",
    "/sessions/{session_id}",
];

/// The metrics `endpoint` label of a matched route pattern: both spellings of a route count
/// as the one the API documents, so each route is one series under the name a reader
/// looks for.
pub fn endpoint_label(pattern: &str) -> Cow<'_, str> {
    let bare = pattern.strip_suffix('/').unwrap_or(pattern);
    for documented in DOCUMENTED {
        let documented_bare = documented.trim_end_matches('/');
        if let Some(scope) = bare.strip_suffix(documented_bare) {
            if scope.len() + documented.len() == pattern.len() && pattern.ends_with(documented) {
                return Cow::Borrowed(pattern);
            }
            return Cow::Owned(format!("{scope}{documented}"));
        }
    }
    Cow::Borrowed(pattern)
}

/// Registers `path` (ending in `/`) and the same path without its trailing slash, each as
/// its own [`Endpoint`] built by `routes`.
fn both_spellings(cfg: &mut web::ServiceConfig, path: &str, routes: impl Fn(Endpoint) -> Endpoint) {
    for spelling in [path, path.trim_end_matches('/')] {
        cfg.service(routes(Endpoint::new(spelling)).finish());
    }
}

/// One path and the methods it serves, speaking HTTP's method rules for it: a `GET` route
/// also answers `HEAD` (same handler: same status, headers, cost and cookie; actix-web sends
/// no body), `OPTIONS` answers `204` with `Allow`, and any other method gets a JSON `405`
/// with `Allow`. `Allow` is derived from the routes added, so a new method on a path is
/// one [`Endpoint::route`] call.
pub struct Endpoint {
    resource: actix_web::Resource,
    methods: Vec<Method>,
}

impl Endpoint {
    /// A path with no methods yet.
    pub fn new(path: &str) -> Self {
        Self {
            resource: web::resource(path),
            methods: Vec::new(),
        }
    }

    /// Serves `method` with the route `build` makes from a route that matches `method` only
    /// (add guards and the handler). Several routes may serve one method; the first whose
    /// guards pass answers. A `GET` route is added for `HEAD` too.
    pub fn route(
        mut self,
        method: Method,
        build: impl Fn(actix_web::Route) -> actix_web::Route,
    ) -> Self {
        let mut add = |m: Method| {
            self.resource = std::mem::replace(&mut self.resource, web::resource(""))
                .route(build(web::route().guard(MethodIs(m.clone()))));
            if !self.methods.contains(&m) {
                self.methods.push(m);
            }
        };
        add(method.clone());
        if method == Method::GET {
            add(Method::HEAD);
        }
        self
    }

    /// The `Allow` header value: the methods served, then `OPTIONS`.
    pub fn allow(&self) -> HeaderValue {
        let mut allow = String::new();
        for method in self.methods.iter().chain([&Method::OPTIONS]) {
            if !allow.is_empty() {
                allow.push_str(", ");
            }
            allow.push_str(method.as_str());
        }
        HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("OPTIONS"))
    }

    /// The resource, with `OPTIONS` and the `405` for every other method.
    pub fn finish(self) -> actix_web::Resource {
        let allow = self.allow();
        let options = allow.clone();
        self.resource
            .route(web::route().guard(MethodIs(Method::OPTIONS)).to(move || {
                let allow = options.clone();
                async move {
                    HttpResponse::NoContent()
                        .insert_header((header::ALLOW, allow))
                        .finish()
                }
            }))
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move {
                    let mut response = ApiError::MethodNotAllowed.error_response();
                    response.headers_mut().insert(header::ALLOW, allow);
                    response
                }
            }))
    }
}

/// Matches one method. Unlike actix-web's own method guard, it does not record the method in
/// the request's extensions (an allocation on every request); [`Endpoint`] knows `Allow`
/// already.
struct MethodIs(Method);

impl guard::Guard for MethodIs {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.head().method == self.0
    }
}

/// Whether the request body is declared as exactly `application/json` (parameters such as
/// `charset` allowed). actix's JSON extractor also takes `text/json` and `*/*+json`; login
/// must not, so that no cross-site form or unusual type can log a browser in.
fn is_json(ctx: &GuardContext<'_>) -> bool {
    content_type_is(ctx, &["application/json"])
}

/// Whether a `PATCH` body is declared as `application/merge-patch+json` (RFC 7396) or
/// `application/json`, parameters allowed.
fn is_merge_patch(ctx: &GuardContext<'_>) -> bool {
    content_type_is(ctx, &["application/merge-patch+json", "application/json"])
}

/// Whether the request's `Content-Type`, without its parameters, is one of `types`.
fn content_type_is(ctx: &GuardContext<'_>, types: &[&str]) -> bool {
    ctx.head()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| types.iter().any(|t| mime.trim().eq_ignore_ascii_case(t)))
}

/// `PATCH /profile/` with another content type.
async fn unsupported_patch_type() -> Result<HttpResponse, ApiError> {
    Err(unsupported_type(
        "Content-Type must be application/merge-patch+json or application/json",
    ))
}

/// Login with a body that is not `application/json`.
async fn unsupported_media_type() -> Result<HttpResponse, ApiError> {
    Err(unsupported_type("Content-Type must be application/json"))
}

fn unsupported_type(message: &str) -> ApiError {
    ApiError::BadBody {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: message.to_owned(),
    }
}

/// Refuses the request with 429 when its client address is over `limit` (the app's
/// `web::Data<ClientLimits>`; without one, nothing is limited). Called first by every handler
/// that may reach the store, so a refusal costs no store command.
fn rate_limit(req: &HttpRequest, limit: Limit) -> Result<(), ApiError> {
    match req.app_data::<web::Data<ClientLimits>>() {
        Some(limits) => Ok(limits.check(limit, req.peer_addr().map(|a| a.ip()), req.headers())?),
        None => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_a_route_get_the_documented_label() {
        for (pattern, label) in [
            ("/profile/", "/profile/"),
            ("/profile", "/profile/"),
            ("/logout/all", "/logout/all/"),
            ("/sessions", "/sessions/"),
            ("/sessions/{session_id}", "/sessions/{session_id}"),
            ("/sessions/{session_id}/", "/sessions/{session_id}"),
            (
                "/auth/sessions/{session_id}/",
                "/auth/sessions/{session_id}",
            ),
            ("/auth/login", "/auth/login/"),
            ("/healthz", "/healthz"),
            ("/docs/{file:.*}", "/docs/{file:.*}"),
        ] {
            assert_eq!(endpoint_label(pattern), label, "{pattern}");
        }
        assert!(matches!(endpoint_label("/profile/"), Cow::Borrowed(_)));
    }
}
