//! Channels to other services, with the client half of tracing written once.
//!
//! [`channel`] gives a lazily connecting channel wrapped in [`MeshChannel`],
//! which every inter-service call goes through. For each call it:
//! - opens a client span (OpenTelemetry RPC conventions) and injects
//!   `traceparent`/`tracestate`/`baggage` into the metadata;
//! - sends `grpc-timeout` no longer than what is left of the caller's own
//!   deadline (see [`crate::deadline`]) and gives up locally at that point;
//! - retries UNAVAILABLE (and connection failures), and an attempt that
//!   outlived its own `attempt_timeout` (its answer was lost), with jittered
//!   exponential backoff, but only for methods whose contract says
//!   `option idempotency_level = IDEMPOTENT` or `NO_SIDE_EFFECTS`. This is
//!   the one retry loop of the mesh: callers do not wrap it in their own.
//!   Total attempts and total time are bounded, and the span records both
//!   (`attempts`, `retry.max_attempts`, `retry.budget_ms`);
//! - passes on who the call is for (see [`crate::caller`]);
//! - records RED metrics for the call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::server::trace::{split_path, status_code};
use crate::{BoxError, caller, deadline, metrics, propagation};

/// How outgoing calls behave.
#[derive(Debug, Clone, Copy)]
pub struct ClientPolicy {
    /// Deadline of a call when the caller has none (and the cap when it has).
    pub timeout: Duration,
    /// Attempts in total for an idempotent method (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, full jitter.
    pub base_backoff: Duration,
    /// Deadline of one attempt (at most what is left of the call's); an
    /// idempotent call whose attempt outlives it is asked again. `None`: an
    /// attempt may take all the time left.
    pub attempt_timeout: Option<Duration>,
}

impl Default for ClientPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            base_backoff: Duration::from_millis(50),
            attempt_timeout: None,
        }
    }
}

/// A channel to `url` (e.g. `http://account:50051`) that connects on first use.
pub fn channel(url: &str, policy: ClientPolicy) -> Result<MeshChannel, BoxError> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    Ok(MeshChannel {
        inner: endpoint.connect_lazy(),
        policy,
    })
}

/// A [`Channel`] with the client layer; generated clients take it as is:
/// `AccountServiceClient::new(channel)`.
#[derive(Debug, Clone)]
pub struct MeshChannel {
    inner: Channel,
    policy: ClientPolicy,
}

impl tower::Service<http::Request<Body>> for MeshChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let channel = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy;
        let (service, method) = split_path(request.uri().path());
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            attempts = tracing::field::Empty,
            retry.max_attempts = tracing::field::Empty,
            retry.budget_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let call_span = span.clone();
        Box::pin(
            async move {
                let result = call_with_policy(channel, policy, request, &call_span).await;
                let code = match &result {
                    Ok(response) => status_code(response.headers()),
                    Err(error) => status_of(error.as_ref()),
                };
                call_span.record("rpc.grpc.status_code", code as i32);
                if code != tonic::Code::Ok {
                    call_span.record("otel.status_code", "ERROR");
                }
                metrics::client().record(&service, &method, code, started.elapsed());
                result
            }
            .instrument(span),
        )
    }
}

