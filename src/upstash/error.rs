//! The Upstash client's error type, classified for retries and for mapping to HTTP upstream.

use std::{sync::Arc, time::Duration};

/// Why an Upstash call failed. Texts from Upstash are kept for logs; callers must not show
/// them to end users. Cloneable, so one failed pipeline can fail each of its callers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstashError {
    /// Connecting, sending or reading failed (refused, reset, DNS, TLS); the message starts
    /// with the cause in a few words (unknown CA, expired certificate, reset, ...).
    #[error("could not reach Upstash ({})", transport_cause(.0).text())]
    Transport(#[source] Arc<reqwest::Error>),
    /// The call did not finish within its deadline (all attempts included).
    #[error("Upstash did not answer within {0:?}")]
    Timeout(Duration),
    /// HTTP 401: the token is wrong or missing (`UPSTASH_REDIS_REST_TOKEN`).
    #[error("Upstash rejected the token (HTTP 401): {0}")]
    Unauthorized(String),
    /// HTTP 429, with the `Retry-After` delay when the server gave one.
    #[error("Upstash is rate limiting (HTTP 429): {message}")]
    RateLimited {
        /// Upstash's error text, or the start of the raw body.
        message: String,
        /// The `Retry-After` delay, when given.
        retry_after: Option<Duration>,
    },
    /// Any other non-2xx status (5xx, 405...), with the error text or the raw body, and the
    /// `Retry-After` delay when the server gave one (e.g. a 503).
    #[error("Upstash answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// Upstash's error text, or the start of the raw body.
        message: String,
        /// The `Retry-After` delay, when given.
        retry_after: Option<Duration>,
    },
    /// A 2xx answer carrying `{"error": ...}` (a Redis error such as WRONGTYPE or a quota).
    #[error("Upstash command failed: {0}")]
    Command(String),
    /// The body was not JSON (an edge proxy's error page, a truncated answer): worth a retry.
    #[error("Upstash reply is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not the shape the REST API documents: a retry would get the same.
    #[error("Upstash reply is not valid: {0}")]
    Protocol(String),
    /// The reply body is larger than the client reads (`ClientConfig::max_reply_bytes`): no
    /// legitimate reply is, and a retry would read it again.
    #[error("Upstash reply is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The call's commands would pass the client's budget of commands per second
    /// (`ClientConfig::max_commands_per_second`): nothing was sent.
    #[error("the Upstash command budget of this instance is spent for now (nothing was sent; retry in {retry_after:?})")]
    OverBudget {
        /// How long until the commands would fit.
        retry_after: Duration,
    },
}

impl UpstashError {
    /// Whether another attempt of a retry-safe call may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A certificate the client does not accept stays so for the next attempt.
            UpstashError::Transport(e) => !matches!(transport_cause(e), Cause::Certificate(_)),
            UpstashError::Timeout(_)
            | UpstashError::RateLimited { .. }
            | UpstashError::NotJson(_) => true,
            UpstashError::Status { status, .. } => *status >= 500,
            UpstashError::Unauthorized(_)
            | UpstashError::Command(_)
            | UpstashError::Protocol(_)
            | UpstashError::TooLarge { .. }
            | UpstashError::OverBudget { .. } => false,
        }
    }

    /// A short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstashError::Transport(e) => match transport_cause(e) {
                Cause::Certificate(_) | Cause::Tls => "tls",
                _ => "transport",
            },
            UpstashError::Timeout(_) => "timeout",
            UpstashError::Unauthorized(_) => "unauthorized",
            UpstashError::RateLimited { .. } => "rate_limited",
            UpstashError::Status { status, .. } if *status >= 500 => "status_5xx",
            UpstashError::Status { .. } => "status_4xx",
            UpstashError::Command(_) => "command",
            UpstashError::NotJson(_) => "not_json",
            UpstashError::Protocol(_) => "protocol",
            UpstashError::TooLarge { .. } => "too_large",
            UpstashError::OverBudget { .. } => "over_budget",
        }
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstashError::RateLimited { retry_after, .. }
            | UpstashError::Status { retry_after, .. } => *retry_after,
            UpstashError::OverBudget { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// What went wrong on the wire, in a few words for the log line (the full error chain follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The server's certificate was refused; the text says why.
    Certificate(&'static str),
    /// Another TLS failure (an alert from the server, a protocol error).
    Tls,
    /// Connecting (TCP and TLS handshake) took longer than the connect timeout.
    ConnectTimeout,
    /// The connection was refused.
    Refused,
    /// The connection was reset, or closed before the answer was complete.
    Reset,
    /// Anything else (DNS, ...): the error chain says.
    Other,
}

impl Cause {
    /// The words used in the log line.
    pub fn text(self) -> &'static str {
        match self {
            Cause::Certificate(why) => why,
            Cause::Tls => "TLS handshake failed",
            Cause::ConnectTimeout => "connect or TLS handshake timed out",
            Cause::Refused => "connection refused",
            Cause::Reset => "connection reset or closed mid-answer",
            Cause::Other => "transport error",
        }
    }
}

/// Classifies a reqwest error by looking through its cause chain (rustls and I/O errors are
/// wrapped in `std::io::Error`s whose `source()` skips them, so those are opened too).
pub fn transport_cause(error: &reqwest::Error) -> Cause {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut io_kind = None;
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return tls_cause(tls);
        }
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => {
                if io.kind() != std::io::ErrorKind::Other {
                    io_kind = io_kind.or(Some(io.kind()));
                }
                match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                    None => std::error::Error::source(io),
                }
            }
            None => current.source(),
        };
    }
    if error.is_timeout() && error.is_connect() {
        return Cause::ConnectTimeout;
    }
    match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => Cause::Refused,
        Some(
            std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof,
        ) => Cause::Reset,
        _ if error.is_body() || error.is_request() && !error.is_connect() => Cause::Reset,
        _ => Cause::Other,
    }
}

fn tls_cause(error: &rustls::Error) -> Cause {
    use rustls::CertificateError as E;
    match error {
        rustls::Error::InvalidCertificate(e) => Cause::Certificate(match e {
            E::UnknownIssuer => "TLS: certificate signed by an unknown CA (set UPSTASH_CA_CERT to trust a private CA)",
            E::NotValidForName | E::NotValidForNameContext { .. } => {
                "TLS: certificate is for another host name"
            }
            E::Expired | E::ExpiredContext { .. } => "TLS: certificate expired",
            E::NotValidYet | E::NotValidYetContext { .. } => "TLS: certificate not valid yet",
            E::Revoked => "TLS: certificate revoked",
            _ => "TLS: certificate refused",
        }),
        _ => Cause::Tls,
    }
}
