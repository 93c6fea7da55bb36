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

#[cfg(test)]
mod tests {
    use super::*;

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
