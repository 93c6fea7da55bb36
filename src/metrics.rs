//! Prometheus metrics at `GET /metrics`: HTTP requests by route, method and status with a
//! latency histogram, Upstash latency, errors, retries and commands by name, session
//! lifecycle counters, refusals by the rate limits and the Upstash budget, on the memory store
//! the sessions it holds, the bytes they count and its bound, and with traces on, spans
//! exported and dropped.
//!
//! Every label value comes from a closed set, so no client can grow the registry: the method
//! is one of the standard methods or `OTHER`, the endpoint is a registered route pattern (its
//! slash-less spelling folded into the slashed one) or `UNKNOWN`, and the status is a status
//! code.

use std::{borrow::Cow, sync::Arc, time::Instant};

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{header, Method},
    middleware::Next,
    Error, HttpResponse,
};
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::{
    ratelimit::RateLimitMetrics, session::SessionMetrics, store::SessionStore,
    upstash::UpstashMetrics,
};

/// Every instrument of the service, on one registry.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `GET /metrics` renders.
    pub registry: Registry,
    /// The Upstash client's instruments, registered only once a client uses them
    /// ([`UpstashMetrics::register_on`]).
    pub upstash: UpstashMetrics,
    /// Session lifecycle counters.
    pub sessions: SessionMetrics,
    /// HTTP request counters, filled by [`HttpMetrics::middleware`].
    pub http: HttpMetrics,
    /// Refusals by the per-client limits and the Upstash command budget.
    pub rate_limits: RateLimitMetrics,
}

impl Metrics {
    /// A fresh registry with the service's instruments.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        // Trace export's outcomes, only when traces are on (`otel_spans_*`).
        if let Some(spans) = crate::traces::counters() {
            spans.register(&registry)?;
        }
        let rate_limits = RateLimitMetrics::register(&registry)?;
        Ok(Self {
            upstash: UpstashMetrics::unregistered()?,
            rate_limits,
            sessions: SessionMetrics::register(&registry)?,
            http: HttpMetrics::register(&registry)?,
            registry,
        })
    }

    /// Reports `store.live_sessions()` and `store.memory_usage()` at each scrape, when the
    /// store can tell.
    pub fn watch_store(&self, store: Arc<dyn SessionStore>) -> prometheus::Result<()> {
        if store.live_sessions().is_some() || store.memory_usage().is_some() {
            self.registry.register(Box::new(StoreGauges::new(store)?))?;
        }
        Ok(())
    }

    /// The registry in the Prometheus text format, as `GET /metrics` answers it.
    pub fn render(&self) -> HttpResponse {
        let mut body = Vec::with_capacity(8192);
        let encoder = TextEncoder::new();
        match encoder.encode(&self.registry.gather(), &mut body) {
            Ok(()) => HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, encoder.format_type()))
                .body(body),
            Err(error) => {
                tracing::error!(%error, "cannot render metrics");
                HttpResponse::InternalServerError().finish()
            }
        }
    }
}

/// `http_requests_total` and `http_requests_duration_seconds`, labelled by endpoint, method
/// and status.
#[derive(Clone)]
pub struct HttpMetrics {
    total: IntCounterVec,
    duration: HistogramVec,
    /// Folds a route pattern into its label (e.g. `/login` into `/login/`).
    endpoint: Arc<EndpointFold>,
}

/// Turns a matched route pattern into its `endpoint` label.
type EndpointFold = dyn Fn(&str) -> Cow<'_, str> + Send + Sync;

/// What the counting middleware returns for one request.
type Counted<B> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<ServiceResponse<B>, Error>>>>;

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics").finish_non_exhaustive()
    }
}

/// The `endpoint` label of requests no route matched.
pub const UNKNOWN_ENDPOINT: &str = "UNKNOWN";

/// The `method` label of any method outside the standard ones.
pub const OTHER_METHOD: &str = "OTHER";

