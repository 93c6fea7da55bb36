//! Request ids: each request gets an `X-Request-Id` (kept from the request when it is a
//! sane token, else a fresh random one), a tracing span carrying it with the method and the
//! path (with session ids replaced by the route pattern), so every log line of the request
//! has it, and the same header on the response. With traces on, the request also gets its
//! OpenTelemetry server span (`crate::traces::server_span`), continuing the caller's trace.
//!
//! Hand-written: the standard crate for this (tower-http's request-id layer) is for tower
//! services, not actix-web middleware, and checking the caller's id and opening the span
//! are the whole job.

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
    Error,
};
use tracing::Instrument;

/// The header name.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller-supplied id is kept when it is 1 to 128 visible ASCII characters.
fn accept(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// 128 random bits as 32 lowercase hex digits, written straight into the header's bytes.
fn fresh() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::random::<u128>();
    let mut id = [0u8; 32];
    for (i, digit) in id.iter_mut().enumerate() {
        *digit = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    // 32 hex digits are always a valid header value.
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("invalid"))
}

/// The path as logs may show it: any segment that could carry a session id (36 characters,
/// or percent-encoded, which the router decodes) is replaced by `{session_id}`, wherever the
/// routes are mounted (`/sessions/<id>` or `/auth/sessions/<id>`), and an over-long path is
/// cut. Allocates only when something is replaced.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    let path = path.get(..200).unwrap_or(path);
    let risky = |segment: &str| segment.len() == 36 || segment.contains('%');
    if !path.split('/').any(risky) {
        return std::borrow::Cow::Borrowed(path);
    }
    let masked: Vec<&str> = path
        .split('/')
        .map(|segment| {
            if risky(segment) {
                "{session_id}"
            } else {
                segment
            }
        })
        .collect();
    std::borrow::Cow::Owned(masked.join("/"))
}

/// The middleware (use with `actix_web::middleware::from_fn`).
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = match req.headers().get(X_REQUEST_ID) {
        Some(value) if accept(value) => value.clone(),
        _ => fresh(),
    };
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or(""),
        method = %req.method(),
        route = &*loggable_path(req.path()),
    );
    if !crate::traces::enabled() {
        let mut response = next.call(req).instrument(span).await?;
        response.headers_mut().insert(X_REQUEST_ID, id);
        return Ok(response);
    }
    // Traces on: the server span (seen only by the trace layer) around the log span.
    let server = crate::traces::server_span(&req, id.to_str().unwrap_or(""));
    let outcome = next
        .call(req)
        .instrument(span)
        .instrument(server.clone())
        .await;
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    crate::traces::record_status(&server, status.as_u16());
    let mut response = outcome?;
    response.headers_mut().insert(X_REQUEST_ID, id);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_never_reach_the_logged_path_wherever_the_routes_are_mounted() {
        let id = "6f9619ff-8b86-4011-b42d-00cf4fc964ff";
        for (path, logged) in [
            (
                format!("/sessions/{id}"),
                "/sessions/{session_id}".to_owned(),
            ),
            (
                format!("/sessions/{id}/"),
                "/sessions/{session_id}/".to_owned(),
            ),
            (
                format!("/auth/sessions/{id}"),
                "/auth/sessions/{session_id}".to_owned(),
            ),
            (
                format!("/%73essions/{id}"),
                "/{session_id}/{session_id}".to_owned(),
            ),
            ("/profile/".to_owned(), "/profile/".to_owned()),
        ] {
            assert_eq!(loggable_path(&path), logged);
        }
        assert!(matches!(
            loggable_path("/login/"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn fresh_ids_are_32_lowercase_hex_digits_and_differ() {
        let a = fresh();
        let b = fresh();
        assert_ne!(a, b);
        for id in [a, b] {
            let text = id.to_str().unwrap();
            assert_eq!(text.len(), 32);
            assert!(text
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            assert!(accept(&id));
        }
    }
}
