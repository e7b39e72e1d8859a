//! The transcoding handler: one axum fallback that serves every route of the
//! [`RouteTable`](crate::routes::RouteTable).
//!
//! Per request: find the route (404, 405 with `Allow`), read the body (413
//! past the limit), build the request message, forward allowed headers as
//! metadata, call upstream through the mesh client (so the trace continues
//! and the deadline travels), and answer with the route's success status and
//! JSON, or with the mapped error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use meshwork_runtime::client::MeshChannel;
use meshwork_runtime::{deadline, propagation};
use prost_reflect::DescriptorPool;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::auth::AuthConfig;
use crate::call::DynamicCodec;
use crate::limit::{RateLimit, RateLimitConfig};
use crate::problem::Problem;
use crate::routes::{Lookup, Route, RouteError, RouteTable};
use crate::transcode::{TranscodeOptions, build_request, raw_response, render_response_bytes};

/// How the edge behaves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Deadline of an upstream call when the client sends no `Grpc-Timeout`
    /// (and the cap when it does).
    pub default_timeout: Duration,
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Request headers passed on as gRPC metadata (besides `Grpc-Metadata-*`).
    pub forwarded_headers: Vec<HeaderName>,
    /// JSON and query strictness.
    pub transcode: TranscodeOptions,
    /// Bearer-token authentication (off without keys).
    pub auth: AuthConfig,
    /// Per-client rate limit (off when `None`).
    pub rate_limit: Option<RateLimitConfig>,
    /// Origins allowed by CORS (`*` for any); empty disables CORS.
    pub cors_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            forwarded_headers: ["authorization", "accept-language", "x-request-id"]
                .into_iter()
                .map(HeaderName::from_static)
                .collect(),
            transcode: TranscodeOptions::default(),
            auth: AuthConfig::default(),
            rate_limit: None,
            cors_origins: Vec::new(),
        }
    }
}

/// The routes, the descriptors and where each service runs.
pub struct Gateway {
    limiter: Option<RateLimit>,
    table: RouteTable,
    openapi: serde_json::Value,
    pool: DescriptorPool,
    upstreams: HashMap<String, MeshChannel>,
    config: GatewayConfig,
}

impl Gateway {
    /// Routes every annotated method of the embedded contracts; `upstream`
    /// gives the channel of a service (by full proto name).
    pub fn new(
        upstream: impl FnMut(&str) -> MeshChannel,
        config: GatewayConfig,
    ) -> Result<Self, RouteError> {
        let pool = DescriptorPool::decode(meshwork_proto::FILE_DESCRIPTOR_SET)
            .expect("embedded descriptors decode");
        Self::from_pool(pool, upstream, config)
    }

    /// Routes every annotated method of `pool` (tests bring their own contracts).
    pub fn from_pool(
        pool: DescriptorPool,
        mut upstream: impl FnMut(&str) -> MeshChannel,
        config: GatewayConfig,
    ) -> Result<Self, RouteError> {
        let table = RouteTable::from_pool(&pool)?;
        let mut upstreams = HashMap::new();
        for route in table.routes() {
            let service = route.method.parent_service().full_name().to_owned();
            upstreams
                .entry(service)
                .or_insert_with_key(|service| upstream(service));
        }
        let openapi = crate::openapi::document(&table);
        let limiter = config.rate_limit.map(RateLimit::new);
        Ok(Self {
            limiter,
            table,
            openapi,
            pool,
            upstreams,
            config,
        })
    }

    /// The OpenAPI document of the routes.
    pub fn openapi(&self) -> &serde_json::Value {
        &self.openapi
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The route table.
    pub fn routes(&self) -> &RouteTable {
        &self.table
    }
}

/// The method as a label: the standard ones by name, anything else as
/// `_OTHER` (the OpenTelemetry convention), so that a client inventing
/// methods cannot grow the metric series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// The axum handler of every non-operational path.
pub async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let lookup = gateway.table.find(&parts.method, parts.uri.path());
    let route_name = match &lookup {
        Lookup::Found(route, _) => route.template.as_str().to_owned(),
        _ => String::new(),
    };
    let method_label = method_label(&parts.method);
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format_args!("{method_label} {route_name}").to_string().trim_end(),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method_label,
        http.route = %route_name,
        url.path = %parts.uri.path(),
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let _ = span.set_parent(propagation::extract(&parts.headers));
    let trace_id = {
        use opentelemetry::trace::TraceContextExt;
        span.context().span().span_context().trace_id().to_string()
    };
    span.record("trace_id", trace_id.as_str());
    let started = Instant::now();
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(uuid_v7);

