//! The gRPC server bootstrap every target uses.
//!
//! [`GrpcServer`] collects the routes of the services a process runs, adds
//! `grpc.health.v1` and reflection (v1 and v1alpha), wraps everything in the
//! [`trace::ServerTraceLayer`], applies the limits from [`ServerLimits`], and
//! serves on an already-bound listener until the shutdown signal, then drains.

pub mod trace;

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};

use crate::shutdown::Shutdown;

/// How long in-flight calls get to finish once the listener is closed.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Limits applied to every call.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Calls taking longer end with DEADLINE_EXCEEDED (a caller's shorter
    /// `grpc-timeout` wins); enforced by the trace layer, which records it.
    pub request_timeout: Duration,
    /// Calls in flight per connection before new ones wait.
    pub max_concurrent_per_connection: usize,
    /// Largest message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Between NOT_SERVING and closing the listener: time for load balancers
    /// and meshes to stop routing here before in-flight calls are drained.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_concurrent_per_connection: 256,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The services one process serves on its gRPC port.
pub struct GrpcServer {
    routes: RoutesBuilder,
    limits: ServerLimits,
}

impl GrpcServer {
    /// An empty server with `limits`.
    pub fn new(limits: ServerLimits) -> Self {
        Self {
            routes: Routes::builder(),
            limits,
        }
    }

    /// The limits services should apply to their generated servers
    /// (message sizes are set per generated service in tonic).
    pub fn limits(&self) -> ServerLimits {
        self.limits
    }

    /// Adds one generated service.
    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self
    }

    /// Serves on `listener` until `shutdown` is cancelled; after the shutdown
    /// grace (health is NOT_SERVING meanwhile, see [`crate::health`]) stops
    /// accepting and drains the calls in flight. `health` is the process's
    /// health server.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        health: tonic_health::pb::health_server::HealthServer<
            impl tonic_health::pb::health_server::Health,
        >,
        shutdown: Shutdown,
    ) -> Result<(), crate::BoxError> {
        // Reflection lists the reflection services too, as Go servers do.
        let described = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(meshwork_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                )
        };
        let reflection_v1 = described().build_v1()?;
        let reflection_v1alpha = described().build_v1alpha()?;
        self.routes
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        // Nagle's algorithm on small gRPC responses meets delayed ACKs as
        // 40 ms stalls; tonic sets nodelay only on listeners it binds itself.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let grace = self.limits.shutdown_grace;
        let shutdown_for_limit = shutdown.clone();
        let stop_accepting = async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
            tracing::info!("grpc: draining in-flight calls");
        };
        let serving = tonic::transport::Server::builder()
            .concurrency_limit_per_connection(self.limits.max_concurrent_per_connection)
            // Outermost of ours: every call, health and reflection included,
            // gets a server span, RED metrics and its deadline enforced.
            .layer(trace::ServerTraceLayer {
                request_timeout: self.limits.request_timeout,
            })
            .add_routes(self.routes.routes())
            .serve_with_incoming_shutdown(incoming, stop_accepting);
        // Draining waits for every connection to close; a client holding a
        // stream open (a health Watch) would hold the process forever.
        let drain_limit = async move {
            shutdown_for_limit.cancelled().await;
            tokio::time::sleep(grace + DRAIN_LIMIT).await;
        };
        tokio::select! {
            served = serving => served?,
            _ = drain_limit => tracing::warn!("grpc: connections still open after the drain limit; closing them"),
        }
        Ok(())
    }
}
