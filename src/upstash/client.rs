//! The HTTP side of the client: reqwest connection pools with keep-alive, the auth and
//! encoding headers, deadlines, retries with backoff and jitter, and the sync token.
//!
//! Each thread gets its own reqwest `Client` (pool): actix-web runs one single-threaded
//! runtime per worker, and a pooled connection's I/O task lives on the runtime that opened
//! it, so a pool shared between workers hands every request to another thread and back.
//! Per-thread pools keep a request and its connection on one thread. Everything else (the
//! sync token, metrics, configuration) is shared.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use rand::Rng;
use reqwest::{
    header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER},
    StatusCode, Url,
};
use thread_local::ThreadLocal;

use super::{
    command::Command,
    error::UpstashError,
    metrics::UpstashMetrics,
    reply::{error_message, parse_pipeline_body, parse_single_body, Reply},
};

const SYNC_TOKEN: &str = "upstash-sync-token";
const ENCODING: &str = "upstash-encoding";

/// How the client talks to Upstash. Its `Debug` output leaves the token out.
#[derive(Clone)]
pub struct ClientConfig {
    /// The REST URL, e.g. `https://eu1-example.upstash.io`.
    pub url: Url,
    /// The REST token (sent as `Authorization: Bearer`).
    pub token: String,
    /// Budget of one call, retries included.
    pub timeout: Duration,
    /// Budget of one attempt; a stalled attempt is abandoned and retried within `timeout`.
    pub attempt_timeout: Duration,
    /// Most attempts of one retry-safe call.
    pub max_attempts: u32,
    /// First backoff delay; doubled each retry, with equal jitter (half fixed, half random).
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Largest reply body read, in bytes; a larger one fails the call (not retried) before
    /// it is buffered whole.
    pub max_reply_bytes: usize,
}

/// Default of [`ClientConfig::max_reply_bytes`]: 8 MiB, four times a listing of 100 sessions
/// each holding 16 KiB of data, base64-encoded.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 8 << 20;

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url.as_str())
            .field("token", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Defaults derived from one total deadline: attempts of a third of it, up to 6 of them.
    pub fn new(url: Url, token: impl Into<String>, timeout: Duration) -> Self {
        Self {
            url,
            token: token.into(),
            timeout,
            attempt_timeout: (timeout / 3).max(Duration::from_millis(50)),
            max_attempts: 6,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        }
    }
}

/// Whether a call may be sent again after a failure whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Applying the call twice is harmless (GETEX, DEL, EXPIRE, GET, a checked SET NX).
    Idempotent,
    /// One attempt only.
    Once,
}

/// A client for one Upstash database. Cheap to share behind an `Arc`; it holds one
/// connection pool.
pub struct UpstashClient {
    /// One connection pool per thread (see the module docs).
    pools: ThreadLocal<reqwest::Client>,
    pub(super) root: Url,
    pub(super) pipeline: Url,
    multi_exec: Url,
    auth: HeaderValue,
    config: ClientConfig,
    /// The latest `upstash-sync-token` seen, sent back on every request.
    sync_token: Mutex<Option<HeaderValue>>,
    metrics: Option<UpstashMetrics>,
    /// Commands waiting to be pipelined, per thread (see `batch.rs`).
    pub(super) batches: ThreadLocal<Arc<Mutex<super::batch::Batch>>>,
}

impl std::fmt::Debug for UpstashClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstashClient")
            .field("url", &self.root.as_str())
            .finish_non_exhaustive()
    }
}

