//! OpenTelemetry traces over OTLP/HTTP, off unless the standard `OTEL_*` variables ask for
//! them (see docs/traces.md).
//!
//! The settings ([`TraceSettings`]) are read and checked here, with the names and meanings of
//! the OpenTelemetry specification, and handed to the SDK explicitly: the SDK reads some of
//! them itself but ignores a bad value silently and exports to `localhost:4318` when no
//! endpoint is set, whereas this service stays off then and refuses a bad value at start.
//!
//! Spans are `tracing` spans of the target [`TARGET`], seen only by the OpenTelemetry layer
//! (the log layer ignores that target; the OpenTelemetry layer ignores every other span and
//! all events, so nothing a log line says is exported): the server span of each request
//! ([`server_span`]) and the client span of each Upstash HTTP request ([`client_span`]).
//! With tracing off neither is created: the hot paths check [`enabled`], one relaxed load.
//!
//! Export runs on the SDK's batch processor thread, behind a bounded queue: a span that finds
//! the queue full is dropped and counted, an export that fails is counted, and no request
//! ever waits for either (`otel_spans_dropped_total` on `/metrics`).

use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use opentelemetry::{propagation::TextMapPropagator, trace::TracerProvider as _, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    propagation::TraceContextPropagator,
    resource::TelemetryResourceDetector,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
        SpanProcessor,
    },
    Resource,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{settings::SettingsError, sync::LockIgnoringPoison};

/// The `tracing` target of the spans exported as OpenTelemetry spans (and only of those).
pub const TARGET: &str = "upstash_sessions::traces";

/// The service name when neither `OTEL_SERVICE_NAME` nor a `service.name` resource attribute
/// gives one.
pub const DEFAULT_SERVICE_NAME: &str = "upstash-sessions";

/// Every variable read here, in the order of docs/traces.md.
pub const VARIABLES: &[&str] = &[
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
];

/// How spans are encoded on the wire (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`, the default.
    Protobuf,
    /// `http/json`.
    Json,
}

/// Which traces are recorded (`OTEL_TRACES_SAMPLER` and `_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio` with its ratio.
    Ratio(f64),
    /// `parentbased_always_on` (the default): the caller's decision, else on.
    ParentAlwaysOn,
    /// `parentbased_always_off`.
    ParentAlwaysOff,
    /// `parentbased_traceidratio` with its ratio.
    ParentRatio(f64),
}

impl SamplerChoice {
    fn sampler(self) -> Sampler {
        let parent = |root: Sampler| Sampler::ParentBased(Box::new(root));
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::Ratio(r) => Sampler::TraceIdRatioBased(r),
            Self::ParentAlwaysOn => parent(Sampler::AlwaysOn),
            Self::ParentAlwaysOff => parent(Sampler::AlwaysOff),
            Self::ParentRatio(r) => parent(Sampler::TraceIdRatioBased(r)),
        }
    }
}

/// Traces' settings; `None` in [`crate::settings::Settings::traces`] when tracing is off.
/// The exporter's headers (API keys) never show in `Debug`.
#[derive(Clone)]
pub struct TraceSettings {
    /// Where spans are POSTed: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` plus `v1/traces`.
    pub endpoint: reqwest::Url,
    /// The wire encoding.
    pub protocol: Protocol,
    /// Extra request headers of each export (e.g. an API key).
    pub headers: Vec<(String, SecretString)>,
    /// Budget of one export request: the smaller of `OTEL_EXPORTER_OTLP_TIMEOUT` and
    /// `OTEL_BSP_EXPORT_TIMEOUT`.
    pub timeout: Duration,
    /// Whether export bodies are gzipped.
    pub gzip: bool,
    /// `service.name`.
    pub service_name: String,
    /// Resource attributes from `OTEL_RESOURCE_ATTRIBUTES` (`service.name` aside).
    pub resource: Vec<(String, String)>,
    /// The sampler.
    pub sampler: SamplerChoice,
    /// Delay between two scheduled exports.
    pub schedule_delay: Duration,
    /// Most spans waiting for export; more are dropped (counted).
    pub max_queue_size: usize,
    /// Most spans in one export request.
    pub max_export_batch_size: usize,
}

