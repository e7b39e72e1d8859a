//! One request, one trace: HTTP edge span → client span → service span.

use http::{Method, StatusCode};
use meshwork_testkit::spans_of_trace;
use opentelemetry::trace::SpanKind;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_continues_through_the_edge_into_the_service() {
    let edge = start().await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let answer = edge
        .call_with(
            Method::GET,
            "/v1/accounts/acc_x",
            None,
            &[("traceparent", &format!("00-{trace_id}-{parent}-01"))],
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = spans_of_trace(trace_id);
        if spans
            .iter()
            .any(|s| s.span_kind == SpanKind::Server && s.name.contains("AccountService"))
            && spans.iter().any(|s| s.name.starts_with("GET "))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let edge_span = spans
        .iter()
        .find(|s| s.name == "GET /v1/accounts/{account_id}")
        .expect("edge span");
    assert_eq!(edge_span.parent_span_id.to_string(), parent);
    let client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("client span");
    assert_eq!(client.parent_span_id, edge_span.span_context.span_id());
    let server = spans
        .iter()
        .find(|s| {
            s.span_kind == SpanKind::Server
                && s.name == "meshwork.finance.account.v1.AccountService/GetAccount"
        })
        .expect("service span");
    assert_eq!(server.parent_span_id, client.span_context.span_id());
}

/// The edge's deadline (from `Grpc-Timeout`) reaches the service as a
/// shorter `grpc-timeout`: a real hop, HTTP → mesh client → gRPC server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_timeout_travels_through_the_edge() {
    let edge = start().await;
    let trace_id = "1af7651916cd43dd8448eb211c80319d";
    let answer = edge
        .call_with(
            Method::GET,
            "/v1/accounts/acc_y",
            None,
            &[
                ("traceparent", &format!("00-{trace_id}-c7ad6b7169203332-01")),
                ("grpc-timeout", "1500m"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let mut seen = None;
    for _ in 0..100 {
        seen = spans_of_trace(trace_id)
            .into_iter()
            .filter(|s| s.span_kind == SpanKind::Server && s.name.contains("AccountService"))
            .find_map(|s| {
                s.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == "meshwork.deadline_ms")
                    .and_then(|kv| match kv.value {
                        opentelemetry::Value::I64(v) => Some(v),
                        _ => None,
                    })
            });
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let seen = seen.expect("the service saw a grpc-timeout");
    assert!(
        (1..=1_500).contains(&seen),
        "service saw {seen} ms of the client's 1500 ms"
    );
}
