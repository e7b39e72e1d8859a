//! One request is one trace: a known traceparent continues into the server
//! span, and a service-to-service hop keeps the trace id.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::finance::account::v1::account_service_client::AccountServiceClient;
use meshwork_testkit::{Backend, spans_of_trace};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::support::*;

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

async fn wait_for_span(trace_id: &str, name: &str, kind: SpanKind) -> SpanData {
    let mut found = None;
    let seen = eventually(|| {
        let spans = spans_of_trace(trace_id);
        found = spans
            .into_iter()
            .find(|s| s.name == name && s.span_kind == kind);
        std::future::ready(found.is_some())
    })
    .await;
    assert!(seen, "no {kind:?} span {name} in trace {trace_id}");
    found.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_traceparent_becomes_the_server_spans_parent() {
    let mut h = start(&Backend::Embedded).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(pb::GetAccountRequest {
        account_id: "acc_unknown".into(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    let status = h.client.get_account(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    let span = wait_for_span(
        trace_id,
        "meshwork.finance.account.v1.AccountService/GetAccount",
        SpanKind::Server,
    )
    .await;
    assert_eq!(span.parent_span_id.to_string(), parent_id);
    assert_eq!(attribute(&span, "rpc.system"), Some(&Value::from("grpc")));
    assert_eq!(
        attribute(&span, "rpc.service"),
        Some(&Value::from("meshwork.finance.account.v1.AccountService"))
    );
    assert_eq!(
        attribute(&span, "rpc.method"),
        Some(&Value::from("GetAccount"))
    );
    assert_eq!(
        attribute(&span, "rpc.grpc.status_code"),
        Some(&Value::I64(5))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hop_through_the_mesh_client_keeps_the_trace() {
    let h = start(&Backend::Embedded).await;
    let mut client = AccountServiceClient::new(h.server.mesh_channel());

    // Stands for the handler of an upstream service.
    let caller = tracing::info_span!("caller");
    let caller_context = caller.context().span().span_context().clone();
    let trace_id = caller_context.trace_id().to_string();
    async {
        client
            .create_account(pb::CreateAccountRequest {
                request_id: rid(),
                owner_id: "nina".into(),
                currency: "EUR".into(),
                r#type: pb::AccountType::Checking as i32,
            })
            .await
            .unwrap();
    }
    .instrument(caller.clone())
    .await;
    drop(caller);

    let name = "meshwork.finance.account.v1.AccountService/CreateAccount";
    let client_span = wait_for_span(&trace_id, name, SpanKind::Client).await;
    let server_span = wait_for_span(&trace_id, name, SpanKind::Server).await;
    assert_eq!(client_span.parent_span_id, caller_context.span_id());
    assert_eq!(
        server_span.parent_span_id,
        client_span.span_context.span_id()
    );
    assert_eq!(
        attribute(&client_span, "rpc.grpc.status_code"),
        Some(&Value::I64(0))
    );
    assert_eq!(
        attribute(&server_span, "rpc.grpc.status_code"),
        Some(&Value::I64(0))
    );
}
