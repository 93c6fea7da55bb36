//! The retry loop of every call: attempts within one total deadline, each under its own
//! timeout; only retry-safe calls ([`RetryPolicy::Idempotent`]) are sent again, after an
//! exponential backoff with equal jitter or the server's `Retry-After`; and the error
//! reported is the one that names the cause.
//!
//! Hand-written rather than through a retry crate (backon, tokio-retry): the loop needs the
//! shared total deadline, the per-attempt timeout, `Retry-After`, and the earlier cause kept
//! over a later bare timeout, which would all sit outside such a crate's policy anyway.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use reqwest::Url;

use super::{RetryPolicy, UpstashClient, UpstashError};
use crate::traces;

impl UpstashClient {
    /// Sends `body` to `url` and parses the answer until that succeeds, fails for good, or
    /// the budget is spent, inside the request's client span when traces are on.
    pub(super) async fn call<T>(
        &self,
        url: &Url,
        endpoint: &'static str,
        body: Bytes,
        retry: RetryPolicy,
        parse: impl Fn(&[u8]) -> Result<T, UpstashError>,
    ) -> Result<T, UpstashError> {
        if !traces::enabled() {
            return self
                .attempts(url, endpoint, body, retry, parse, &mut 0)
                .await;
        }
        let span = traces::client_span(endpoint, &body, self.host());
        self.traced(span, url, endpoint, body, retry, parse).await
    }

    /// [`Self::call`] in `span`, which gets the retries and the outcome.
    pub(super) async fn traced<T>(
        &self,
        span: tracing::Span,
        url: &Url,
        endpoint: &'static str,
        body: Bytes,
        retry: RetryPolicy,
        parse: impl Fn(&[u8]) -> Result<T, UpstashError>,
    ) -> Result<T, UpstashError> {
        use tracing::Instrument;
        let mut tried = 0;
        let result = self
            .attempts(url, endpoint, body, retry, parse, &mut tried)
            .instrument(span.clone())
            .await;
        let error = result.as_ref().err().map(UpstashError::kind);
        traces::record_call(&span, tried.saturating_sub(1), error);
        result
    }

    /// The attempts of one call; `tried` counts them. A body that is not JSON counts as a
    /// failed attempt.
    async fn attempts<T>(
        &self,
        url: &Url,
        endpoint: &'static str,
        body: Bytes,
        retry: RetryPolicy,
        parse: impl Fn(&[u8]) -> Result<T, UpstashError>,
        tried: &mut u32,
    ) -> Result<T, UpstashError> {
        let start = Instant::now();
        let deadline = start + self.config.timeout;
        let mut attempt: u32 = 0;
        // The latest failure that says more than "no answer in time" (a refused connection,
        // a handshake that timed out, a 5xx): reported instead of a bare timeout when the
        // budget runs out, so the log names the cause.
        let mut cause: Option<UpstashError> = None;
        loop {
            attempt += 1;
            *tried = attempt;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(finalize(
                    UpstashError::Timeout(self.config.timeout),
                    cause,
                    deadline,
                    self.config.timeout,
                ));
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
                return Err(finalize(error, cause, deadline, self.config.timeout));
            }
            let delay = error.retry_after().unwrap_or_else(|| self.backoff(attempt));
            if Instant::now() + delay >= deadline {
                return Err(finalize(error, cause, deadline, self.config.timeout));
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
            if !matches!(error, UpstashError::Timeout(_)) {
                cause = Some(error);
            }
            tokio::time::sleep(delay).await;
        }
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
}

/// A failure found with no budget left to retry is reported as the timeout it amounts to
/// only when the deadline is really spent; otherwise the cause itself is kept.
///
/// A last attempt cut short by the deadline says less than the failure before it (`cause`):
/// that one is reported then.
fn finalize(
    error: UpstashError,
    cause: Option<UpstashError>,
    deadline: Instant,
    timeout: Duration,
) -> UpstashError {
    match (error, cause) {
        // Only a failure to connect says more than the timeout: after a 5xx, an attempt that
        // then hung is still a store that did not answer in time.
        (UpstashError::Timeout(_), Some(cause @ UpstashError::Transport(_))) => cause,
        (UpstashError::Timeout(_), None) if Instant::now() >= deadline => {
            UpstashError::Timeout(timeout)
        }
        (other, _) => other,
    }
}
