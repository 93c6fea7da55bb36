//! Prometheus metrics at `GET /metrics`: HTTP requests by route, method and status with a
//! latency histogram, Upstash latency, errors and retries, session lifecycle counters, and
//! live sessions on the memory store.
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

use crate::{session::SessionMetrics, store::SessionStore, upstash::UpstashMetrics};

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
}

impl Metrics {
    /// A fresh registry with the service's instruments.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        Ok(Self {
            upstash: UpstashMetrics::unregistered()?,
            sessions: SessionMetrics::register(&registry)?,
            http: HttpMetrics::register(&registry)?,
            registry,
        })
    }

    /// Reports `store.live_sessions()` at each scrape, when the store can tell.
    pub fn watch_store(&self, store: Arc<dyn SessionStore>) -> prometheus::Result<()> {
        if store.live_sessions().is_some() {
            self.registry
                .register(Box::new(LiveSessions::new(store)?))?;
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

/// A gauge read from the store at scrape time.
struct LiveSessions {
    store: Arc<dyn SessionStore>,
    gauge: Gauge,
}

impl LiveSessions {
    fn new(store: Arc<dyn SessionStore>) -> prometheus::Result<Self> {
        let gauge = Gauge::with_opts(Opts::new(
            "sessions_live",
            "Sessions held by the in-memory store (expired ones not yet purged included).",
        ))?;
        Ok(Self { store, gauge })
    }
}

impl Collector for LiveSessions {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge
            .set(self.store.live_sessions().unwrap_or(0) as f64);
        self.gauge.collect()
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
