//! The mesh client: deadlines shrink across hops, idempotent calls are
//! retried on UNAVAILABLE, limits are enforced.

use std::time::{Duration, Instant};

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::finance::account::v1::account_service_client::AccountServiceClient;
use meshwork_runtime::client::{self, ClientPolicy};
use meshwork_runtime::deadline;
use meshwork_runtime::server::ServerLimits;
use meshwork_testkit::{Backend, Mesh, spans_of_trace, traces};
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::support::*;

/// Runs `call` inside a fresh caller span; returns that span's trace id.
async fn traced<F: std::future::Future>(call: F) -> (String, F::Output) {
    traces();
    let caller = tracing::info_span!("caller");
    let trace_id = caller
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string();
    let output = call.instrument(caller).await;
    (trace_id, output)
}

fn int_attribute(trace_id: &str, kind: SpanKind, key: &str) -> Option<i64> {
    spans_of_trace(trace_id)
        .into_iter()
        .filter(|s| s.span_kind == kind)
        .find_map(|span| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .and_then(|kv| match kv.value {
                    Value::I64(v) => Some(v),
                    _ => None,
                })
        })
}

async fn deadline_seen_by_server(caller_deadline: Option<Duration>) -> i64 {
    let h = start(&Backend::Embedded).await;
    let mut client = AccountServiceClient::new(h.server.mesh_channel());
    let call = client.get_account(pb::GetAccountRequest {
        account_id: "acc_x".into(),
    });
    let (trace_id, _) = traced(deadline::scope(
        caller_deadline.map(|d| Instant::now() + d),
        call,
    ))
    .await;
    let mut seen = None;
    assert!(
        eventually(|| {
            seen = int_attribute(&trace_id, SpanKind::Server, "meshwork.deadline_ms");
            std::future::ready(seen.is_some())
        })
        .await,
        "the server saw no grpc-timeout"
    );
    seen.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_deadline_travels_as_grpc_timeout() {
    let with_deadline = deadline_seen_by_server(Some(Duration::from_millis(1_500))).await;
    assert!(
        (1..=1_500).contains(&with_deadline),
        "server saw {with_deadline} ms of a 1500 ms budget"
    );
    let default = deadline_seen_by_server(None).await;
    let policy = ClientPolicy::default().timeout.as_millis() as i64;
    assert!(
        default > 1_500 && default <= policy,
        "server saw {default} ms of the default {policy} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_calls_are_retried_while_unavailable_then_fail() {
    // A port nobody listens on: every attempt is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let policy = ClientPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(5),
        ..ClientPolicy::default()
    };
    let mut client =
        AccountServiceClient::new(client::channel(&format!("http://{dead}"), policy).unwrap());
    let (trace_id, result) = traced(client.get_account(pb::GetAccountRequest {
        account_id: "acc_x".into(),
    }))
    .await;
    let status = result.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    // The span is exported when the client drops the call future: poll for it.
    let mut attempts = None;
    eventually(|| {
        attempts = int_attribute(&trace_id, SpanKind::Client, "attempts");
        std::future::ready(attempts.is_some())
    })
    .await;
    assert_eq!(attempts, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_answer_is_lost_is_asked_again_within_the_bounds() {
    // A server that takes connections and never answers: every attempt's
    // answer is lost.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let policy = ClientPolicy {
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        base_backoff: Duration::from_millis(5),
        attempt_timeout: Some(Duration::from_millis(100)),
    };
    let mut client =
        AccountServiceClient::new(client::channel(&format!("http://{addr}"), policy).unwrap());
    let (trace_id, result) = traced(client.get_account(pb::GetAccountRequest {
        account_id: "acc_x".into(),
    }))
    .await;
    let status = result.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    let mut seen = None;
    eventually(|| {
        seen = int_attribute(&trace_id, SpanKind::Client, "attempts").zip(int_attribute(
            &trace_id,
            SpanKind::Client,
            "retry.max_attempts",
        ));
        std::future::ready(seen.is_some())
    })
    .await;
    // Three attempts of 100 ms, not the whole 5 s budget on the first.
    assert_eq!(seen, Some((3, 3)));
    let budget = int_attribute(&trace_id, SpanKind::Client, "retry.budget_ms").unwrap();
    assert!(budget > 4_000 && budget <= 5_000, "budget {budget} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_configured_limit_are_refused() {
    let limits = ServerLimits {
        max_message_bytes: 64 * 1024,
        ..ServerLimits::default()
    };
    let server = Mesh::builder(&Backend::Embedded)
        .await
        .limits(limits)
        .start(&[&finance_account::SERVICE])
        .await;
    let mut client = AccountServiceClient::new(server.channel().await);
    let status = client
        .get_account(pb::GetAccountRequest {
            account_id: "a".repeat(70 * 1024),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    // Just under the limit is read (and refused for what it says, not its size).
    let status = client
        .get_account(pb::GetAccountRequest {
            account_id: "a".repeat(60 * 1024),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}
