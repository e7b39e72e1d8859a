//! The HTTP edge of a Meshwork process.
//!
//! REST/JSON → gRPC transcoding from the `google.api.http` annotations of the
//! embedded contracts ([`edge`], [`routes`], [`template`], [`transcode`],
//! [`problem`]): no handler per route, a newly annotated RPC is exposed by a
//! rebuild. Beside it, the operational endpoints every process has:
//! - `GET /healthz`: the process is up (liveness);
//! - `GET /readyz`: the process's gRPC services are SERVING (readiness),
//!   asked through `grpc.health.v1` in-process, or of the upstream when the
//!   gateway runs on its own;
//! - `GET /metrics`: Prometheus text exposition of the RED metrics.

pub mod auth;
pub mod call;
pub mod config;
pub mod edge;
pub mod limit;
pub mod openapi;
pub mod problem;
pub mod routes;
mod schema_rules;
pub mod stream;
pub mod template;
pub mod transcode;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use meshwork_runtime::client::MeshChannel;
use meshwork_runtime::shutdown::Shutdown;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::Health;
use tonic_health::server::HealthService;

/// Where readiness comes from.
#[derive(Clone)]
pub enum Readiness {
    /// The gRPC services of this process (their health service, in-process).
    Local(Arc<HealthService>),
    /// The services behind an upstream gRPC endpoint.
    Remote(MeshChannel),
}

impl Readiness {
    /// Readiness from this process's health reporter.
    pub fn local(reporter: tonic_health::server::HealthReporter) -> Self {
        Self::Local(Arc::new(HealthService::from_health_reporter(reporter)))
    }

    async fn status(&self) -> ServingStatus {
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let answer = match self {
            Self::Local(health) => health.check(tonic::Request::new(request)).await,
            Self::Remote(channel) => HealthClient::new(channel.clone()).check(request).await,
        };
        answer
            .map(|r| r.into_inner().status())
            .unwrap_or(ServingStatus::Unknown)
    }
}

/// The router of the operational endpoints, and of every REST route when a
/// gateway is given.
pub fn router(readiness: Readiness, gateway: Option<Arc<edge::Gateway>>) -> Router {
    let operational = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(readiness);
    let Some(gateway) = gateway else {
        return operational;
    };
    let cors = cors(&gateway.config().cors_origins);
    let edge = operational.merge(
        Router::new()
            .route("/openapi.json", get(openapi))
            .route(
                "/docs",
                get(|| async { axum::response::Html(include_str!("docs.html")) }),
            )
            .fallback(edge::handle)
            .with_state(gateway),
    );
    match cors {
        // Outermost, so that preflight requests are answered before routing.
        Some(cors) => edge.layer(cors),
        None => edge,
    }
}

/// CORS for `origins` (`*` for any), or none.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods(Any)
            .allow_headers(Any)
            .expose_headers(Any)
            .max_age(std::time::Duration::from_secs(600)),
    )
}

async fn ready(State(readiness): State<Readiness>) -> impl IntoResponse {
    match readiness.status().await {
        ServingStatus::Serving => (StatusCode::OK, "ready\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

async fn openapi(State(gateway): State<Arc<edge::Gateway>>) -> impl IntoResponse {
    axum::Json(gateway.openapi().clone())
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        meshwork_runtime::metrics::encode(),
    )
}

/// Serves `router` on `listener` until `stop` resolves, then drains.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address keys the rate limit of clients without a token.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(stop)
        .await
}

/// Resolves `grace` after `shutdown` is cancelled: HTTP keeps answering
/// (with `/readyz` at 503) while load balancers notice.
pub async fn after_grace(shutdown: Shutdown, grace: std::time::Duration) {
    shutdown.cancelled().await;
    tokio::time::sleep(grace).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_path(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_follows_the_health_reporter() {
        let (reporter, _) = tonic_health::server::health_reporter();
        let router = router(Readiness::local(reporter.clone()), None);
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        assert_eq!(
            get_path(router.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        assert_eq!(get_path(router.clone(), "/readyz").await.0, StatusCode::OK);
        assert_eq!(
            get_path(router.clone(), "/healthz").await,
            (StatusCode::OK, "ok\n".to_owned())
        );
        assert_eq!(get_path(router, "/nope").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        meshwork_runtime::metrics::server().record(
            "t.v1.S",
            "M",
            tonic::Code::Ok,
            std::time::Duration::from_millis(1),
        );
        let (reporter, _) = tonic_health::server::health_reporter();
        let (status, body) = get_path(router(Readiness::local(reporter), None), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("meshwork_rpc_server_calls_total"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
