//! Spans of the real telemetry setup, kept in memory for assertions.

use std::sync::OnceLock;

use meshwork_runtime::telemetry::{self, LogFormat};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

/// The process-wide in-memory exporter, installed on first use with the same
/// subscriber, layers and propagators as production.
pub fn traces() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        telemetry::install(provider, LogFormat::Test).expect("no other global subscriber in tests");
        exporter
    })
}

/// Every finished span of `trace_id` (32 hex digits).
pub fn spans_of_trace(trace_id: &str) -> Vec<SpanData> {
    traces()
        .get_finished_spans()
        .expect("read finished spans")
        .into_iter()
        .filter(|span| span.span_context.trace_id().to_string() == trace_id)
        .collect()
}
