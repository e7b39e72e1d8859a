//! Table tests of the transcoding rules against the echo contract.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::echo;

/// Whether every key of `want` is in `got` with the same value (recursively).
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(got), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| got.get(k).is_some_and(|g| contains(g, w))),
        _ => got == want,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_body_and_query_rules() {
    let edge = echo::start().await;
    let ok = StatusCode::OK;
    let bad = StatusCode::BAD_REQUEST;
    let cases: Vec<(Method, &str, Option<&str>, StatusCode, Value)> = vec![
        (
            Method::GET,
            "/v1/echo/e1",
            None,
            ok,
            json!({"id": "e1", "count": "0", "flag": false, "tags": []}),
        ),
        (
            Method::GET,
            "/v1/parents/p9/echo/e1",
            None,
            ok,
            json!({"id": "e1", "parent": {"id": "p9"}}),
        ),
        (
            Method::GET,
            "/v1/shelves/s1/books/b%2F2",
            None,
            ok,
            json!({"name": "shelves/s1/books/b%2F2"}),
        ),
        (
            Method::GET,
            "/v1/echo/a%20b",
            None,
            ok,
            json!({"id": "a b"}),
        ),
        (
            Method::GET,
            "/v1/files/a/b/c.txt",
            None,
            ok,
            json!({"name": "a/b/c.txt"}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?count=9007199254740993&flag=true",
            None,
            ok,
            json!({"count": "9007199254740993", "flag": true}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?colour=COLOUR_RED",
            None,
            ok,
            json!({"colour": "COLOUR_RED"}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?colour=2",
            None,
            ok,
            json!({"colour": "COLOUR_GREEN"}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?tags=a&tags=b&colours=COLOUR_RED&colours=2",
            None,
            ok,
            json!({"tags": ["a", "b"], "colours": ["COLOUR_RED", "COLOUR_GREEN"]}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?parent.title=T&parent.id=p1",
            None,
            ok,
            json!({"parent": {"id": "p1", "title": "T"}}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?at=2026-01-02T03:04:05Z&wait=1.5s&mask=name,parent.title",
            None,
            ok,
            json!({"at": "2026-01-02T03:04:05Z", "wait": "1.500s", "mask": "name,parent.title"}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?limit=7&note=hi&ratio=0.25&small=3",
            None,
            ok,
            json!({"limit": 7, "note": "hi", "ratio": 0.25, "small": 3}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?count=x",
            None,
            bad,
            json!({"code": 3}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?small=-1",
            None,
            bad,
            json!({"code": 3}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?flag=yes",
            None,
            bad,
            json!({"code": 3}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?colour=PURPLE",
            None,
            bad,
            json!({"code": 3}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?at=yesterday",
            None,
            bad,
            json!({"code": 3}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?parent=x",
            None,
            bad,
            json!({"code": 3}),
        ),
        (
            Method::GET,
            "/v1/echo/e1?id=other",
            None,
            bad,
            json!({"code": 3}),
        ),
        (
            Method::POST,
            "/v1/echo/e1/parent?name=n",
            Some(r#"{"id":"p2","title":"Tt"}"#),
            ok,
            json!({"id": "p2", "title": "Tt"}),
        ),
        (
            Method::POST,
            "/v1/echo/e1/parent?parent.title=x",
            Some(r#"{"id":"p2"}"#),
            bad,
            json!({"code": 3}),
        ),
        (
            Method::PUT,
            "/v1/echo/e1:all",
            Some(r#"{"name":"n","count":"5","parent":{"title":"t"}}"#),
            ok,
            json!({"id": "e1", "name": "n", "count": "5", "parent": {"title": "t"}}),
        ),
        (
            Method::PUT,
            "/v1/echo/e1:all",
            Some(r#"{"unknownField":1}"#),
            bad,
            json!({"code": 3}),
        ),
        (
            Method::PUT,
            "/v1/echo/e1:all?name=x",
            Some("{}"),
            bad,
            json!({"code": 3}),
        ),
        (
            Method::GET,
            "/v1/echo/e1:all",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"code": 12}),
        ),
    ];
    for (method, uri, body, status, want) in cases {
        let answer = edge.call(method.clone(), uri, body).await;
        assert_eq!(answer.status, status, "{method} {uri}: {}", answer.json);
        assert!(
            contains(&answer.json, &want),
            "{method} {uri}: got {} want {want}",
            answer.json
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_methods_take_and_give_raw_bytes() {
    let edge = echo::start().await;
    // A provider's form callback: not JSON, passed through byte for byte.
    let form = b"out_trade_no=pay_1&total_amount=1.00&sign=a%2Bb%3D";
    let (status, headers, body) = edge
        .send_bytes(
            Method::POST,
            "/v1/echo:raw",
            form,
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/x-www-form-urlencoded; charset=utf-8"
    );
    assert_eq!(body, form);
    // Binary, and without a content type.
    let bytes = [0u8, 159, 146, 150, 255];
    let (_, headers, body) = edge
        .send_bytes(Method::POST, "/v1/echo:raw", &bytes, &[])
        .await;
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(body, bytes);

    // An HttpBody field as the body, the rest from the path.
    let (status, _, body) = edge
        .send_bytes(
            Method::POST,
            "/v1/uploads/report.csv",
            b"a,b\n1,2\n",
            &[("content-type", "text/csv")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["name"], "report.csv");
    assert_eq!(json["file"]["contentType"], "text/csv");
    assert_eq!(json["file"]["data"], "YSxiCjEsMgo=", "the CSV, base64");

    // The OpenAPI document says so: any media type, binary.
    let doc = edge.call(Method::GET, "/openapi.json", None).await.json;
    let raw = &doc["paths"]["/v1/echo:raw"]["post"];
    assert_eq!(
        raw["requestBody"]["content"]["*/*"]["schema"]["format"],
        "binary"
    );
    assert_eq!(
        raw["responses"]["200"]["content"]["*/*"]["schema"]["format"],
        "binary"
    );
    let upload = &doc["paths"]["/v1/uploads/{name}"]["post"];
    assert_eq!(
        upload["requestBody"]["content"]["*/*"]["schema"]["type"],
        "string"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_methods_and_metadata_in_both_directions() {
    let edge = echo::start().await;
    let head = edge.call(Method::HEAD, "/v1/echo-head/h1", None).await;
    assert_eq!(head.status, StatusCode::OK);

    let answer = edge
        .call_with(
            Method::GET,
            "/v1/echo/m1",
            None,
            &[
                ("grpc-metadata-tenant", "t1"),
                ("authorization", "Bearer abc"),
                ("x-meshwork-subject", "spoofed"),
                ("grpc-metadata-x-meshwork-subject", "spoofed"),
                ("cookie", "secret=1"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["grpc-metadata-tenant"], "t1");
    assert_eq!(answer.headers["grpc-metadata-authorization"], "Bearer abc");
    assert!(
        answer
            .headers
            .get("grpc-metadata-x-meshwork-subject")
            .is_none(),
        "a subject from outside is never passed on"
    );
    assert!(
        answer.headers.get("grpc-metadata-cookie").is_none(),
        "headers outside the allow-list stay at the edge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streams_as_ndjson_or_sse_with_a_final_error() {
    let edge = echo::start().await;
    let lines = edge
        .call_raw(Method::GET, "/v1/echo/s1:stream?count=3", &[])
        .await;
    assert_eq!(lines.0, StatusCode::OK);
    assert_eq!(lines.1, "application/x-ndjson");
    let frames: Vec<Value> = lines
        .2
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| f["result"]["id"] == "s1"));

    let failing = edge
        .call_raw(Method::GET, "/v1/echo/s2:stream?count=2&flag=true", &[])
        .await;
    let frames: Vec<Value> = failing
        .2
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[2]["error"]["code"], 10, "ABORTED as the last object");

    let sse = edge
        .call_raw(
            Method::GET,
            "/v1/echo/s3:stream?count=2&flag=true",
            &[("accept", "text/event-stream")],
        )
        .await;
    assert_eq!(sse.1, "text/event-stream");
    let events: Vec<&str> = sse.2.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 3);
    assert!(events[0].starts_with("data: {\"result\""));
    assert!(events[2].starts_with("event: error\ndata: {\"error\""));
}