impl std::fmt::Debug for TraceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceSettings")
            .field("endpoint", &self.endpoint.as_str())
            .field("protocol", &self.protocol)
            .field("headers", &self.headers.len())
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("sampler", &self.sampler)
            .field("schedule_delay", &self.schedule_delay)
            .field("max_queue_size", &self.max_queue_size)
            .field("max_export_batch_size", &self.max_export_batch_size)
            .finish()
    }
}

fn invalid(var: &'static str, value: &str, expected: &'static str) -> SettingsError {
    SettingsError::Invalid {
        var,
        value: value.to_owned(),
        expected,
    }
}

/// Milliseconds from `min` to `max`, or `default` when unset.
fn millis(
    var: &'static str,
    value: Option<&str>,
    default: u64,
    expected: &'static str,
) -> Result<Duration, SettingsError> {
    match value {
        None => Ok(Duration::from_millis(default)),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(ms) if (1..=3_600_000).contains(&ms) => Ok(Duration::from_millis(ms)),
            _ => Err(invalid(var, v, expected)),
        },
    }
}

fn count(
    var: &'static str,
    value: Option<&str>,
    default: usize,
    expected: &'static str,
) -> Result<usize, SettingsError> {
    match value {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
            _ => Err(invalid(var, v, expected)),
        },
    }
}

/// `key=value,key=value` with percent-encoded values (the W3C baggage form the specification
/// uses for `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`); `None` when a member
/// has no `=`, an empty key, or a value that is not UTF-8 once decoded.
fn key_values(value: &str) -> Option<Vec<(String, String)>> {
    value
        .split(',')
        .filter(|member| !member.trim().is_empty())
        .map(|member| {
            let (key, value) = member.split_once('=')?;
            let key = key.trim();
            if key.is_empty() {
                return None;
            }
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .ok()?;
            Some((key.to_owned(), value.into_owned()))
        })
        .collect()
}

impl TraceSettings {
    /// Reads the traces' variables through `get` (unset and empty are alike). `Ok(None)`:
    /// tracing is off (no endpoint, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingsError> {
        // Every variable is read whatever the outcome, so `VARIABLES` is exactly what is read.
        let values: Vec<Option<String>> = VARIABLES.iter().map(|name| get(name)).collect();
        let var = |name: &str| {
            VARIABLES
                .iter()
                .position(|v| *v == name)
                .and_then(|i| values[i].as_deref())
        };
        // The signal-specific variable wins over the general one, as the specification says.
        let either = |traces: &'static str, general: &'static str| match var(traces) {
            Some(v) => Some((traces, v)),
            None => var(general).map(|v| (general, v)),
        };

