//! Request ids: each request gets an `X-Request-Id` (kept from the request when it is a
//! sane token, else a fresh random one), a tracing span carrying it with the method and the
//! path (with session ids replaced by the route pattern), so every log line of the request
//! has it, and the same header on the response.

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

fn fresh() -> HeaderValue {
    let id = format!("{:032x}", rand::random::<u128>());
    // 32 hex digits are always a valid header value.
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("invalid"))
}

/// The path as logs may show it: the one route carrying a session id in its path is replaced
/// by its pattern (cheaper than matching every request against the route table), and an
/// over-long path is cut.
fn loggable_path(path: &str) -> &str {
    match path.strip_prefix("/sessions/") {
        Some(rest) if !rest.is_empty() && rest != "/" => "/sessions/{session_id}",
        _ => path.get(..200).unwrap_or(path),
    }
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
        route = loggable_path(req.path()),
    );
    let mut response = next.call(req).instrument(span).await?;
    response.headers_mut().insert(X_REQUEST_ID, id);
    Ok(response)
}
