//! The real gRPC server on 127.0.0.1:0, for one test.

use std::net::SocketAddr;
use std::time::Duration;

use meshwork_runtime::client::{self, ClientPolicy, MeshChannel};
use meshwork_runtime::health::HealthMonitor;
use meshwork_runtime::server::{GrpcServer, ServerLimits};
use meshwork_runtime::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::serving::Serving;

/// A running server.
pub struct TestServer {
    addr: SocketAddr,
    serving: Serving,
}

impl TestServer {
    /// Binds port 0, lets `setup` register services and health probes
    /// (probed every 100 ms), and serves until dropped or stopped.
    pub async fn start(setup: impl FnOnce(&mut GrpcServer, &mut HealthMonitor)) -> Self {
        let limits = ServerLimits {
            shutdown_grace: Duration::from_secs(2),
            ..ServerLimits::default()
        };
        Self::start_with(limits, setup).await
    }

    /// Like [`TestServer::start`], with other limits.
    pub async fn start_with(
        limits: ServerLimits,
        setup: impl FnOnce(&mut GrpcServer, &mut HealthMonitor),
    ) -> Self {
        crate::traces();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let (reporter, health) = tonic_health::server::health_reporter();
        let mut server = GrpcServer::new(limits);
        let mut monitor = HealthMonitor::new(reporter, Duration::from_millis(100));
        setup(&mut server, &mut monitor);
        let shutdown = Shutdown::new();
        tokio::spawn(monitor.run(shutdown.clone()));
        let serving = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                server
                    .serve(listener, health, shutdown)
                    .await
                    .expect("serve")
            }
        });
        Self {
            addr,
            serving: Serving::new(shutdown, serving),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A plain tonic channel (no Meshwork client layer), like an outside client.
    pub async fn plain_channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    /// A channel through the Meshwork client layer, like another service.
    pub fn mesh_channel(&self) -> MeshChannel {
        client::channel(&self.url(), ClientPolicy::default()).expect("channel")
    }

    /// Starts graceful shutdown (health goes NOT_SERVING at once).
    pub fn begin_shutdown(&self) {
        self.serving.begin_shutdown();
    }

    /// Shuts down and waits until the server has drained.
    pub async fn stop(self) {
        self.serving.stop().await;
    }
}
