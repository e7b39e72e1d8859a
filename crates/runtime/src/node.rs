//! One process's services on one gRPC port: started from their descriptors
//! in the same way by `meshwork up`, `meshwork serve` and the test kit.
//!
//! [`Node::start`] runs each descriptor's start function with a
//! [`StartContext`], then wires what the services asked for: their gRPC
//! services on one server, health per gRPC name over the probes of their
//! storage and jobs, their jobs under one supervisor, their tasks.
//! [`Node::run`] serves until shutdown, then waits for the jobs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic_health::server::HealthReporter;

use crate::client::ClientPolicy;
use crate::health::{HealthMonitor, Probe};
use crate::jobs::Jobs;
use crate::placement::Placement;
use crate::server::{GrpcServer, ServerLimits};
use crate::service::{NodeEnv, Service, StartContext};
use crate::shutdown::Shutdown;
use crate::time::Clock;

/// How a node's services are started.
pub struct NodeConfig {
    /// Where storage lives and where other targets run.
    pub placement: Arc<dyn Placement>,
    /// The services' flags (see [`Service::flags`]).
    pub flags: clap::ArgMatches,
    /// Limits of the gRPC server.
    pub limits: ServerLimits,
    /// Policy of channels to other services.
    pub client_policy: ClientPolicy,
    /// The process's HTTP address.
    pub http_addr: std::net::SocketAddr,
    /// How often health probes run.
    pub health_interval: Duration,
    /// The clock services read.
    pub clock: Clock,
    /// How long producers keep their events.
    pub event_retention: Duration,
    /// How long a service waits for its storage at start.
    pub startup_timeout: Duration,
}

/// What the services of a node published, readable after it started.
#[derive(Clone)]
pub struct Shared(Arc<NodeEnv>);

impl Shared {
    /// The published value of type `T`, if any.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get::<T>()
            .cloned()
    }
}