        let disabled = match var("OTEL_SDK_DISABLED").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => return Err(invalid("OTEL_SDK_DISABLED", &v, "true or false")),
        };
        let exporter_off = match var("OTEL_TRACES_EXPORTER").map(str::trim) {
            None | Some("otlp") => false,
            Some("none") => true,
            Some(v) => {
                return Err(invalid(
                    "OTEL_TRACES_EXPORTER",
                    v,
                    "otlp or none (OTLP over HTTP is the exporter built in)",
                ))
            }
        };
        let endpoint = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => Some(endpoint_url(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                url,
                None,
            )?),
            (None, Some(base)) => Some(endpoint_url(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                base,
                Some("v1/traces"),
            )?),
            (None, None) => None,
        };
        let Some(endpoint) = endpoint.filter(|_| !disabled && !exporter_off) else {
            return Ok(None);
        };

        let protocol = match either(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ) {
            None => Protocol::Protobuf,
            Some((_, v)) if v.trim() == "http/protobuf" => Protocol::Protobuf,
            Some((_, v)) if v.trim() == "http/json" => Protocol::Json,
            Some((name, v)) => {
                return Err(invalid(
                    name,
                    v,
                    "http/protobuf or http/json (grpc is not built in)",
                ))
            }
        };
        let headers = match either(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ) {
            None => Vec::new(),
            Some((name, v)) => key_values(v)
                .filter(|pairs| {
                    pairs.iter().all(|(k, v)| {
                        reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_ok()
                            && reqwest::header::HeaderValue::from_str(v).is_ok()
                    })
                })
                .ok_or(SettingsError::InvalidSecret {
                    var: name,
                    expected: "comma-separated name=value pairs, values percent-encoded",
                })?
                .into_iter()
                .map(|(k, v)| (k, SecretString::from(v)))
                .collect(),
        };
        let timeout = match either(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ) {
            None => Duration::from_secs(10),
            Some((name, v)) => millis(
                name,
                Some(v),
                10_000,
                "milliseconds, an integer from 1 to 3600000",
            )?,
        };
        let export_timeout = millis(
            "OTEL_BSP_EXPORT_TIMEOUT",
            var("OTEL_BSP_EXPORT_TIMEOUT"),
            30_000,
            "milliseconds, an integer from 1 to 3600000",
        )?;
        let gzip = match either(
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ) {
            None => false,
            Some((_, v)) if v.trim() == "gzip" => true,
            Some((_, v)) if v.trim() == "none" => false,
            Some((name, v)) => return Err(invalid(name, v, "gzip or none")),
        };

        let mut resource = match var("OTEL_RESOURCE_ATTRIBUTES") {
            None => Vec::new(),
            Some(v) => key_values(v).ok_or_else(|| {
                invalid(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    v,
                    "comma-separated key=value pairs, values percent-encoded",
                )
            })?,
        };
        // OTEL_SERVICE_NAME wins over a service.name attribute.
        let attribute_name = resource
            .iter()
            .position(|(k, _)| k == "service.name")
            .map(|i| resource.remove(i).1);
        let service_name = var("OTEL_SERVICE_NAME")
            .map(|v| v.trim().to_owned())
            .or(attribute_name)
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());

        let ratio = || match var("OTEL_TRACES_SAMPLER_ARG") {
            // The specification's default ratio.
            None => Ok(1.0),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(invalid(
                    "OTEL_TRACES_SAMPLER_ARG",
                    v,
                    "a ratio from 0 to 1, e.g. 0.25",
                )),
            },
        };
        let sampler = match var("OTEL_TRACES_SAMPLER").map(str::trim) {
            None | Some("parentbased_always_on") => SamplerChoice::ParentAlwaysOn,
            Some("always_on") => SamplerChoice::AlwaysOn,
            Some("always_off") => SamplerChoice::AlwaysOff,
            Some("traceidratio") => SamplerChoice::Ratio(ratio()?),
            Some("parentbased_always_off") => SamplerChoice::ParentAlwaysOff,
            Some("parentbased_traceidratio") => SamplerChoice::ParentRatio(ratio()?),
            Some(v) => return Err(invalid(
                "OTEL_TRACES_SAMPLER",
                v,
                "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
            )),
        };

        let schedule_delay = millis(
            "OTEL_BSP_SCHEDULE_DELAY",
            var("OTEL_BSP_SCHEDULE_DELAY"),
            5_000,
            "milliseconds, an integer from 1 to 3600000",
        )?;
        let max_queue_size = count(
            "OTEL_BSP_MAX_QUEUE_SIZE",
            var("OTEL_BSP_MAX_QUEUE_SIZE"),
            2048,
            "an integer from 1 to 1000000",
        )?;
        let max_export_batch_size = count(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
            512.min(max_queue_size),
            "an integer from 1 to 1000000",
        )?;
        if max_export_batch_size > max_queue_size {
            return Err(invalid(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                &max_export_batch_size.to_string(),
                "at most OTEL_BSP_MAX_QUEUE_SIZE (default 2048)",
            ));
        }

        Ok(Some(Self {
            endpoint,
            protocol,
            headers,
            timeout: timeout.min(export_timeout),
            gzip,
            service_name,
            resource,
            sampler,
            schedule_delay,
            max_queue_size,
            max_export_batch_size,
        }))
    }
}