    let mut response = async {
        match lookup {
            Lookup::NotFound => Problem::new(
                StatusCode::NOT_FOUND,
                tonic::Code::NotFound,
                format!("no route for {} {}", parts.method, parts.uri.path()),
            )
            .into_response(),
            Lookup::MethodNotAllowed(allowed) => {
                let allow = allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut problem = Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    tonic::Code::Unimplemented,
                    format!("{} is not allowed here; use {allow}", parts.method),
                );
                problem.headers.push((http::header::ALLOW, allow));
                problem.into_response()
            }
            Lookup::Found(route, bindings) => {
                let admitted = admit(&gateway, route, &parts);
                let outcome = match admitted {
                    Ok(subject) => {
                        forward(
                            &gateway,
                            route,
                            &bindings,
                            &parts,
                            body,
                            &request_id,
                            subject.as_deref(),
                        )
                        .await
                    }
                    Err(problem) => Err(problem),
                };
                outcome.unwrap_or_else(IntoResponse::into_response)
            }
        }
    }
    .instrument(span.clone())
    .await;

    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "access"
        )
    });
    let route_label = if route_name.is_empty() {
        "unmatched"
    } else {
        route_name.as_str()
    };
    meshwork_runtime::metrics::http().record(
        route_label,
        method_label,
        status.as_u16(),
        started.elapsed(),
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Authentication, then the caller's rate limit; the verified subject.
fn admit(
    gateway: &Gateway,
    route: &Route,
    parts: &http::request::Parts,
) -> Result<Option<String>, Problem> {
    let method = format!(
        "{}/{}",
        route.method.parent_service().full_name(),
        route.method.name()
    );
    // A public route's callers prove themselves to the method (a provider's
    // signature); a token, if any, is not looked at.
    let subject = match route.public {
        true => None,
        false => gateway.config.auth.authenticate(&method, &parts.headers)?,
    };
    if let Some(limiter) = &gateway.limiter {
        let key = match (
            &subject,
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>(),
        ) {
            (Some(subject), _) => format!("sub:{subject}"),
            (None, Some(peer)) => format!("ip:{}", peer.0.ip()),
            (None, None) => "anonymous".to_owned(),
        };
        limiter.check(&key)?;
    }
    Ok(subject)
}

async fn forward(
    gateway: &Gateway,
    route: &Route,
    bindings: &[(String, String)],
    parts: &http::request::Parts,
    body: axum::body::Body,
    request_id: &str,
    subject: Option<&str>,
) -> Result<Response, Problem> {
    let bytes = axum::body::to_bytes(body, gateway.config.max_body_bytes)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                tonic::Code::InvalidArgument,
                format!("request body over {} bytes", gateway.config.max_body_bytes),
            )
        })?;
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let message = build_request(
        route,
        bindings,
        parts.uri.query(),
        &bytes,
        content_type,
        gateway.config.transcode,
    )?;

    let timeout = match parts.headers.get("grpc-timeout") {
        None => gateway.config.default_timeout,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(deadline::parse_grpc_timeout)
            .ok_or_else(|| Problem::bad_request("Grpc-Timeout must look like 500m, 2S or 1M"))?
            .min(gateway.config.default_timeout),
    };
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = metadata(
        &parts.headers,
        [&gateway.config.forwarded_headers, &route.forwarded_headers],
        request_id,
    );
    if let Some(subject) = subject.and_then(|s| MetadataValue::try_from(s).ok()) {
        request.metadata_mut().insert("x-meshwork-subject", subject);
    }

    let service = route.method.parent_service().full_name();
    let channel = gateway.upstreams.get(service).cloned().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            format!("no upstream for {service}"),
        )
    })?;
    let mut grpc = tonic::client::Grpc::new(channel);
    let path: http::uri::PathAndQuery = route.grpc_path.parse().map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
            "bad method path",
        )
    })?;
    let codec = DynamicCodec::new(route.method.output());
    if route.method.is_server_streaming() {
        let sse = parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
        let outcome = deadline::scope(Some(Instant::now() + timeout), async {
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("upstream not ready: {e}")))?;
            grpc.server_streaming(request, path, codec).await
        })
        .await;
        return match outcome {
            Ok(response) => {
                let (metadata, stream, _) = response.into_parts();
                let mut response =
                    crate::stream::respond(route.clone(), gateway.pool.clone(), stream, sse);
                copy_metadata(&metadata, response.headers_mut());
                Ok(response)
            }
            Err(status) => Err(problem_of(&status, &gateway.pool)),
        };
    }

    let outcome = deadline::scope(Some(Instant::now() + timeout), async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("upstream not ready: {e}")))?;
        grpc.unary(request, path, codec).await
    })
    .await;

    match outcome {
        Ok(response) => {
            let (metadata, message, _) = response.into_parts();
            if let Some((content_type, data)) = raw_response(route, &message) {
                let content_type = HeaderValue::from_str(&content_type)
                    .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
                let mut response = (
                    route.success,
                    [(http::header::CONTENT_TYPE, content_type)],
                    data,
                )
                    .into_response();
                copy_metadata(&metadata, response.headers_mut());
                return Ok(response);
            }
            let body = render_response_bytes(route, &message);
            let mut response = (
                route.success,
                [(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            copy_metadata(&metadata, response.headers_mut());
            Ok(response)
        }
        Err(status) => Err(problem_of(&status, &gateway.pool)),
    }
}

/// An upstream status as the edge's answer, its metadata as `Grpc-Metadata-*`.
fn problem_of(status: &tonic::Status, pool: &DescriptorPool) -> Problem {
    let mut problem = Problem::from_status(status, pool);
    for (name, value) in status.metadata().clone().into_headers() {
        if let Some(name) = name.filter(|n| !is_reserved(n.as_str()))
            && let Ok(value) = value.to_str()
        {
            problem
                .headers
                .push((grpc_metadata_header(name.as_str()), value.to_owned()));
        }
    }
    problem
}

/// Request headers → metadata: the allow-list, `Grpc-Metadata-*` without its
/// prefix, the request id. Never `x-meshwork-subject` from outside: only the
/// edge's own authentication may set it.
fn metadata(headers: &HeaderMap, forwarded: [&[HeaderName]; 2], request_id: &str) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for (name, value) in headers {
        let key = name.as_str();
        let key = match key.strip_prefix("grpc-metadata-") {
            Some(stripped) => stripped,
            None if forwarded.iter().any(|list| list.contains(name)) => key,
            None => continue,
        };
        if key == "x-meshwork-subject" || is_reserved(key) {
            continue;
        }
        if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), value.to_str())
            && let Ok(value) = MetadataValue::try_from(value)
        {
            metadata.insert(key, value);
        }
    }
    if let Ok(value) = MetadataValue::try_from(request_id) {
        metadata.insert("x-request-id", value);
    }
    metadata
}

fn copy_metadata(metadata: &MetadataMap, headers: &mut HeaderMap) {
    for (name, value) in metadata.clone().into_headers() {
        if let Some(name) = name.filter(|n| !is_reserved(n.as_str()))
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            headers.insert(grpc_metadata_header(name.as_str()), value);
        }
    }
}

fn grpc_metadata_header(name: &str) -> HeaderName {
    HeaderName::from_bytes(format!("grpc-metadata-{name}").as_bytes())
        .unwrap_or(HeaderName::from_static("grpc-metadata-invalid"))
}

/// Headers that belong to HTTP/2 or gRPC itself.
fn is_reserved(name: &str) -> bool {
    name.starts_with("grpc-") && name != "grpc-metadata-bin"
        || matches!(
            name,
            "content-type"
                | "te"
                | "user-agent"
                | "content-length"
                | "host"
                | "connection"
                | "date"
        )
        || name.ends_with("-bin")
}

fn uuid_v7() -> String {
    uuid::Uuid::now_v7().to_string()
}
