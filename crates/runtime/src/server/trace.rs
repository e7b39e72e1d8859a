//! The server side of every call: one tower layer that continues the caller's
//! trace, opens a server span with the OpenTelemetry RPC semantic conventions,
//! enforces the deadline (the caller's `grpc-timeout`, capped by the server's
//! request timeout) with DEADLINE_EXCEEDED, makes that deadline available to
//! outgoing calls, and records RED metrics, also for calls the client
//! cancelled (the future is dropped: recorded as CANCELLED).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceContextExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{caller, contracts, deadline, metrics, propagation};

/// Adds [`ServerTrace`] around a service.
#[derive(Debug, Clone, Copy)]
pub struct ServerTraceLayer {
    /// The longest a call may take, whatever its caller asks.
    pub request_timeout: Duration,
}

impl<S> tower::Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTrace {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ServerTrace<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S, B, R> tower::Service<http::Request<B>> for ServerTrace<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        // Made-up paths share one label, so they cannot grow the series.
        let (service, method) = if contracts::is_known(path) {
            split_path(path)
        } else {
            ("unknown".to_owned(), "unknown".to_owned())
        };
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            meshwork.deadline_ms = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        let _ = span.set_parent(propagation::extract(request.headers()));
        let span_context = span.context().span().span_context().clone();
        if span_context.is_valid() {
            span.record("trace_id", tracing::field::display(span_context.trace_id()));
            span.record("span_id", tracing::field::display(span_context.span_id()));
        }
        let started = Instant::now();
        let requested = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(deadline::parse_grpc_timeout);
        if let Some(requested) = requested {
            // The caller's budget on arrival: shows where time went across hops.
            span.record("meshwork.deadline_ms", requested.as_millis() as i64);
        }
        // tonic also times calls out on `grpc-timeout`, outside every layer,
        // and answers CANCELLED; ending a millisecond earlier makes the
        // answer DEADLINE_EXCEEDED, as the gRPC spec has it, and recorded.
        let budget = requested.map_or(self.request_timeout, |r| r.min(self.request_timeout));
        let deadline = (started + budget)
            .checked_sub(Duration::from_millis(1))
            .unwrap_or(started);

        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let mut outcome = Outcome {
            span: span.clone(),
            service,
            method,
            started,
            recorded: false,
        };
        Box::pin(async move {
            let subject = caller::from_headers(request.headers());
            let call = caller::scope(
                subject,
                deadline::scope(Some(deadline), inner.call(request)),
            )
            .instrument(span);
            let result = match tokio::time::timeout_at(deadline.into(), call).await {
                Ok(result) => result,
                Err(_) => Ok(tonic::Status::deadline_exceeded(
                    "deadline exceeded while handling the call",
                )
                .into_http()),
            };
            // Unary errors come back trailers-only, with `grpc-status` in the
            // headers; a response without it is a success whose status follows
            // in the trailers. (A streaming call failing mid-stream is counted
            // as OK here; no Meshwork RPC streams yet, but health Watch does.)
            let code = match &result {
                Ok(response) => status_code(response.headers()),
                Err(_) => tonic::Code::Internal,
            };
            outcome.record(code);
            result
        })
    }
}

/// Records a call once: when it ends, or as CANCELLED when its future is
/// dropped first (the client went away).
struct Outcome {
    span: tracing::Span,
    service: String,
    method: String,
    started: Instant,
    recorded: bool,
}

impl Outcome {
    fn record(&mut self, code: tonic::Code) {
        self.recorded = true;
        record(
            &self.span,
            &self.service,
            &self.method,
            code,
            self.started.elapsed(),
        );
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(tonic::Code::Cancelled);
        }
    }
}

fn record(span: &tracing::Span, service: &str, method: &str, code: tonic::Code, elapsed: Duration) {
    span.record("rpc.grpc.status_code", code as i32);
    if is_server_error(code) {
        span.record("otel.status_code", "ERROR");
    }
    metrics::server().record(service, method, code, elapsed);
}

/// The codes that mean the server failed, per the OpenTelemetry gRPC
/// conventions; the others are the client's problem and leave the span unset.
fn is_server_error(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss
    )
}

/// The code in a `grpc-status` header, OK when absent.
pub(crate) fn status_code(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
        .unwrap_or(tonic::Code::Ok)
}

/// "/pkg.Service/Method" as ("pkg.Service", "Method").
pub(crate) fn split_path(path: &str) -> (String, String) {
    let path = path.trim_start_matches('/');
    match path.split_once('/') {
        Some((service, method)) => (service.to_owned(), method.to_owned()),
        None => (path.to_owned(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_grpc_paths() {
        assert_eq!(
            split_path("/meshwork.finance.account.v1.AccountService/GetAccount"),
            (
                "meshwork.finance.account.v1.AccountService".to_owned(),
                "GetAccount".to_owned()
            )
        );
        assert_eq!(split_path("/odd"), ("odd".to_owned(), String::new()));
    }

    /// A service that answers OK after `delay`.
    fn slow(
        delay: Duration,
    ) -> ServerTrace<
        impl tower::Service<
            http::Request<()>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
            Future = impl Send,
        > + Clone,
    > {
        let inner = tower::service_fn(move |_request: http::Request<()>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::default()))
        });
        ServerTrace {
            inner,
            request_timeout: Duration::from_secs(30),
        }
    }

    fn request(timeout: Option<&str>) -> http::Request<()> {
        let mut request = http::Request::builder().uri("/grpc.health.v1.Health/Check");
        if let Some(timeout) = timeout {
            request = request.header("grpc-timeout", timeout);
        }
        request.body(()).unwrap()
    }

    fn count(code: tonic::Code) -> u64 {
        metrics::server().count("grpc.health.v1.Health", "Check", code)
    }

    #[tokio::test]
    async fn calls_past_their_deadline_end_with_deadline_exceeded() {
        use tower::ServiceExt;
        let before = count(tonic::Code::DeadlineExceeded);
        let response = slow(Duration::from_secs(5))
            .oneshot(request(Some("20m")))
            .await
            .unwrap();
        assert_eq!(
            status_code(response.headers()),
            tonic::Code::DeadlineExceeded
        );
        assert_eq!(count(tonic::Code::DeadlineExceeded), before + 1);

        let response = slow(Duration::from_millis(1))
            .oneshot(request(Some("5S")))
            .await
            .unwrap();
        assert_eq!(status_code(response.headers()), tonic::Code::Ok);
    }

    #[tokio::test]
    async fn calls_the_client_abandons_are_counted_as_cancelled() {
        use tower::ServiceExt;
        let before = count(tonic::Code::Cancelled);
        let call = slow(Duration::from_secs(5)).oneshot(request(None));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), call)
                .await
                .is_err(),
            "the call was still running"
        );
        assert_eq!(count(tonic::Code::Cancelled), before + 1);
    }

    #[test]
    fn made_up_paths_share_one_label() {
        assert!(contracts::is_known("/grpc.health.v1.Health/Check"));
        assert!(!contracts::is_known("/x.y/z"));
    }

    #[test]
    fn reads_status_from_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), tonic::Code::Ok);
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(status_code(&headers), tonic::Code::NotFound);
    }
}
