//! Refusals: every bad-input case gets its documented status and body.

use http::{Method, StatusCode};
use meshwork_gateway::edge::GatewayConfig;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_keep_their_details() {
    let edge = start().await;
    let missing = edge
        .call(Method::GET, "/v1/accounts/acc_nobody", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json["code"], 5);
    assert!(
        missing.json["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["@type"] == "type.googleapis.com/google.rpc.ResourceInfo")
    );

    let invalid = edge
        .call(
            Method::POST,
            "/v1/accounts",
            Some(r#"{"ownerId":"","currency":"eur"}"#),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    let violations = invalid.json["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .expect("BadRequest detail")["fieldViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(violations, ["request_id", "owner_id", "currency", "type"]);

    let id = edge.open("rita").await;
    let overdraw = edge
        .call(
            Method::POST,
            &format!("/v1/accounts/{id}:withdraw"),
            Some(r#"{"requestId":"w","amount":{"currency":"EUR","amountMinor":"5"}}"#),
        )
        .await;
    assert_eq!(
        (overdraw.status, overdraw.json["code"].as_i64()),
        (StatusCode::CONFLICT, Some(9))
    );
    assert_eq!(overdraw.json["details"][0]["reason"], "INSUFFICIENT_FUNDS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_at_the_edge() {
    let edge = start_with(GatewayConfig {
        max_body_bytes: 512,
        ..GatewayConfig::default()
    })
    .await;
    let cases: &[(Method, &str, Option<&str>, StatusCode, &str)] = &[
        (
            Method::POST,
            "/v1/accounts",
            Some(r#"{"ownerId":"#),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            Method::POST,
            "/v1/accounts",
            Some(r#"{"ownerId":"x","colour":"red"}"#),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            Method::POST,
            "/v1/accounts",
            Some("[1,2]"),
            StatusCode::BAD_REQUEST,
            "JSON object",
        ),
        (
            Method::GET,
            "/v1/accounts?page_size=ten",
            None,
            StatusCode::BAD_REQUEST,
            "page_size",
        ),
        (
            Method::GET,
            "/v1/accounts?colour=red",
            None,
            StatusCode::BAD_REQUEST,
            "unknown query parameter",
        ),
        (
            Method::GET,
            "/v1/accounts?owner_id=a&owner_id=b",
            None,
            StatusCode::BAD_REQUEST,
            "more than once",
        ),
        (
            Method::POST,
            "/v1/accounts?owner_id=a",
            Some("{}"),
            StatusCode::BAD_REQUEST,
            "from the body",
        ),
        (
            Method::GET,
            "/v1/accounts/acc_1?account_id=acc_2",
            None,
            StatusCode::BAD_REQUEST,
            "bound by the path",
        ),
        (
            Method::GET,
            "/v1/accounts",
            Some(r#"{"x":1}"#),
            StatusCode::BAD_REQUEST,
            "no request body",
        ),
        (
            Method::GET,
            "/v2/nothing",
            None,
            StatusCode::NOT_FOUND,
            "no route",
        ),
        (
            Method::DELETE,
            "/v1/accounts/acc_1",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "not allowed",
        ),
    ];
    for (method, uri, body, status, needle) in cases {
        let answer = edge.call(method.clone(), uri, *body).await;
        assert_eq!(answer.status, *status, "{method} {uri}: {}", answer.json);
        let message = answer.json["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{method} {uri}: {message:?} lacks {needle:?}"
        );
    }
    let big = format!(r#"{{"ownerId":"{}"}}"#, "x".repeat(600));
    assert_eq!(
        edge.call(Method::POST, "/v1/accounts", Some(&big))
            .await
            .status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let bad_timeout = edge
        .call_with(
            Method::GET,
            "/v1/accounts",
            None,
            &[("grpc-timeout", "soon")],
        )
        .await;
    assert_eq!(bad_timeout.status, StatusCode::BAD_REQUEST);
    let allow = edge.call(Method::DELETE, "/v1/accounts/acc_1", None).await;
    assert_eq!(allow.headers["allow"], "GET");
}
