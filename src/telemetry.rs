//! Logging through `tracing`: human-readable lines by default, one JSON object per line with
//! `LOG_FORMAT=json`; the level comes from `RUST_LOG` (default `info`). With traces on
//! (`OTEL_*`, see [`crate::traces`]) the same subscriber also feeds the OpenTelemetry layer,
//! and JSON lines written while a span is active carry its `trace_id` and `span_id`.

use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::{
    filter::{filter_fn, FilterExt},
    fmt::{self, format::Writer, FmtContext, FormatEvent, FormatFields},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
    EnvFilter, Layer,
};

use crate::{
    settings::LogFormat,
    traces::{self, TraceError, TraceSettings, Tracing},
};

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colours only on a terminal: a file or a log collector gets plain text (and the
        // request span's fields, formatted for every request, are cheaper without them).
        LogFormat::Pretty => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Installs the global subscriber, with the trace pipeline of `traces` when given (then the
/// returned [`Tracing`] flushes it at shutdown). Without traces this is [`init`], unchanged:
/// tracing off costs the request path nothing.
pub fn init_with_traces(
    format: LogFormat,
    traces: Option<&TraceSettings>,
) -> Result<Option<Tracing>, TraceError> {
    let Some(settings) = traces else {
        init(format);
        return Ok(None);
    };
    let (tracing, tracer) = traces::pipeline(settings)?;
    // The trace layer sees only the trace spans (no log event, no other span); the log layer
    // sees everything but them, so log lines keep their request span and fields.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(
            filter_fn(|meta| meta.is_span() && meta.target() == traces::TARGET)
                .with_max_level_hint(tracing::Level::INFO),
        );
    let not_traces = filter_fn(|meta| meta.target() != traces::TARGET);
    let installed = match format {
        LogFormat::Pretty => tracing_subscriber::registry()
            .with(otel)
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_filter(env_filter().and(not_traces)),
            )
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(otel)
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .event_format(TraceIds(
                        fmt::format()
                            .json()
                            .flatten_event(true)
                            .with_current_span(true)
                            .with_span_list(false),
                    ))
                    .fmt_fields(fmt::format::JsonFields::new())
                    .with_filter(env_filter().and(not_traces)),
            )
            .try_init(),
    };
    if installed.is_ok() {
        tracing.activate();
    }
    Ok(Some(tracing))
}

/// A JSON event format that starts each line with `"trace_id"` and `"span_id"` of the active
/// OpenTelemetry span, when there is one.
struct TraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for TraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        use opentelemetry::trace::TraceContextExt;
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let ids = span.span_context();
        if !ids.is_valid() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(
                writer,
                "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",{rest}",
                ids.trace_id(),
                ids.span_id()
            ),
            None => writer.write_str(&line),
        }
    }
}

/// An error and every cause below it, `outer: inner: innermost`, for one log field.
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_shows_every_cause_in_order() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(ErrorChain(&error).to_string(), "outer: inner");
    }
}
