//! RED metrics per RPC (rate, errors, duration), in Prometheus text format.
//!
//! The server and client layers record every call here; the HTTP port serves
//! [`encode`] at `/metrics`. Errors are the calls whose `code` label is not
//! `OK`, so one counter gives both the rate and the error rate.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of one call outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: String,
    method: String,
    code: String,
}

/// Labels of one method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s, doubling.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The metrics of one side (server or client) of RPCs.
pub struct RpcMetrics {
    calls: Family<CallLabels, Counter>,
    duration: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

impl RpcMetrics {
    fn new() -> Self {
        Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
        }
    }

    /// Records one finished call.
    pub fn record(&self, service: &str, method: &str, code: tonic::Code, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                service: service.to_owned(),
                method: method.to_owned(),
                code: code_name(code).to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&MethodLabels {
                service: service.to_owned(),
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// How many calls of `service/method` ended with `code` (for tests and checks).
    pub fn count(&self, service: &str, method: &str, code: tonic::Code) -> u64 {
        self.calls
            .get_or_create(&CallLabels {
                service: service.to_owned(),
                method: method.to_owned(),
                code: code_name(code).to_owned(),
            })
            .get()
    }
}

/// Labels of one HTTP answer at the edge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

/// Labels of one HTTP route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

/// RED metrics of the REST edge, per route template (never per raw path).
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    /// Records one answered request; `route` is the template or "unmatched".
    pub fn record(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// How many requests of `method route` got `status` (for tests and checks).
    pub fn count(&self, route: &str, method: &str, status: u16) -> u64 {
        self.requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .get()
    }
}

struct Metrics {
    registry: Mutex<Registry>,
    server: RpcMetrics,
    client: RpcMetrics,
    http: HttpMetrics,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let server = RpcMetrics::new();
        let client = RpcMetrics::new();
        let mut registry = Registry::with_prefix("meshwork");
        registry.register(
            "rpc_server_calls",
            "gRPC calls handled, by service, method and status code",
            server.calls.clone(),
        );
        registry.register(
            "rpc_server_duration_seconds",
            "Time to handle a gRPC call, by service and method",
            server.duration.clone(),
        );
        registry.register(
            "rpc_client_calls",
            "gRPC calls made to other services, by service, method and status code",
            client.calls.clone(),
        );
        registry.register(
            "rpc_client_duration_seconds",
            "Time of a gRPC call to another service, retries included",
            client.duration.clone(),
        );
        let http = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "http_server_requests",
            "REST requests answered by the edge, by route template, method and status",
            http.requests.clone(),
        );
        registry.register(
            "http_server_duration_seconds",
            "Time to answer a REST request at the edge, by route template and method",
            http.duration.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            server,
            client,
            http,
        }
    })
}

/// Metrics of calls this process serves.
pub fn server() -> &'static RpcMetrics {
    &metrics().server
}

/// Metrics of calls this process makes.
pub fn client() -> &'static RpcMetrics {
    &metrics().client
}

/// Metrics of the REST edge.
pub fn http() -> &'static HttpMetrics {
    &metrics().http
}

/// Lets other modules add their own metrics to the one registry.
pub fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut registry = metrics().registry.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut registry)
}

/// Every metric in Prometheus text exposition format.
pub fn encode() -> String {
    let mut out = String::new();
    with_registry(|registry| prometheus_client::encoding::text::encode(&mut out, registry))
        .expect("writing to a String cannot fail");
    out
}

/// The canonical upper-case name of a gRPC code, as in `google.rpc.Code`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_calls_and_exposes_them() {
        server().record(
            "test.v1.Svc",
            "Get",
            tonic::Code::NotFound,
            Duration::from_millis(3),
        );
        assert_eq!(
            server().count("test.v1.Svc", "Get", tonic::Code::NotFound),
            1
        );
        let text = encode();
        assert!(
            text.contains(r#"meshwork_rpc_server_calls_total{service="test.v1.Svc",method="Get",code="NOT_FOUND"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("meshwork_rpc_server_duration_seconds_bucket"),
            "{text}"
        );
    }
}
