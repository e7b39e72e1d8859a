//! An account service on port 0 with the gateway in front of it.

use std::sync::Arc;

use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use meshwork_gateway::edge::{Gateway, GatewayConfig};
use meshwork_gateway::{Readiness, router};
use meshwork_testkit::{Backend, Mesh};
use serde_json::Value;
use tower::ServiceExt;

pub struct Edge {
    pub router: Router,
    /// What serves the routes (a mesh, or a test service), kept alive.
    pub _server: Box<dyn std::any::Any + Send>,
}

pub async fn start() -> Edge {
    start_with(GatewayConfig::default()).await
}

pub async fn start_with(config: GatewayConfig) -> Edge {
    let server = Mesh::start(&Backend::Embedded, &[&finance_account::SERVICE]).await;
    let gateway = Gateway::new(|_| server.mesh_channel(), config).expect("routes");
    let (reporter, _) = tonic_health::server::health_reporter();
    Edge {
        router: router(Readiness::local(reporter), Some(Arc::new(gateway))),
        _server: Box::new(server),
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub json: Value,
}

impl Edge {
    pub async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> Answer {
        self.call_with(method, uri, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body
            .map(|b| axum::body::Body::from(b.to_owned()))
            .unwrap_or_else(axum::body::Body::empty);
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            json,
        }
    }

    /// Status, content type and raw body text.
    pub async fn call_raw(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    /// Sends `body` as it is; status, headers and the raw answer.
    pub async fn send_bytes(
        &self,
        method: Method,
        uri: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(axum::body::Body::from(body.to_vec())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, bytes.to_vec())
    }

    /// Opens an account through REST; returns its id.
    pub async fn open(&self, owner: &str) -> String {
        let body = format!(
            r#"{{"requestId":"{}","ownerId":"{owner}","currency":"EUR","type":"ACCOUNT_TYPE_CHECKING"}}"#,
            uuid::Uuid::now_v7()
        );
        let answer = self.call(Method::POST, "/v1/accounts", Some(&body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        answer.json["account"]["accountId"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}