/// An `http(s)` URL; with `path`, the specification's rule for the general endpoint: the
/// signal's path appended to the base (with one `/` between them).
fn endpoint_url(
    var: &'static str,
    value: &str,
    path: Option<&str>,
) -> Result<reqwest::Url, SettingsError> {
    let expected = "an http:// or https:// URL, e.g. http://localhost:4318";
    let shown = crate::settings::redact_url(value);
    let joined = match path {
        Some(path) => format!("{}/{path}", value.trim().trim_end_matches('/')),
        None => value.trim().to_owned(),
    };
    let url = reqwest::Url::parse(&joined).map_err(|_| invalid(var, &shown, expected))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(var, &shown, expected));
    }
    Ok(url)
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static COUNTERS: OnceLock<SpanCounters> = OnceLock::new();

/// Whether spans are being recorded (a trace pipeline is installed). One relaxed load.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// What became of the spans handed to the exporter, for `/metrics`.
#[derive(Clone)]
pub struct SpanCounters {
    /// `otel_spans_dropped_total{reason}`: `queue_full` (the export queue was full) or
    /// `export_failed` (the collector refused, failed or did not answer in time).
    pub dropped: prometheus::IntCounterVec,
    /// `otel_spans_exported_total`: spans the collector accepted.
    pub exported: prometheus::IntCounter,
}

impl SpanCounters {
    fn new() -> prometheus::Result<Self> {
        Ok(Self {
            dropped: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "otel_spans_dropped_total",
                    "Trace spans dropped: the export queue was full, or their export failed.",
                ),
                &["reason"],
            )?,
            exported: prometheus::IntCounter::new(
                "otel_spans_exported_total",
                "Trace spans the OTLP collector accepted.",
            )?,
        })
    }

    /// Registers the counters on `registry`.
    pub fn register(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.dropped.clone()))?;
        registry.register(Box::new(self.exported.clone()))
    }
}

/// The span counters, once a trace pipeline is installed.
pub fn counters() -> Option<&'static SpanCounters> {
    COUNTERS.get()
}

/// Why the trace pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The OTLP exporter or its HTTP client could not be built.
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Exporter(String),
}

/// The installed pipeline; [`Tracing::shutdown`] flushes it.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Exports what is queued and stops, waiting at most `timeout`; a collector that is down
    /// or slow costs the spans still queued then, not a longer shutdown.
    pub fn shutdown(&self, timeout: Duration) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(error) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(%error, "trace export did not finish at shutdown");
        }
    }
}

