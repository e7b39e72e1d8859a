//! Traces and logs: `tracing` spans exported through OpenTelemetry, W3C
//! TraceContext + Baggage propagation, JSON (or human) logs that carry the
//! trace and span ids of the RPC they belong to.
//!
//! Export is configured by the standard `OTEL_*` variables: with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) set, spans go to
//! that collector over OTLP/gRPC in batches; without it nothing is exported,
//! but spans still get real ids so that propagation and log correlation work.
//! A collector that is down costs dropped batches, never a crash.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines when a person watches (stdout and stderr are
    /// terminals), JSON otherwise (a pipe, a file, a container's log).
    Auto,
    /// One JSON object per line, with the fields of the current span and of
    /// every span around it (so `trace_id` from the RPC span is on each line).
    Json,
    /// Compact human-readable lines.
    Pretty,
    /// JSON lines through the test harness's capture, also kept for
    /// [`captured_logs`].
    #[value(skip)]
    Test,
}

impl LogFormat {
    /// `Auto` decided for this process; the others as they are.
    pub fn resolve(self) -> Self {
        use std::io::IsTerminal;
        match self {
            Self::Auto if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() => {
                Self::Pretty
            }
            Self::Auto => Self::Json,
            other => other,
        }
    }
}

/// Owns the tracer provider; [`Telemetry::shutdown`] flushes what is buffered.
#[derive(Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Flushes and stops the exporter. Runs on a blocking thread: the batch
    /// processor's shutdown blocks, which would stall (and lose spans on) a
    /// current-thread runtime.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = result {
            eprintln!("telemetry shutdown: {error}");
        }
    }
}

/// Sets up tracing for `service_name` with export from the `OTEL_*` variables.
pub fn init(service_name: &str, format: LogFormat) -> Result<Telemetry, crate::BoxError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service_name));
    if otlp_configured() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    install(builder.build(), format)
}

/// Sets up tracing with a provider built by the caller (tests use an
/// in-memory exporter). Fails if a global subscriber is already installed.
pub fn install(
    provider: SdkTracerProvider,
    format: LogFormat,
) -> Result<Telemetry, crate::BoxError> {
    let format = format.resolve();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry::propagation::TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("meshwork");

    // The exporter talks gRPC itself: keep the transport crates out of the
    // OpenTelemetry layer or it would trace its own exports.
    let otel_filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("h2", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("tonic", LevelFilter::OFF)
        .with_target("tower", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(otel_filter);

    let log_filter = EnvFilter::try_from_env("MESHWORK_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn,tower=warn,sqlx=warn"));
    let logs = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
        // Auto is resolved above; a person reads the compact form.
        LogFormat::Pretty | LogFormat::Auto => {
            fmt::layer().compact().with_writer(std::io::stderr).boxed()
        }
        // Tests log what production logs (JSON), to the test harness's
        // output and to a buffer that tests can search (see
        // [`captured_logs`]).
        LogFormat::Test => fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(fmt::writer::TestWriter::new().and(|| Capture))
            .boxed(),
    };

    tracing_subscriber::registry()
        .with(otel)
        .with(logs.with_filter(log_filter))
        .try_init()?;
    Ok(Telemetry { provider })
}

/// A resource naming the service, unless `OTEL_SERVICE_NAME` already does.
fn resource(service_name: &str) -> Resource {
    let builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name(service_name.to_owned()).build()
    }
}

/// Whether the `OTEL_*` variables ask for OTLP export.
fn otlp_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The trace id of the current span as 32 hex digits, when there is one.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    let span_context = cx.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Everything logged so far in this process under [`LogFormat::Test`].
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&CAPTURED.lock().expect("log capture lock")).into_owned()
}

static CAPTURED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Appends log lines to [`CAPTURED`].
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED
            .lock()
            .expect("log capture lock")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
