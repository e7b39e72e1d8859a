//! The `tracing` rows: what exporting every span over OTLP costs.
//!
//! The same scenario as the platform row (GetBalance of cached accounts
//! through the full server stack) runs in a child process twice per round:
//! once with no exporter, once with every span sent over OTLP/gRPC to a
//! receiver in this process (a collector on the same machine, as a sidecar
//! or node agent would be). A process cannot switch its tracer's exporter
//! on and off, hence the children; they alternate, three rounds each, and
//! the median round of each counts. The receiver decodes every request and
//! counts its spans, so the row also shows that the spans arrived.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Request, Response, Status};

/// Rounds of each of the two children.
const ROUNDS: usize = 3;

/// The line a child prints its measurement on.
pub const RESULT_PREFIX: &str = "TRACING_RESULT";

/// Counts the spans it is sent.
#[derive(Default, Clone)]
struct Receiver {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// One child's measurement.
#[derive(Debug, Clone, Copy)]
struct Child {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    ops: u64,
    /// Spans the receiver had when the child printed its result (the end
    /// of the measured window) and after the child flushed and exited,
    /// from the child's start.
    spans_in_window: u64,
    spans_after_flush: u64,
}

/// Runs the children and gives the table rows.
pub async fn run(concurrency: usize, seconds: u64) -> anyhow::Result<Vec<String>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let receiver = Receiver::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            // Large batches are the cheap way to send every span.
            .add_service(
                TraceServiceServer::new(receiver.clone()).max_decoding_message_size(64 << 20),
            )
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        off.push(child(concurrency, seconds, None, &receiver.spans).await?);
        on.push(child(concurrency, seconds, Some(&endpoint), &receiver.spans).await?);
    }
    let off = median(off);
    let on = median(on);
    // Of the median round itself. The child's setup (opening and warming
    // the accounts) adds a few hundred spans to about 10^5.
    let per_call = |spans: u64| spans as f64 / on.ops.max(1) as f64;
    let (in_window, flushed) = (per_call(on.spans_in_window), per_call(on.spans_after_flush));
    Ok(vec![
        format!(
            "| GetBalance, full stack, span export off (baseline) | SQLite + in-process | {:.0} | {:.2} | {:.2} | {} | baseline |",
            off.rate, off.p50_ms, off.p99_ms, off.errors
        ),
        format!(
            "| GetBalance, full stack, every span exported over OTLP ({in_window:.2} spans per call received within the window, {flushed:.2} after the flush) | SQLite + in-process | {:.0} | {:.2} | {:.2} | {} | {:.2}× |",
            on.rate,
            on.p50_ms,
            on.p99_ms,
            on.errors,
            on.rate / off.rate
        ),
    ])
}

fn median(mut rounds: Vec<Child>) -> Child {
    rounds.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    rounds[rounds.len() / 2]
}

/// Runs this binary as a child measuring the scenario, exporting to
/// `endpoint` when given; `spans` is the receiver's count.
async fn child(
    concurrency: usize,
    seconds: u64,
    endpoint: Option<&str>,
    spans: &Arc<AtomicU64>,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut command = std::process::Command::new(exe);
    command
        .args([
            "--tracing-child",
            "--concurrency",
            &concurrency.to_string(),
            "--seconds",
            &seconds.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Nothing of the bench's own OpenTelemetry settings but the batch
    // sizes: an inherited `OTEL_TRACES_EXPORTER=none` or a compression the
    // receiver does not take would make the exporting child look free.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("OTEL_") && !name.starts_with("OTEL_BSP_") {
            command.env_remove(name);
        }
    }
    if let Some(endpoint) = endpoint {
        // Every span: a queue that holds a few seconds of them, so that none
        // is dropped for want of room, sent in large batches. (A batch
        // setting given to the bench is passed on as it is.)
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_TRACES_SAMPLER", "always_on");
        for (name, value) in [
            ("OTEL_BSP_MAX_QUEUE_SIZE", "262144"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
            ("OTEL_BSP_SCHEDULE_DELAY", "1000"),
        ] {
            if std::env::var_os(name).is_none() {
                command.env(name, value);
            }
        }
    }
    let spans = Arc::clone(spans);
    // A blocking reader on its own thread: the receiver keeps running here.
    // The count is taken when the result line arrives (the window's end),
    // and again after the child flushed its exporter and exited.
    tokio::task::spawn_blocking(move || -> anyhow::Result<Child> {
        use std::io::BufRead as _;
        let start = spans.load(Ordering::Relaxed);
        let mut process = command.spawn()?;
        let stdout = process.stdout.take().context("the child's stdout")?;
        let mut result = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(rest) = line.strip_prefix(RESULT_PREFIX) {
                result = Some((rest.to_owned(), spans.load(Ordering::Relaxed) - start));
            }
        }
        let status = process.wait()?;
        let (line, in_window) =
            result.with_context(|| format!("the tracing child printed no result ({status})"))?;
        anyhow::ensure!(status.success(), "the tracing child failed: {status}");
        let numbers: Vec<f64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let [rate, p50_ms, p99_ms, errors, ops] = numbers[..] else {
            anyhow::bail!("a tracing result has five numbers: {line}");
        };
        Ok(Child {
            rate,
            p50_ms,
            p99_ms,
            errors: errors as u64,
            ops: ops as u64,
            spans_in_window: in_window,
            spans_after_flush: spans.load(Ordering::Relaxed) - start,
        })
    })
    .await
    .context("the tracing child's reader")?
}