/// Services started and ready to serve.
pub struct Node {
    grpc: GrpcServer,
    has_grpc: bool,
    monitor: HealthMonitor,
    jobs: Jobs,
    tasks: Vec<(String, BoxFuture<'static, anyhow::Result<()>>)>,
    shutdown: Shutdown,
    env: Arc<NodeEnv>,
}

impl Node {
    /// Starts `services` (in order) for a process whose gRPC port is
    /// `own_url` and which serves `served`; health goes through `reporter`.
    pub async fn start(
        services: &[&'static Service],
        served: BTreeSet<&'static str>,
        own_url: String,
        config: NodeConfig,
        reporter: HealthReporter,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let env = Arc::new(NodeEnv {
            placement: config.placement,
            flags: config.flags,
            served,
            own_url,
            limits: config.limits,
            client_policy: config.client_policy,
            http_addr: config.http_addr,
            shutdown: shutdown.clone(),
            clock: config.clock,
            shared: Mutex::new(http::Extensions::new()),
            logs: crate::events::Logs::default(),
            event_retention: config.event_retention,
            startup_timeout: config.startup_timeout,
        });
        let mut grpc = GrpcServer::new(config.limits);
        let mut monitor = HealthMonitor::new(reporter, config.health_interval);
        let mut jobs = Jobs::new(shutdown.clone());
        let mut tasks = Vec::new();
        let mut has_grpc = false;
        for &service in services {
            let mut ctx = StartContext::new(service, env.clone(), grpc);
            let started = (service.start)(&mut ctx).await;
            let StartContext {
                grpc: back,
                probes,
                jobs: new_jobs,
                tasks: new_tasks,
                ..
            } = ctx;
            grpc = back;
            started.with_context(|| format!("{} did not start", service.target))?;
            let mut probes: Vec<Arc<dyn Probe>> = probes;
            for job in new_jobs {
                probes.push(Arc::new(jobs.spawn(job)));
            }
            for name in service.grpc_services {
                monitor.watch(name, probes.clone());
                has_grpc = true;
            }
            tasks.extend(new_tasks.into_inner().unwrap_or_else(|p| p.into_inner()));
        }
        // Producers' logs, for consumers here and elsewhere.
        if !env.logs.is_empty() {
            grpc.add_service(
                meshwork_proto::meshwork::platform::events::v1::event_log_service_server::EventLogServiceServer::new(
                    env.logs.clone(),
                )
                .max_decoding_message_size(config.limits.max_message_bytes)
                .max_encoding_message_size(config.limits.max_message_bytes),
            );
        }
        Ok(Self {
            grpc,
            has_grpc,
            monitor,
            jobs,
            tasks,
            shutdown,
            env,
        })
    }

    /// A handle the services published at start (see
    /// [`StartContext::publish`]).
    pub fn shared(&self) -> Shared {
        Shared(self.env.clone())
    }

    /// Whether any started service serves gRPC (else no port is needed).
    pub fn has_grpc(&self) -> bool {
        self.has_grpc
    }

    /// Serves on `listener` (when given) until shutdown; the services'
    /// tasks run beside it, and the first of them to fail cancels shutdown
    /// and is returned. Waits for the jobs before returning.
    pub async fn run(
        self,
        listener: Option<TcpListener>,
        health: tonic_health::pb::health_server::HealthServer<
            impl tonic_health::pb::health_server::Health,
        >,
    ) -> anyhow::Result<()> {
        let mut running: JoinSet<anyhow::Result<()>> = JoinSet::new();
        let shutdown = self.shutdown.clone();
        running.spawn(async move {
            self.monitor.run(shutdown).await;
            Ok(())
        });
        if let Some(listener) = listener {
            let shutdown = self.shutdown.clone();
            let grpc = self.grpc;
            running.spawn(async move {
                grpc.serve(listener, health, shutdown)
                    .await
                    .map_err(|e| anyhow::anyhow!("gRPC server: {e}"))
            });
        }
        for (name, task) in self.tasks {
            running.spawn(async move { task.await.with_context(|| name) });
        }
        // Now that the port serves the services, their jobs may call it.
        self.jobs.start();
        let mut outcome = Ok(());
        while let Some(joined) = running.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(error) = result {
                self.shutdown.cancel();
                if outcome.is_ok() {
                    outcome = Err(error);
                }
            }
        }
        self.jobs.wait().await;
        outcome
    }
}

/// Health answers on the gRPC port while a node starts (its storage may be
/// waiting for the database): every service NOT_SERVING, so probes and load
/// balancers see the process alive but not ready. Stopped once the node
/// serves the port itself.
pub struct StartingHealth {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl StartingHealth {
    /// Serves `grpc.health.v1` on a second handle of `listener` with
    /// `names` (and the whole server, "") NOT_SERVING.
    pub async fn serve(listener: &TcpListener, names: &[&str]) -> anyhow::Result<Self> {
        use std::os::fd::AsFd;
        let handle = std::net::TcpListener::from(listener.as_fd().try_clone_to_owned()?);
        handle.set_nonblocking(true)?;
        let handle = TcpListener::from_std(handle)?;
        let (reporter, health) = tonic_health::server::health_reporter();
        for name in names.iter().copied().chain([""]) {
            reporter
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = tonic::transport::server::TcpIncoming::from(handle);
        // Every other method answers UNAVAILABLE (not UNIMPLEMENTED), which
        // callers retry: the service is on its way.
        let mut routes = tonic::service::Routes::builder();
        routes.add_service(health);
        let routes =
            tonic::service::Routes::from(routes.routes().into_axum_router().fallback(|| async {
                (
                    [
                        ("content-type", "application/grpc"),
                        ("grpc-status", "14"),
                        ("grpc-message", "starting"),
                    ],
                    (),
                )
            }));
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "start-up health server");
            }
        });
        Ok(Self {
            stop: Some(stop),
            task,
        })
    }

    /// Stops answering (the node's own server takes the port over). A
    /// client holding a stream open (a health Watch) would keep a graceful
    /// stop waiting: after a second the server is dropped, closing it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(1), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for StartingHealth {
    fn drop(&mut self) {
        self.task.abort();
    }
}
