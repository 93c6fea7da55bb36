//! Optional Prometheus instruments for the client: request latency by endpoint, errors and
//! retries by kind, TLS handshakes, commands sent by name, and refusals by the command
//! budget.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// The client's instruments; register once, share with [`super::UpstashClient::with_metrics`].
#[derive(Debug, Clone)]
pub struct UpstashMetrics {
    pub(crate) duration: HistogramVec,
    pub(crate) errors: IntCounterVec,
    pub(crate) retries: IntCounterVec,
    pub(crate) tls_handshakes: IntCounter,
    pub(crate) commands: IntCounterVec,
    pub(crate) budget_refused: Option<IntCounter>,
}

impl UpstashMetrics {
    /// Creates the instruments and registers them on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self::unregistered()?;
        metrics.register_on(registry)?;
        Ok(metrics)
    }

    /// Registers the instruments on `registry` (once): the service does so only when it runs
    /// on Upstash, so the memory store's `/metrics` carries no `upstash_*` series.
    pub fn register_on(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.tls_handshakes.clone()))?;
        registry.register(Box::new(self.commands.clone()))?;
        registry.register(Box::new(self.duration.clone()))?;
        registry.register(Box::new(self.errors.clone()))?;
        registry.register(Box::new(self.retries.clone()))
    }

    /// Creates the instruments without registering them anywhere.
    pub fn unregistered() -> prometheus::Result<Self> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "upstash_request_duration_seconds",
                "Latency of Upstash REST requests (one attempt each), by endpoint.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["endpoint"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("upstash_errors_total", "Failed Upstash attempts, by kind."),
            &["kind"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                "upstash_retries_total",
                "Upstash retries, by the kind of failure retried.",
            ),
            &["kind"],
        )?;
        let tls_handshakes = IntCounter::new(
            "upstash_tls_handshakes_total",
            "TLS handshakes with Upstash: one per new connection, none per pooled request.",
        )?;
        let commands = IntCounterVec::new(
            Opts::new(
                "upstash_commands_total",
                "Commands sent to Upstash (what it bills: each command of a pipeline or \
                 transaction counts), by command name; a retried call counts once.",
            ),
            &["command"],
        )?;
        Ok(Self {
            duration,
            errors,
            retries,
            tls_handshakes,
            commands,
            budget_refused: None,
        })
    }

    /// Counts the calls the command budget refuses on `counter` (the service's
    /// `rate_limited_total{limit="upstash_budget"}`).
    pub fn with_budget_refusals(mut self, counter: IntCounter) -> Self {
        self.budget_refused = Some(counter);
        self
    }
}
