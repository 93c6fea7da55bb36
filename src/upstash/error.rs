//! The Upstash client's error type, classified for retries and for mapping to HTTP upstream.

use std::{sync::Arc, time::Duration};

/// Why an Upstash call failed. Texts from Upstash are kept for logs; callers must not show
/// them to end users. Cloneable, so one failed pipeline can fail each of its callers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstashError {
    /// Connecting, sending or reading failed (refused, reset, DNS, TLS).
    #[error("could not reach Upstash: {0}")]
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
        message: String,
        retry_after: Option<Duration>,
    },
    /// Any other non-2xx status (5xx, 405...), with the error text or the raw body, and the
    /// `Retry-After` delay when the server gave one (e.g. a 503).
    #[error("Upstash answered HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
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
    TooLarge { limit: usize },
}

impl UpstashError {
    /// Whether another attempt of a retry-safe call may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstashError::Transport(_)
            | UpstashError::Timeout(_)
            | UpstashError::RateLimited { .. }
            | UpstashError::NotJson(_) => true,
            UpstashError::Status { status, .. } => *status >= 500,
            UpstashError::Unauthorized(_)
            | UpstashError::Command(_)
            | UpstashError::Protocol(_)
            | UpstashError::TooLarge { .. } => false,
        }
    }

    /// A short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstashError::Transport(_) => "transport",
            UpstashError::Timeout(_) => "timeout",
            UpstashError::Unauthorized(_) => "unauthorized",
            UpstashError::RateLimited { .. } => "rate_limited",
            UpstashError::Status { status, .. } if *status >= 500 => "status_5xx",
            UpstashError::Status { .. } => "status_4xx",
            UpstashError::Command(_) => "command",
            UpstashError::NotJson(_) => "not_json",
            UpstashError::Protocol(_) => "protocol",
            UpstashError::TooLarge { .. } => "too_large",
        }
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstashError::RateLimited { retry_after, .. }
            | UpstashError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
