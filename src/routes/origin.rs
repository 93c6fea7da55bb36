//! Browsers on other origins: CORS for the origins in `CORS_ALLOWED_ORIGINS` (off when it is
//! empty), and the cross-site request forgery guard, which is always on.
//!
//! **The guard.** A state-changing request (any method but `GET`, `HEAD`, `OPTIONS` and
//! `TRACE`; in practice `POST`, `PATCH`, `DELETE`) is refused with a JSON `403`, before any
//! route runs and so before any store request, when its `Origin` is neither the service's own
//! nor an allowed one, or, without `Origin`, when it carries `Sec-Fetch-Site: cross-site`.
//! Requests with neither header (curl, server-to-server calls) pass: only browsers send a
//! victim's cookies on someone else's behalf, and browsers send `Origin` on every such request.
//! This holds whatever `COOKIE_SAMESITE` says, so `none` (where the browser no longer holds
//! the cookie back) stays safe.
//!
//! **The service's own origin** is `PUBLIC_ORIGIN` when set. Otherwise it is read from each
//! request as actix-web's connection info gives it: scheme and host from `Forwarded` or
//! `X-Forwarded-Proto`/`X-Forwarded-Host` when present, else the connection and the `Host`
//! header. A page cannot forge these on a browser's cross-origin request (`Host` is the
//! browser's own, and a custom header makes the browser ask the preflight, which an origin
//! not allowed never passes), so trusting them costs nothing; behind a proxy that rewrites
//! `Host` and passes no forwarded headers, set `PUBLIC_ORIGIN`.
//!
//! **CORS.** With allowed origins, every response carries `Vary: Origin`; a request from an
//! allowed origin gets `Access-Control-Allow-Origin: <that origin>` and
//! `Access-Control-Allow-Credentials: true`, and a preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) answered by a route also gets the route's methods (its
//! `Allow`), the headers a client may send, and `Access-Control-Max-Age`.
//!
//! With no allowed origins, `GET` and `HEAD` pass through untouched: no allocation, no
//! header work (the hot `GET /profile/` pays one method comparison).
//!
//! Not actix-cors: the guard needs the same origin list and must run before any route, and
//! a preflight here answers with the route's own `Allow` rather than one fixed method list.

use std::rc::Rc;

use actix_web::{
    body::BoxBody,
    dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform},
    http::{
        header::{self, HeaderMap, HeaderValue},
        Method,
    },
    Error, ResponseError,
};
use futures_util::future::{ready, Either, LocalBoxFuture, Ready};

use super::ApiError;

/// How long a browser may cache a preflight answer, in seconds (Chromium caps it at 7200).
pub const PREFLIGHT_MAX_AGE_SECONDS: u32 = 7200;

/// Request headers a cross-origin page may send (`Content-Type: application/json` makes a
/// login a preflighted request).
const ALLOWED_REQUEST_HEADERS: &str = "content-type, x-request-id";

/// Response headers a cross-origin page may read besides the CORS-safelisted ones.
const EXPOSED_HEADERS: &str = "x-request-id, retry-after, allow";

/// The origins the service trusts, as middleware (`App::wrap`). Wrap it innermost, so the
/// response headers and the request id middleware see its refusals.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Exact origins (`scheme://host[:port]`, lowercase, as browsers send them) allowed to
    /// make credentialed cross-origin requests.
    allowed: Rc<[HeaderValue]>,
    /// The service's own origin, when configured (`PUBLIC_ORIGIN`).
    public_origin: Option<HeaderValue>,
}

impl OriginPolicy {
    /// A policy from the settings' normalized origins (see `settings::parse_origin`).
    pub fn new(allowed: &[String], public_origin: Option<&str>) -> Self {
        Self {
            allowed: allowed
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
            public_origin: public_origin.and_then(|o| HeaderValue::from_str(o).ok()),
        }
    }

    fn cors_on(&self) -> bool {
        !self.allowed.is_empty()
    }

    fn is_allowed(&self, origin: &HeaderValue) -> bool {
        self.allowed.iter().any(|a| a == origin)
    }

    /// Whether a state-changing request may go on.
    fn permits(&self, req: &ServiceRequest) -> bool {
        match req.headers().get(header::ORIGIN) {
            Some(origin) => self.is_allowed(origin) || self.is_own(origin, req),
            None => req
                .headers()
                .get("sec-fetch-site")
                .is_none_or(|site| site != "cross-site"),
        }
    }