/// Builds the pipeline of `settings` and the `tracing` layer that feeds it (the caller
/// installs the layer, then calls [`Tracing::activate`]).
pub(crate) fn pipeline(
    settings: &TraceSettings,
) -> Result<(Tracing, opentelemetry_sdk::trace::SdkTracer), TraceError> {
    let counters = match COUNTERS.get() {
        Some(counters) => counters.clone(),
        None => {
            let counters = SpanCounters::new().map_err(|e| TraceError::Exporter(e.to_string()))?;
            COUNTERS.get_or_init(|| counters).clone()
        }
    };
    // The exporter runs on the batch processor's own thread and blocks it, never a request:
    // a blocking reqwest client (rustls, the same reqwest as the Upstash client). It is built
    // (and later dropped) outside any async runtime, as reqwest's blocking client requires.
    let timeout = settings.timeout;
    let http = std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    })
    .join()
    .map_err(|_| TraceError::Exporter("the HTTP client set-up panicked".into()))?
    .map_err(|e| TraceError::Exporter(e.to_string()))?;
    let headers = settings
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
        .collect();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http)
        .with_endpoint(settings.endpoint.as_str())
        .with_protocol(match settings.protocol {
            Protocol::Protobuf => opentelemetry_otlp::Protocol::HttpBinary,
            Protocol::Json => opentelemetry_otlp::Protocol::HttpJson,
        })
        .with_timeout(settings.timeout)
        .with_headers(headers);
    if settings.gzip {
        exporter = exporter.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    let exporter = exporter
        .build()
        .map_err(|e| TraceError::Exporter(e.to_string()))?;
    let queued = Arc::new(AtomicUsize::new(0));
    let batch = BatchSpanProcessor::builder(CountingExporter {
        inner: exporter,
        queued: queued.clone(),
        counters: counters.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(settings.max_queue_size)
            .with_max_export_batch_size(settings.max_export_batch_size)
            .with_scheduled_delay(settings.schedule_delay)
            .build(),
    )
    .build();
    let processor = BoundedQueue {
        inner: batch,
        queued,
        max: settings.max_queue_size,
        counters,
    };
    let resource = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name(settings.service_name.clone())
        .with_attributes(
            settings
                .resource
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(settings.sampler.sampler())
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("upstash-sessions");
    Ok((Tracing { provider }, tracer))
}

impl Tracing {
    /// Turns span creation on; call once the layer is installed.
    pub(crate) fn activate(&self) {
        ENABLED.store(true, Ordering::Relaxed);
    }
}

/// The SDK's batch processor behind a count of the spans it holds: a span that would not fit
/// is dropped here and counted (the SDK counts its own drops too, but only logs them at
/// shutdown). `queued` counts a span from here until the exporter takes it, which is never
/// less than what the processor's channel holds, so the channel itself never overflows.
#[derive(Debug)]
struct BoundedQueue {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
    max: usize,
    counters: SpanCounters,
}

impl std::fmt::Debug for SpanCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanCounters").finish_non_exhaustive()
    }
}

impl SpanProcessor for BoundedQueue {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let max = self.max;
        let room = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        match room {
            Ok(_) => self.inner.on_end(span),
            Err(_) => self
                .counters
                .dropped
                .with_label_values(&["queue_full"])
                .inc(),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting what it exports and what it fails to.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    counters: SpanCounters,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        self.queued.fetch_sub(n, Ordering::AcqRel);
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.counters.exported.inc_by(n as u64),
            Err(_) => self
                .counters
                .dropped
                .with_label_values(&["export_failed"])
                .inc_by(n as u64),
        }
        result
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The caller's trace context from a request's `traceparent` (and `tracestate`); an empty
/// context when absent or malformed (the W3C rule: start a new trace).
fn extract(headers: &actix_web::http::header::HeaderMap) -> opentelemetry::Context {
    struct Headers<'a>(&'a actix_web::http::header::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// The server span of one request (call only when [`enabled`]): named by its method and
/// route pattern (`GET /profile/`, or the method alone when no route matched), never the raw
/// path, and continuing the caller's trace from `traceparent`.
pub fn server_span(req: &actix_web::dev::ServiceRequest, request_id: &str) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let method = crate::metrics::method_label(req.method());
    let route = req.match_pattern();
    let name = match &route {
        Some(route) => Cow::Owned(format!("{method} {route}")),
        None => Cow::Borrowed(method),
    };
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = &*name,
        otel.kind = "server",
        http.request.method = method,
        http.route = route.as_deref(),
        url.scheme = req.connection_info().scheme(),
        request_id,
        http.response.status_code = tracing::field::Empty,
        error.r#type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(extract(req.headers()));
    span
}

/// Records the answer's status on a server span (a 5xx marks it failed, as the HTTP
/// conventions say; a 4xx is the client's error, not the server's).
pub fn record_status(span: &tracing::Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("error.type", status.to_string());
        span.record("otel.status_code", "ERROR");
    }
}