async fn call_with_policy(
    mut channel: Channel,
    policy: ClientPolicy,
    request: http::Request<Body>,
    span: &tracing::Span,
) -> Result<http::Response<Body>, BoxError> {
    // The caller's own per-call timeout (tonic's `Request::set_timeout`)
    // shortens the budget further; it never lengthens it.
    let requested = request
        .headers()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(deadline::parse_grpc_timeout);
    let budget = deadline::budget(policy.timeout);
    let deadline = Instant::now() + requested.map_or(budget, |r| r.min(budget));
    let attempts = if is_idempotent(request.uri().path()) {
        policy.max_attempts.max(1)
    } else {
        1
    };
    span.record("retry.max_attempts", i64::from(attempts));
    span.record(
        "retry.budget_ms",
        deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as i64,
    );
    let (mut parts, body) = request.into_parts();
    propagation::inject(&span.context(), &mut parts.headers);
    // Who the call is for travels on, unless the caller named someone.
    if let Some(subject) = caller::subject()
        && !parts.headers.contains_key(caller::SUBJECT_HEADER)
        && let Ok(value) = http::HeaderValue::from_str(&subject)
    {
        parts.headers.insert(caller::SUBJECT_HEADER, value);
    }

    // Only a call that may be retried needs its body twice; unary bodies are small.
    let mut body = Some(body);
    let buffered = match attempts {
        1 => None,
        _ => Some(
            body.take()
                .expect("body not yet used")
                .collect()
                .await?
                .to_bytes(),
        ),
    };

    let mut attempt = 0;
    loop {
        attempt += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Box::new(tonic::Status::deadline_exceeded(
                "deadline exceeded before the call was sent",
            )));
        }
        let body = match &buffered {
            Some(bytes) => Body::new(http_body_util::Full::new(bytes.clone())),
            None => body
                .take()
                .expect("a call that is not retried is sent once"),
        };
        let mut request = http::Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone())
            .version(parts.version)
            .body(body)?;
        *request.headers_mut() = parts.headers.clone();
        // This attempt's share: all that is left, or its own timeout.
        let budget = policy
            .attempt_timeout
            .map_or(remaining, |limit| limit.min(remaining));
        let cut_short = budget < remaining;
        request.headers_mut().insert(
            "grpc-timeout",
            http::HeaderValue::from_str(&deadline::format_grpc_timeout(budget))?,
        );

        let sent = tokio::time::timeout(budget, async {
            std::future::poll_fn(|cx| tower::Service::poll_ready(&mut channel, cx)).await?;
            tower::Service::call(&mut channel, request).await
        })
        .await;
        let outcome = match sent {
            Ok(outcome) => outcome,
            // The attempt's own timeout, with time left for another: its
            // answer is lost, and an idempotent call may ask again.
            Err(_) if cut_short && attempt < attempts => {
                tracing::debug!(attempt, "attempt timed out; asking again");
                let pause = backoff(&policy, attempt)
                    .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
                continue;
            }
            Err(_) => {
                span.record("attempts", i64::from(attempt));
                return Err(Box::new(tonic::Status::deadline_exceeded(
                    "deadline exceeded waiting for the response",
                )));
            }
        };
        // tonic's own timer (from the grpc-timeout header) may beat ours:
        // the same lost answer.
        let timed_out = matches!(&outcome, Err(error) if is_timeout(error));
        if timed_out && !(cut_short && attempt < attempts) {
            span.record("attempts", i64::from(attempt));
            return Err(Box::new(tonic::Status::deadline_exceeded(
                "deadline exceeded waiting for the response",
            )));
        }
        let retryable = match &outcome {
            Ok(response) => match status_code(response.headers()) {
                tonic::Code::Unavailable => true,
                // The server gave up at this attempt's deadline, which was
                // shorter than the call's.
                tonic::Code::DeadlineExceeded => cut_short,
                _ => false,
            },
            // Connection refused or reset: the request may not have reached
            // the server, and the method is safe to repeat anyway.
            Err(_) => true,
        };
        if !retryable || attempt >= attempts {
            span.record("attempts", i64::from(attempt));
            return outcome.map_err(Into::into);
        }
        let pause =
            backoff(&policy, attempt).min(deadline.saturating_duration_since(Instant::now()));
        tracing::debug!(attempt, ?pause, "retrying after UNAVAILABLE");
        tokio::time::sleep(pause).await;
    }
}

/// Whether the contract marks `path` ("/pkg.Service/Method") as safe to retry.
pub fn is_idempotent(path: &str) -> bool {
    crate::contracts::is_idempotent(path)
}

/// Whether the call stack gave up on a timer (tonic's `TimeoutExpired`).
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The gRPC code an error of the call stack stands for.
fn status_of(error: &(dyn std::error::Error + 'static)) -> tonic::Code {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(status) = error.downcast_ref::<tonic::Status>() {
            return status.code();
        }
        source = error.source();
    }
    tonic::Code::Unavailable
}

fn backoff(policy: &ClientPolicy, attempt: u32) -> Duration {
    let cap = policy.base_backoff.saturating_mul(1 << attempt.min(10));
    cap.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_comes_from_the_contracts() {
        assert!(is_idempotent(
            "/meshwork.finance.account.v1.AccountService/GetAccount"
        ));
        assert!(is_idempotent(
            "/meshwork.finance.account.v1.AccountService/Deposit"
        ));
        assert!(!is_idempotent(
            "/meshwork.finance.account.v1.AccountService/NoSuchMethod"
        ));
    }

    #[test]
    fn backoff_stays_under_its_doubling_cap() {
        let policy = ClientPolicy::default();
        for attempt in 1..6 {
            assert!(backoff(&policy, attempt) <= policy.base_backoff * (1 << attempt));
        }
    }
}