impl HttpMetrics {
    /// Creates the instruments and registers them on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let labels = ["endpoint", "method", "status"];
        let total = IntCounterVec::new(
            Opts::new("http_requests_total", "Total number of HTTP requests"),
            &labels,
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_requests_duration_seconds",
                "HTTP request duration in seconds for all requests",
            ),
            &labels,
        )?;
        registry.register(Box::new(total.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self {
            total,
            duration,
            endpoint: Arc::new(keep_pattern),
        })
    }

    /// Uses `fold` to turn a matched route pattern into its `endpoint` label; it must map the
    /// finite set of registered patterns into a finite set.
    pub fn with_endpoint_label(
        mut self,
        fold: impl Fn(&str) -> Cow<'_, str> + Send + Sync + 'static,
    ) -> Self {
        self.endpoint = Arc::new(fold);
        self
    }

    /// Counts one answered request.
    fn observe(&self, pattern: Option<&str>, method: &Method, status: &str, seconds: f64) {
        let endpoint = match pattern {
            Some(pattern) => (self.endpoint)(pattern),
            None => Cow::Borrowed(UNKNOWN_ENDPOINT),
        };
        let labels = [endpoint.as_ref(), method_label(method), status];
        self.total.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(seconds);
    }

    /// The counting middleware (wrap with `actix_web::middleware::from_fn`).
    pub fn middleware<B: MessageBody + 'static>(
        &self,
    ) -> impl Fn(ServiceRequest, Next<B>) -> Counted<B> + Clone + 'static {
        let metrics = self.clone();
        move |req: ServiceRequest, next: Next<B>| {
            let metrics = metrics.clone();
            Box::pin(async move {
                let start = Instant::now();
                let method = req.method().clone();
                let outcome = next.call(req).await;
                let seconds = start.elapsed().as_secs_f64();
                match &outcome {
                    Ok(response) => metrics.observe(
                        response.request().match_pattern().as_deref(),
                        &method,
                        response.status().as_str(),
                        seconds,
                    ),
                    Err(error) => metrics.observe(
                        None,
                        &method,
                        error.as_response_error().status_code().as_str(),
                        seconds,
                    ),
                }
                outcome
            })
        }
    }
}

/// The default endpoint label: the route pattern as registered.
fn keep_pattern(pattern: &str) -> Cow<'_, str> {
    Cow::Borrowed(pattern)
}

/// The method as a label: one of the standard methods, or [`OTHER_METHOD`].
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => OTHER_METHOD,
    }
}

/// Gauges read from the store at scrape time.
struct StoreGauges {
    store: Arc<dyn SessionStore>,
    live: Gauge,
    bytes: Gauge,
    max_bytes: Gauge,
    descs: Vec<Desc>,
}

impl StoreGauges {
    fn new(store: Arc<dyn SessionStore>) -> prometheus::Result<Self> {
        let live = Gauge::with_opts(Opts::new(
            "sessions_live",
            "Sessions held by the in-memory store (expired ones not yet purged included).",
        ))?;
        let bytes = Gauge::with_opts(Opts::new(
            "memory_store_bytes",
            "Bytes the in-memory store's sessions count against MEMORY_STORE_MAX_BYTES: per \
             session a fixed overhead plus its user name and serialized data.",
        ))?;
        let max_bytes = Gauge::with_opts(Opts::new(
            "memory_store_max_bytes",
            "MEMORY_STORE_MAX_BYTES: past it, logins and growing PATCHes answer 503.",
        ))?;
        let descs = [&live, &bytes, &max_bytes]
            .iter()
            .flat_map(|g| g.desc())
            .cloned()
            .collect();
        Ok(Self {
            store,
            live,
            bytes,
            max_bytes,
            descs,
        })
    }
}

impl Collector for StoreGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = Vec::with_capacity(3);
        if let Some(live) = self.store.live_sessions() {
            self.live.set(live as f64);
            families.extend(self.live.collect());
        }
        if let Some(usage) = self.store.memory_usage() {
            self.bytes.set(usage.bytes as f64);
            self.max_bytes.set(usage.max_bytes as f64);
            families.extend(self.bytes.collect());
            families.extend(self.max_bytes.collect());
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        for name in ["XXXX1", "PROPFIND", "get", "BREW"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), OTHER_METHOD, "{name}");
        }
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
