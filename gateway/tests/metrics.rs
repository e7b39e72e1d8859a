//! RED metrics of the edge, per route template.
//!
//! A test binary of its own: the metrics registry is process-wide, so counts
//! are only exact in a process where no other test answers requests.

#![allow(dead_code)]

#[path = "api/echo.rs"]
mod echo;
#[path = "api/support.rs"]
mod support;

use http::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_counted_per_route_template() {
    let edge = echo::start().await;
    let metrics = meshwork_runtime::metrics::http();
    let before = metrics.count("/v1/echo/{id}", "GET", 200);
    edge.call(Method::GET, "/v1/echo/x1", None).await;
    edge.call(Method::GET, "/v1/echo/x2", None).await;
    assert_eq!(metrics.count("/v1/echo/{id}", "GET", 200), before + 2);
    let unmatched = metrics.count("unmatched", "GET", 404);
    edge.call(Method::GET, "/nowhere/at/all", None).await;
    assert_eq!(metrics.count("unmatched", "GET", 404), unmatched + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_share_one_label() {
    let edge = echo::start().await;
    let metrics = meshwork_runtime::metrics::http();
    let before = metrics.count("unmatched", "_OTHER", 405);
    let before_404 = metrics.count("unmatched", "_OTHER", 404);
    let method = Method::from_bytes(b"BREW").unwrap();
    edge.call(method, "/v1/echo/x1", None).await;
    let after =
        metrics.count("unmatched", "_OTHER", 405) + metrics.count("unmatched", "_OTHER", 404);
    assert_eq!(after, before + before_404 + 1);
    assert_eq!(metrics.count("unmatched", "BREW", 405), 0);
    assert_eq!(metrics.count("unmatched", "BREW", 404), 0);
}