/// The client span of one Upstash HTTP request (call only when [`enabled`]): named by its
/// command (`GETEX`) or, for `/pipeline` and `/multi-exec`, by the endpoint and the command
/// when all are alike (`pipeline GETEX`), with the commands and their count. Only command
/// names are read from `body`: keys and values never reach a span.
pub fn client_span(endpoint: &'static str, body: &[u8], host: &str) -> tracing::Span {
    let (names, batch) = command_names(endpoint, body);
    let same = names.windows(2).all(|w| w[0] == w[1]);
    let name = match (batch, names.first()) {
        (false, Some(first)) => (*first).to_owned(),
        (true, Some(first)) if same => format!("{endpoint} {first}"),
        _ => endpoint.to_owned(),
    };
    let mut distinct: Vec<&str> = Vec::new();
    for n in &names {
        if !distinct.contains(n) && distinct.len() < 16 {
            distinct.push(n);
        }
    }
    tracing::info_span!(
        target: TARGET,
        "upstash",
        otel.name = name.as_str(),
        otel.kind = "client",
        db.system.name = "redis",
        db.operation.name = if batch { endpoint } else { names.first().copied().unwrap_or("") },
        db.operation.batch.size = batch.then_some(names.len()),
        upstash.commands = distinct.join(" ").as_str(),
        upstash.endpoint = endpoint,
        server.address = host,
        http.request.method = "POST",
        http.response.status_code = tracing::field::Empty,
        upstash.retries = tracing::field::Empty,
        error.r#type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// The command names in a request body (`["GETEX",...]`, or `[["GETEX",...],...]` for a
/// batch endpoint), and whether it is a batch. Names are Redis command names, so they are
/// kept only when they look like one (ASCII letters, digits, `.`, `_`, `-`, `|`, at most 32).
fn command_names(endpoint: &str, body: &[u8]) -> (Vec<&'static str>, bool) {
    use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
    struct First(String);
    impl<'de> serde::Deserialize<'de> for First {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = First;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a command")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First, A::Error> {
                    let name: String = seq.next_element()?.unwrap_or_default();
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(First(name))
                }
            }
            d.deserialize_seq(V)
        }
    }
    let batch = endpoint != "command";
    let names: Vec<String> = if batch {
        serde_json::from_slice::<Vec<First>>(body)
            .map(|v| v.into_iter().map(|f| f.0).collect())
            .unwrap_or_default()
    } else {
        serde_json::from_slice::<First>(body)
            .map(|f| vec![f.0])
            .unwrap_or_default()
    };
    (names.iter().map(|n| intern(n)).collect(), batch)
}

/// A command name as a `'static` label: known names are static already; anything else that
/// looks like a command is interned once (the set of Redis commands is finite), and what does
/// not look like one is `OTHER`, so no key or value can be mistaken for a name.
fn intern(name: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET",
        "GETEX",
        "SET",
        "DEL",
        "EXPIRE",
        "PEXPIRE",
        "EVALSHA",
        "EVAL",
        "SCRIPT",
        "ZADD",
        "ZREM",
        "ZRANGE",
        "ZCARD",
        "ZREMRANGEBYSCORE",
        "MGET",
        "PING",
        "EXISTS",
        "TTL",
        "PTTL",
        "SCAN",
        "DBSIZE",
        "UNLINK",
        "GETDEL",
        "INCR",
    ];
    let upper = name.to_ascii_uppercase();
    if let Some(known) = KNOWN.iter().find(|k| **k == upper) {
        return known;
    }
    let plausible = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || matches!(b, b'.' | b'_' | b'-' | b'|'));
    if !plausible {
        return "OTHER";
    }
    static SEEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock_ignoring_poison();
    if let Some(found) = seen.iter().find(|s| **s == upper) {
        return found;
    }
    if seen.len() >= 256 {
        return "OTHER";
    }
    let leaked: &'static str = Box::leak(upper.into_boxed_str());
    seen.push(leaked);
    leaked
}

/// Records one Upstash call's outcome on its client span.
/// (The HTTP status is recorded by each attempt, so the last one's stays.)
pub fn record_call(span: &tracing::Span, retries: u32, error: Option<&str>) {
    span.record("upstash.retries", retries);
    if let Some(kind) = error {
        span.record("error.type", kind);
        span.record("otel.status_code", "ERROR");
    }
}

/// The current OpenTelemetry context (the active server span), to link an auto-pipelined
/// command's shared request back to its caller; `None` with tracing off.
pub fn caller() -> Option<opentelemetry::Context> {
    enabled().then(opentelemetry::Context::current)
}