impl UpstashClient {
    /// Builds the client; fails only when the TLS backend cannot start or the token cannot be
    /// a header.
    pub fn new(config: ClientConfig) -> Result<Self, UpstashError> {
        let pools = ThreadLocal::new();
        // Build this thread's pool now, so a TLS set-up failure shows at start.
        pools.get_or_try(|| http_client(&config))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", config.token))
            .map_err(|_| UpstashError::Protocol("the token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let base = config.url.as_str().trim_end_matches('/').to_owned();
        let parse = |suffix: &str| {
            Url::parse(&format!("{base}/{suffix}"))
                .map_err(|e| UpstashError::Protocol(format!("invalid URL: {e}")))
        };
        Ok(Self {
            pools,
            root: parse("")?,
            pipeline: parse("pipeline")?,
            multi_exec: parse("multi-exec")?,
            auth,
            config,
            sync_token: Mutex::new(None),
            metrics: None,
            batches: ThreadLocal::new(),
        })
    }

    /// Records latency, errors and retries on `metrics`.
    pub fn with_metrics(mut self, metrics: UpstashMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The configured per-call budget.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// Runs one command.
    pub async fn command(
        &self,
        command: &Command<'_>,
        retry: RetryPolicy,
    ) -> Result<Reply, UpstashError> {
        let body = serialize(command)?;
        self.call(&self.root, "command", body, retry, |bytes| {
            parse_single_body(bytes, true)
        })
        .await
    }

    /// Runs commands in order in one request (`/pipeline`, not atomic).
    pub async fn pipeline(
        &self,
        commands: &[Command<'_>],
        retry: RetryPolicy,
    ) -> Result<Vec<Result<Reply, String>>, UpstashError> {
        let body = serialize(commands)?;
        self.call(&self.pipeline, "pipeline", body, retry, |bytes| {
            check_len(parse_pipeline_body(bytes, true)?, commands.len())
        })
        .await
    }

    /// Runs commands atomically in one request (`/multi-exec`).
    pub async fn transaction(
        &self,
        commands: &[Command<'_>],
        retry: RetryPolicy,
    ) -> Result<Vec<Result<Reply, String>>, UpstashError> {
        let body = serialize(commands)?;
        self.call(&self.multi_exec, "multi-exec", body, retry, |bytes| {
            check_len(parse_pipeline_body(bytes, true)?, commands.len())
        })
        .await
    }

    /// Sends `body` to `url` and parses the answer until that succeeds, fails for good, or
    /// the budget is spent. A body that is not JSON counts as a failed attempt.
    pub(super) async fn call<T>(
        &self,
        url: &Url,
        endpoint: &'static str,
        body: Bytes,
        retry: RetryPolicy,
        parse: impl Fn(&[u8]) -> Result<T, UpstashError>,
    ) -> Result<T, UpstashError> {
        let start = Instant::now();
        let deadline = start + self.config.timeout;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(UpstashError::Timeout(self.config.timeout));
            }
            let budget = remaining.min(self.config.attempt_timeout);
            let sent = Instant::now();
            let outcome = match tokio::time::timeout(budget, self.attempt(url, body.clone())).await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(UpstashError::Timeout(budget)),
            };
            if let Some(metrics) = &self.metrics {
                metrics
                    .duration
                    .with_label_values(&[endpoint])
                    .observe(sent.elapsed().as_secs_f64());
            }
            let error = match outcome.and_then(|bytes| parse(&bytes)) {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if let Some(metrics) = &self.metrics {
                metrics.errors.with_label_values(&[error.kind()]).inc();
            }
            let may_retry = retry == RetryPolicy::Idempotent
                && error.is_retryable()
                && attempt < self.config.max_attempts;
            if !may_retry {
                return Err(finalize(error, deadline, self.config.timeout));
            }
            let delay = error.retry_after().unwrap_or_else(|| self.backoff(attempt));
            if Instant::now() + delay >= deadline {
                return Err(finalize(error, deadline, self.config.timeout));
            }
            tracing::debug!(
                attempt,
                kind = error.kind(),
                delay_ms = delay.as_millis() as u64,
                "retrying Upstash call"
            );
            if let Some(metrics) = &self.metrics {
                metrics.retries.with_label_values(&[error.kind()]).inc();
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange.
    async fn attempt(&self, url: &Url, body: Bytes) -> Result<Bytes, UpstashError> {
        let http = self.pools.get_or_try(|| http_client(&self.config))?;
        let mut request = http
            .post(url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ENCODING, HeaderValue::from_static("base64"))
            .body(body);
        if let Some(token) = self.current_sync_token() {
            request = request.header(SYNC_TOKEN, token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| UpstashError::Transport(Arc::new(e)))?;
        let status = response.status();
        // As both official SDKs do: only a successful answer moves the read-your-writes
        // token (an error page from a proxy or a failed replica must not).
        if status.is_success() {
            if let Some(token) = response.headers().get(SYNC_TOKEN) {
                if !token.is_empty() {
                    self.store_sync_token(token.clone());
                }
            }
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = read_bounded(response, self.config.max_reply_bytes).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        let message = error_message(&bytes);
        Err(match status {
            StatusCode::UNAUTHORIZED => UpstashError::Unauthorized(message),
            StatusCode::TOO_MANY_REQUESTS => UpstashError::RateLimited {
                message,
                retry_after,
            },
            // Redis errors on a single command come back as 400 with `{"error": ...}`.
            StatusCode::BAD_REQUEST => UpstashError::Command(message),
            _ => UpstashError::Status {
                status: status.as_u16(),
                message,
                retry_after,
            },
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.config.backoff_max);
        // Equal jitter: uniform in [exp/2, exp].
        let half = exp / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }

    fn current_sync_token(&self) -> Option<HeaderValue> {
        match self.sync_token.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store_sync_token(&self, token: HeaderValue) {
        match self.sync_token.lock() {
            Ok(mut guard) => *guard = Some(token),
            Err(poisoned) => *poisoned.into_inner() = Some(token),
        }
    }
}

/// One connection pool: keep-alive, no redirects (the REST API never redirects, and the
/// redirect policy costs a URL parse per request), a connect timeout. Each attempt's timeout
/// is applied around the whole exchange in `call`, body included.
fn http_client(config: &ClientConfig) -> Result<reqwest::Client, UpstashError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.attempt_timeout.min(Duration::from_secs(2)))
        .pool_idle_timeout(Duration::from_secs(55))
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .build()
        .map_err(|e| UpstashError::Transport(Arc::new(e)))
}

/// The body of `response`, refused as soon as it is known to exceed `limit` bytes: from its
/// `Content-Length`, or while it streams in. A body in one chunk is returned without a copy.
async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, UpstashError> {
    let too_large = || UpstashError::TooLarge { limit };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let transport = |e| UpstashError::Transport(Arc::new(e));
    let Some(first) = response.chunk().await.map_err(transport)? else {
        return Ok(Bytes::new());
    };
    if first.len() > limit {
        return Err(too_large());
    }
    let Some(second) = response.chunk().await.map_err(transport)? else {
        return Ok(first);
    };
    let mut body = bytes::BytesMut::with_capacity((first.len() + second.len()) * 2);
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
        next = response.chunk().await.map_err(transport)?;
    }
    Ok(body.freeze())
}

/// A failure found with no budget left to retry is reported as the timeout it amounts to
/// only when the deadline is really spent; otherwise the cause itself is kept.
fn finalize(error: UpstashError, deadline: Instant, timeout: Duration) -> UpstashError {
    match error {
        UpstashError::Timeout(_) if Instant::now() >= deadline => UpstashError::Timeout(timeout),
        other => other,
    }
}

fn serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Bytes, UpstashError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| UpstashError::Protocol(format!("cannot encode command: {e}")))
}

pub(super) fn check_len(
    items: Vec<Result<Reply, String>>,
    expected: usize,
) -> Result<Vec<Result<Reply, String>>, UpstashError> {
    if items.len() == expected {
        Ok(items)
    } else {
        Err(UpstashError::Protocol(format!(
            "expected {expected} results, got {}",
            items.len()
        )))
    }
}