    /// Whether `origin` is the service's own.
    fn is_own(&self, origin: &HeaderValue, req: &ServiceRequest) -> bool {
        if let Some(own) = &self.public_origin {
            return origin == own;
        }
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let info = req.connection_info();
        same_origin(origin, info.scheme(), info.host())
    }

    /// Adds the CORS headers for a request from `origin` to `headers`.
    fn decorate(&self, origin: Option<&HeaderValue>, preflight: bool, headers: &mut HeaderMap) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = origin.filter(|o| self.is_allowed(o)) else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if preflight {
            if let Some(allow) = headers.get(header::ALLOW).cloned() {
                headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, allow);
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOWED_REQUEST_HEADERS),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from(PREFLIGHT_MAX_AGE_SECONDS),
                );
            }
        } else {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }
}

/// Whether the serialized `origin` is `scheme://host`, ignoring ASCII case and a default port
/// on either side.
fn same_origin(origin: &str, scheme: &str, host: &str) -> bool {
    let Some((origin_scheme, origin_host)) = origin.split_once("://") else {
        return false;
    };
    let strip = |host: &'_ str| -> String {
        let host = host.to_ascii_lowercase();
        let default = if scheme.eq_ignore_ascii_case("https") {
            ":443"
        } else {
            ":80"
        };
        host.strip_suffix(default)
            .map(str::to_owned)
            .unwrap_or(host)
    };
    origin_scheme.eq_ignore_ascii_case(scheme) && strip(origin_host) == strip(host)
}

/// Safe methods (RFC 9110): everything else may change state and is guarded.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl<S> Transform<S, ServiceRequest> for OriginPolicy
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = OriginPolicyService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(OriginPolicyService {
            service: Rc::new(service),
            policy: self.clone(),
        }))
    }
}

/// [`OriginPolicy`] around the app's routes.
pub struct OriginPolicyService<S> {
    service: Rc<S>,
    policy: OriginPolicy,
}

impl<S> Service<ServiceRequest> for OriginPolicyService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = Either<S::Future, LocalBoxFuture<'static, Result<Self::Response, Error>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let safe = is_safe(req.method());
        if safe && !self.policy.cors_on() {
            return Either::Left(self.service.call(req));
        }
        let policy = self.policy.clone();
        let service = Rc::clone(&self.service);
        Either::Right(Box::pin(async move {
            let origin = req.headers().get(header::ORIGIN).cloned();
            let preflight = req.method() == Method::OPTIONS
                && req
                    .headers()
                    .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            let mut response = if !safe && !policy.permits(&req) {
                tracing::info!(
                    origin = origin.as_ref().and_then(|o| o.to_str().ok()).unwrap_or("-"),
                    "cross-site request refused"
                );
                req.into_response(ApiError::CrossSiteRequest.error_response())
            } else {
                service.call(req).await?
            };
            if policy.cors_on() {
                policy.decorate(
                    origin.as_ref(),
                    preflight && response.status().is_success(),
                    response.headers_mut(),
                );
            }
            Ok(response)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_ignores_case_and_default_ports_but_not_scheme_or_port() {
        assert!(same_origin(
            "http://localhost:8000",
            "http",
            "localhost:8000"
        ));
        assert!(same_origin(
            "https://auth.example.com",
            "https",
            "Auth.Example.com:443"
        ));
        assert!(same_origin(
            "http://auth.example.com:80",
            "http",
            "auth.example.com"
        ));
        assert!(!same_origin(
            "http://auth.example.com",
            "https",
            "auth.example.com"
        ));
        assert!(!same_origin(
            "https://auth.example.com:8443",
            "https",
            "auth.example.com"
        ));
        assert!(!same_origin(
            "https://evil.example",
            "https",
            "auth.example.com"
        ));
        assert!(!same_origin("null", "https", "auth.example.com"));
    }

    #[test]
    fn only_get_head_options_and_trace_are_safe() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe(&m), "{m}");
        }
        for m in [Method::POST, Method::PATCH, Method::DELETE, Method::PUT] {
            assert!(!is_safe(&m), "{m}");
        }
    }
}
