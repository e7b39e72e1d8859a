//! The outgoing HTTP/1.1 client, for what is not gRPC (payment providers,
//! webhooks): the same promises as [`crate::client`] makes for gRPC — each
//! call is a client span whose context travels in `traceparent`, and its
//! deadline is no longer than what is left of the caller's own. Answers are
//! read whole (they are small: provider answers, acknowledgements).

use std::time::Duration;

use crate::{deadline, propagation};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a call got no answer. Either way the outcome at the other end is
/// unknown: the request may or may not have arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed or broke.
    #[error("{0}")]
    Transport(String),
}

/// The client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HttpClient {
    /// A client whose calls give up after `timeout` (or sooner, when the
    /// caller's own deadline is nearer).
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends one request. `operation` names the span (e.g.
    /// `alipay.trade.query`).
    pub async fn send(
        &self,
        operation: &str,
        method: Method,
        url: &str,
        headers: &[(HeaderName, String)],
        body: Bytes,
    ) -> Result<Answer, HttpError> {
        let span = tracing::info_span!(
            "http.client",
            otel.name = %operation,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            url.full = %url,
            http.response.status_code = tracing::field::Empty,
        );
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(body))
            .map_err(|e| HttpError::Transport(format!("bad request to {url}: {e}")))?;
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| HttpError::Transport(format!("bad value for header {name}")))?;
            request.headers_mut().insert(name.clone(), value);
        }
        // A traceparent the caller set on purpose wins.
        if !request.headers().contains_key("traceparent") {
            propagation::inject(&span.context(), request.headers_mut());
        }
        let call = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| HttpError::Transport(format!("{url}: {e}")))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| HttpError::Transport(format!("{url}: reading the answer: {e}")))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let budget = deadline::budget(self.timeout);
        let outcome = match tokio::time::timeout(budget, call.instrument(span.clone())).await {
            Ok(outcome) => outcome,
            Err(_) => Err(HttpError::Timeout(budget)),
        };
        match &outcome {
            Ok(answer) => {
                span.record("http.response.status_code", answer.status.as_u16());
                if !answer.status.is_success() {
                    span.record("otel.status_code", "ERROR");
                }
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        outcome
    }
}