/// A client span for a request shared by several callers: a child of the first caller's
/// span, linked to every caller's span.
pub fn shared_client_span(
    span: tracing::Span,
    callers: &[Option<opentelemetry::Context>],
) -> tracing::Span {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let mut callers = callers.iter().flatten();
    if let Some(first) = callers.next() {
        let _ = span.set_parent(first.clone());
        span.add_link(first.span().span_context().clone());
    }
    for caller in callers {
        span.add_link(caller.span().span_context().clone());
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<TraceSettings>, SettingsError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        TraceSettings::from_lookup(|k| map.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn tracing_is_off_without_an_endpoint_or_when_disabled() {
        assert!(parse(&[]).unwrap().is_none());
        assert!(parse(&[("OTEL_SERVICE_NAME", "x")]).unwrap().is_none());
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        assert!(parse(&on).unwrap().is_some());
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert!(parse(&[on[0], off]).unwrap().is_none(), "{off:?}");
        }
    }

    #[test]
    fn the_general_endpoint_gets_the_traces_path_and_the_traces_endpoint_is_kept_as_given() {
        for base in ["http://c:4318", "http://c:4318/"] {
            let s = parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", base)])
                .unwrap()
                .unwrap();
            assert_eq!(s.endpoint.as_str(), "http://c:4318/v1/traces");
        }
        let s = parse(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t/custom"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint.as_str(), "https://t/custom");
    }

    #[test]
    fn defaults_follow_the_specification_with_this_service_name() {
        let s = parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(s.service_name, "upstash-sessions");
        assert_eq!(s.protocol, Protocol::Protobuf);
        assert_eq!(s.sampler, SamplerChoice::ParentAlwaysOn);
        assert_eq!(s.max_queue_size, 2048);
        assert_eq!(s.max_export_batch_size, 512);
        assert_eq!(s.schedule_delay, Duration::from_secs(5));
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert!(!s.gzip);
    }

    #[test]
    fn service_name_and_resource_attributes_are_read_with_the_name_variable_winning() {
        let s = parse(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs,deployment.environment=prod%2Ceu",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.service_name, "from-attrs");
        assert_eq!(
            s.resource,
            vec![("deployment.environment".into(), "prod,eu".into())]
        );
        let s = parse(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "named"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.service_name, "named");
    }

    #[test]
    fn bad_values_are_refused_in_one_line_naming_the_variable() {
        let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://c/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "json"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "-1"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_SDK_DISABLED", "maybe"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
        ] {
            let mut pairs = vec![on, (var, value)];
            if var == "OTEL_TRACES_SAMPLER_ARG" {
                pairs.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
            }
            let error = parse(&pairs).unwrap_err().to_string();
            assert!(error.starts_with(var), "{var}: {error}");
            assert_eq!(error.lines().count(), 1);
        }
        let error = parse(&[
            on,
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
            "{error}"
        );
    }

    #[test]
    fn exporter_headers_are_parsed_and_never_echoed() {
        let s = parse(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr%3Dt,x-team=a"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.headers.len(), 2);
        assert_eq!(s.headers[0].1.expose_secret(), "s3cr=t");
        assert!(!format!("{s:?}").contains("s3cr"));
        let error = parse(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key s3cret"),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("OTEL_EXPORTER_OTLP_HEADERS"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn client_spans_take_command_names_only_never_keys_or_values() {
        let (names, batch) = command_names("command", br#"["GETEX","session:abc","EX","900"]"#);
        assert_eq!((names, batch), (vec!["GETEX"], false));
        let (names, batch) = command_names(
            "pipeline",
            br#"[["GETEX","session:a","EX","900"],["GETEX","session:b"],["EVALSHA","f00","1","k"]]"#,
        );
        assert_eq!((names, batch), (vec!["GETEX", "GETEX", "EVALSHA"], true));
        // Something that is not a command name is never taken for one.
        let (names, _) = command_names("command", br#"["alice@example.com","x"]"#);
        assert_eq!(names, vec!["OTHER"]);
    }
}
