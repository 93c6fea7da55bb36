//! The HTTP side of the client: reqwest connection pools with keep-alive, the auth and
//! encoding headers, deadlines, retries with backoff and jitter, and the sync token.
//!
//! Each thread gets its own reqwest `Client` (pool): actix-web runs one single-threaded
//! runtime per worker, and a pooled connection's I/O task lives on the runtime that opened
//! it, so a pool shared between workers hands every request to another thread and back.
//! Per-thread pools keep a request and its connection on one thread. Everything else (the
//! sync token, metrics, configuration) is shared.
//!
//! With traces on, each HTTP request to Upstash (retries included) is one client span
//! (`crate::traces::client_span`): command names, status, retries; never a key or value.
//! Nothing about the trace is sent to Upstash (no `traceparent`).
//!
//! The retry loop every call goes through is in `client/retry.rs`, the TLS set-up in
//! `client/tls.rs`.

mod retry;
mod tls;

use std::{
    num::NonZeroU32,
    sync::{atomic::Ordering, Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use reqwest::{
    header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER},
    StatusCode, Url,
};
use rustls::pki_types::CertificateDer;
use thread_local::ThreadLocal;

use crate::sync::LockIgnoringPoison;
use crate::traces;
use tls::{tls_config, HandshakeCounter};

use super::{
    batch::{self, Batches},
    budget::CommandBudget,
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
    /// Certificates trusted besides the public roots (a private CA, e.g. `UPSTASH_CA_CERT`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Most commands sent per second, each command of a pipeline or transaction counted
    /// (`UPSTASH_MAX_COMMANDS_PER_SECOND`); a call that would pass it fails with
    /// [`UpstashError::OverBudget`] and sends nothing. `None`: no budget.
    pub max_commands_per_second: Option<NonZeroU32>,
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
            .field("extra_roots", &self.extra_roots.len())
            .field("max_commands_per_second", &self.max_commands_per_second)
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
            extra_roots: Vec::new(),
            max_commands_per_second: None,
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
    /// The TLS settings every pool is built with: built once, so the roots are parsed once
    /// and the pools share one TLS session cache (a new connection of one thread may resume
    /// a session another thread opened).
    tls: rustls::ClientConfig,
    handshakes: Arc<HandshakeCounter>,
    root: Url,
    pipeline: Url,
    multi_exec: Url,
    auth: HeaderValue,
    config: ClientConfig,
    /// The latest `upstash-sync-token` seen, sent back on every request.
    sync_token: Mutex<Option<HeaderValue>>,
    metrics: Option<UpstashMetrics>,
    /// Commands waiting to be pipelined, per thread (see `batch.rs`).
    batches: Batches,
    /// Commands per second, taken before anything is sent (see `budget.rs`).
    budget: Option<CommandBudget>,
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
        let handshakes = Arc::new(HandshakeCounter::default());
        let tls = tls_config(&config.extra_roots, handshakes.clone())?;
        let pools = ThreadLocal::new();
        // Build this thread's pool now, so a TLS set-up failure shows at start.
        pools.get_or_try(|| http_client(&config, &tls))?;
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
            tls,
            handshakes,
            root: parse("")?,
            pipeline: parse("pipeline")?,
            multi_exec: parse("multi-exec")?,
            auth,
            sync_token: Mutex::new(None),
            metrics: None,
            batches: Batches::default(),
            budget: config.max_commands_per_second.map(CommandBudget::new),
            config,
        })
    }

    /// Records latency, errors and retries on `metrics`.
    pub fn with_metrics(mut self, metrics: UpstashMetrics) -> Self {
        metrics.tls_handshakes.inc_by(self.tls_handshakes());
        let _ = self.handshakes.metric.set(metrics.tls_handshakes.clone());
        self.metrics = Some(metrics);
        self
    }

    /// TLS handshakes completed so far, over all of this client's pools: one per new
    /// connection (resumed or full), none for a request on a kept-alive connection.
    pub fn tls_handshakes(&self) -> u64 {
        self.handshakes.count.load(Ordering::Relaxed)
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
        self.spend(std::slice::from_ref(command))?;
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
        self.spend(commands)?;
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
        self.spend(commands)?;
        let body = serialize(commands)?;
        self.call(&self.multi_exec, "multi-exec", body, retry, |bytes| {
            check_len(parse_pipeline_body(bytes, true)?, commands.len())
        })
        .await
    }

    /// Runs one retry-safe command, sharing a `/pipeline` request with the commands other
    /// tasks on this thread issue at the same moment (see `batch.rs`). A command alone is
    /// sent as a plain single command.
    pub async fn command_coalesced(
        self: &Arc<Self>,
        command: &Command<'_>,
    ) -> Result<Reply, UpstashError> {
        self.spend(std::slice::from_ref(command))?;
        let (reply, flush) = self.batches.push(serialize(command)?, traces::caller());
        if let Some(batch) = flush {
            let client = self.clone();
            tokio::spawn(async move {
                let mut chunks = batch::take(&batch).await;
                let last = chunks.pop();
                for chunk in chunks {
                    let client = client.clone();
                    tokio::spawn(async move { client.send_batch(chunk).await });
                }
                if let Some(last) = last {
                    client.send_batch(last).await;
                }
            });
        }
        reply.await.unwrap_or_else(|_| {
            Err(UpstashError::Protocol(
                "the pipeline task ended without an answer".into(),
            ))
        })
    }

    /// Takes `commands` from the budget before they are sent, and counts them by name: the
    /// commands Upstash bills, each of a pipeline or transaction too. A call that does not
    /// fit is refused here, before anything is serialized or sent. A retried call is counted
    /// once (its retries show in `upstash_retries_total`).
    fn spend(&self, commands: &[Command<'_>]) -> Result<(), UpstashError> {
        if let Some(budget) = &self.budget {
            if let Err(retry_after) = budget.take(commands.len()) {
                if let Some(refused) = self
                    .metrics
                    .as_ref()
                    .and_then(|m| m.budget_refused.as_ref())
                {
                    refused.inc();
                }
                return Err(UpstashError::OverBudget { retry_after });
            }
        }
        if let Some(metrics) = &self.metrics {
            for command in commands {
                metrics.commands.with_label_values(&[command.name()]).inc();
            }
        }
        Ok(())
    }

    /// Sends one batch of queued commands and hands each caller its reply.
    ///
    /// With traces on, its client span is a child of the first caller's span and links to
    /// every caller's span (the send runs in its own task, outside any request).
    async fn send_batch(&self, mut commands: Vec<batch::Queued>) {
        if commands.len() == 1 {
            let Some((body, waiter, caller)) = commands.pop() else {
                return;
            };
            let parse = |bytes: &[u8]| parse_single_body(bytes, true);
            let retry = RetryPolicy::Idempotent;
            let result = match caller {
                Some(caller) => {
                    let span = traces::client_span("command", &body, self.host());
                    let span = traces::shared_client_span(span, &[Some(caller)]);
                    self.traced(span, &self.root, "command", body, retry, parse)
                        .await
                }
                None => self.call(&self.root, "command", body, retry, parse).await,
            };
            let _ = waiter.send(result);
            return;
        }
        let expected = commands.len();
        let body = batch::pipeline_body(&commands);
        let parse = |bytes: &[u8]| check_len(parse_pipeline_body(bytes, true)?, expected);
        let retry = RetryPolicy::Idempotent;
        let result = if traces::enabled() {
            let callers: Vec<_> = commands.iter().map(|(_, _, c)| c.clone()).collect();
            let span = traces::client_span("pipeline", &body, self.host());
            let span = traces::shared_client_span(span, &callers);
            self.traced(span, &self.pipeline, "pipeline", body, retry, parse)
                .await
        } else {
            self.call(&self.pipeline, "pipeline", body, retry, parse)
                .await
        };
        batch::deliver(commands, result);
    }

    /// The Upstash host, as client spans name it.
    fn host(&self) -> &str {
        self.root.host_str().unwrap_or("")
    }

    /// One HTTP exchange.
    async fn attempt(&self, url: &Url, body: Bytes) -> Result<Bytes, UpstashError> {
        let http = self.pool()?;
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
        if traces::enabled() {
            tracing::Span::current().record("http.response.status_code", status.as_u16());
        }
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

    /// This thread's connection pool.
    fn pool(&self) -> Result<&reqwest::Client, UpstashError> {
        self.pools
            .get_or_try(|| http_client(&self.config, &self.tls))
    }

    fn current_sync_token(&self) -> Option<HeaderValue> {
        self.sync_token.lock_ignoring_poison().clone()
    }

    fn store_sync_token(&self, token: HeaderValue) {
        *self.sync_token.lock_ignoring_poison() = Some(token);
    }
}

/// One connection pool: keep-alive, no redirects (the REST API never redirects, and the
/// redirect policy costs a URL parse per request), a connect timeout (TCP and TLS handshake
/// together). Each attempt's timeout is applied around the whole exchange in `call`, body
/// included.
///
/// A connection the server closes while idle leaves the pool as soon as its close arrives
/// (the pool's connection task sees it on this thread's runtime); see `POOL_IDLE_TIMEOUT`.
fn http_client(
    config: &ClientConfig,
    tls: &rustls::ClientConfig,
) -> Result<reqwest::Client, UpstashError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .redirect(reqwest::redirect::Policy::none())
        // Shorter than an attempt's budget, so a connection or TLS handshake that never
        // completes fails as itself (and is logged so) rather than as a bare attempt timeout.
        .connect_timeout((config.attempt_timeout * 9 / 10).min(Duration::from_secs(2)))
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
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

/// How long an idle pooled connection is kept: below the 60 s idle timeout common to load
/// balancers, so the pool rarely offers a connection the server is about to close.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(55);

fn serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Bytes, UpstashError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| UpstashError::Protocol(format!("cannot encode command: {e}")))
}

fn check_len(
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
