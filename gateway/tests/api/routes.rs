//! Successful calls: path variables, bodies, query parameters, JSON names.

use http::{Method, StatusCode};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_with_201_and_maps_json_both_ways() {
    let edge = start().await;
    // Proto field names are accepted on input as well as lowerCamelCase.
    let answer = edge
        .call(
            Method::POST,
            "/v1/accounts",
            Some(r#"{"request_id":"r-1","owner_id":"olga","currency":"EUR","type":"ACCOUNT_TYPE_SAVINGS"}"#),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let account = &answer.json["account"];
    assert_eq!(account["ownerId"], "olga");
    assert_eq!(account["type"], "ACCOUNT_TYPE_SAVINGS", "enums as names");
    assert_eq!(account["freezeReason"], "", "zero values are emitted");
    assert!(
        account["createTime"].as_str().unwrap().ends_with('Z'),
        "timestamps in RFC 3339"
    );

    let id = account["accountId"].as_str().unwrap();
    let got = edge
        .call(Method::GET, &format!("/v1/accounts/{id}"), None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(&got.json["account"], account);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_verbs_bodies_and_int64_as_strings() {
    let edge = start().await;
    let id = edge.open("pavel").await;
    let deposit = edge
        .call(
            Method::POST,
            &format!("/v1/accounts/{id}:deposit"),
            Some(r#"{"requestId":"d-1","amount":{"currency":"EUR","amountMinor":"1050"}}"#),
        )
        .await;
    assert_eq!(deposit.status, StatusCode::OK, "{}", deposit.json);
    let balance = edge
        .call(Method::GET, &format!("/v1/accounts/{id}/balance"), None)
        .await;
    assert_eq!(
        balance.json["balance"]["balance"]["amountMinor"], "1050",
        "int64 as a string"
    );
    // A number is accepted on input too.
    let withdraw = edge
        .call(
            Method::POST,
            &format!("/v1/accounts/{id}:withdraw"),
            Some(r#"{"requestId":"w-1","amount":{"currency":"EUR","amountMinor":50}}"#),
        )
        .await;
    assert_eq!(
        withdraw.json["posting"]["balanceAfter"]["amountMinor"],
        "1000"
    );
    // The path wins over the body for a field bound by the path.
    let frozen = edge
        .call(
            Method::POST,
            &format!("/v1/accounts/{id}:freeze"),
            Some(r#"{"requestId":"f-1","accountId":"acc_elsewhere","reason":"check"}"#),
        )
        .await;
    assert_eq!(frozen.status, StatusCode::OK, "{}", frozen.json);
    assert_eq!(frozen.json["account"]["accountId"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_parameters_fill_the_unbound_fields() {
    let edge = start().await;
    for _ in 0..3 {
        edge.open("quinn").await;
    }
    let page = edge
        .call(Method::GET, "/v1/accounts?owner_id=quinn&page_size=2", None)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    assert_eq!(page.json["accounts"].as_array().unwrap().len(), 2);
    let token = page.json["nextPageToken"].as_str().unwrap();
    // lowerCamelCase names work in the query too, and values are percent-decoded.
    let rest = edge
        .call(
            Method::GET,
            &format!("/v1/accounts?ownerId=qu%69nn&pageToken={token}"),
            None,
        )
        .await;
    assert_eq!(rest.json["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(rest.json["nextPageToken"], "");

    let number = page.json["accounts"][0]["accountNumber"].as_str().unwrap();
    let found = edge
        .call(
            Method::POST,
            "/v1/accounts:lookup",
            Some(&format!(r#"{{"accountNumber":"{number}"}}"#)),
        )
        .await;
    assert_eq!(found.json["account"]["accountNumber"], number);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_metadata_headers_pass_through() {
    let edge = start().await;
    let answer = edge
        .call_with(
            Method::GET,
            "/v1/accounts",
            None,
            &[("x-request-id", "req-abc"), ("grpc-metadata-tenant", "t1")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-request-id"], "req-abc");
    let generated = edge.call(Method::GET, "/v1/accounts", None).await;
    assert_eq!(
        generated.headers["x-request-id"].len(),
        36,
        "a UUID is generated when none is sent"
    );
}
