//! Prometheus metrics at `GET /metrics`: HTTP requests by route and status with a latency
//! histogram (actix-web-prom), Upstash latency, errors and retries, session lifecycle
//! counters, and live sessions on the memory store.

use std::sync::Arc;

use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    Gauge, Opts, Registry,
};

use crate::{session::SessionMetrics, store::SessionStore, upstash::UpstashMetrics};

/// Every instrument of the service, on one registry.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub upstash: UpstashMetrics,
    pub sessions: SessionMetrics,
}

impl Metrics {
    /// A fresh registry with the service's instruments.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        Ok(Self {
            upstash: UpstashMetrics::register(&registry)?,
            sessions: SessionMetrics::register(&registry)?,
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

    /// The HTTP middleware that also serves `GET /metrics`.
    pub fn middleware(
        &self,
    ) -> Result<PrometheusMetrics, Box<dyn std::error::Error + Send + Sync>> {
        PrometheusMetricsBuilder::new("")
            .registry(self.registry.clone())
            .endpoint("/metrics")
            .mask_unmatched_patterns("UNKNOWN")
            // Swagger UI's catch-all route cannot be a label; its files need no metrics.
            .exclude_regex("^/docs")
            .build()
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
