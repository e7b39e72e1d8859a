//! Any set of targets, started from their descriptors exactly as `meshwork
//! up` starts them (the runtime's [`Node`]), on 127.0.0.1:0 with fresh
//! storage on the chosen backend; optionally the REST edge in front.
//!
//! ```ignore
//! let mesh = Mesh::builder(&backend).await
//!     .flag("--transaction-settle-after=200ms")
//!     .start(&[&finance_account::SERVICE, &finance_transaction::SERVICE, ...])
//!     .await;
//! let accounts = AccountServiceClient::new(mesh.channel().await);
//! ```
//!
//! Every target of the mesh shares one gRPC port, as in `up`. A test that
//! must come between two services points a target's callers elsewhere with
//! [`MeshBuilder::upstream`] (e.g. at a [`crate::TcpProxy`] in front of
//! [`MeshBuilder::url`]).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshwork_runtime::cache::CacheConfig;
use meshwork_runtime::client::{self, ClientPolicy, MeshChannel};
use meshwork_runtime::db::DbConfig;
use meshwork_runtime::node::{Node, NodeConfig, Shared};
use meshwork_runtime::placement::Placement;
use meshwork_runtime::server::ServerLimits;
use meshwork_runtime::service::Service;
use meshwork_runtime::shutdown::Shutdown;
use meshwork_runtime::time::Clock;
use tokio::net::TcpListener;

use crate::Backend;
use crate::serving::Serving;

/// Fresh storage per target, made on first use and kept for the mesh.
struct TestPlacement {
    backend: Backend,
    dbs: Mutex<HashMap<String, DbConfig>>,
    caches: Mutex<HashMap<String, CacheConfig>>,
    /// (caller, target) → URL; an empty caller stands for every caller.
    upstreams: HashMap<(String, String), String>,
}

impl Placement for TestPlacement {
    fn db(&self, target: &str) -> DbConfig {
        let mut dbs = self.dbs.lock().unwrap_or_else(|e| e.into_inner());
        dbs.entry(target.to_owned())
            .or_insert_with(|| self.backend.fresh_db_config())
            .clone()
    }

    fn cache(&self, target: &str) -> CacheConfig {
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        caches
            .entry(target.to_owned())
            .or_insert_with(|| self.backend.fresh_cache_config())
            .clone()
    }

    fn upstream(&self, caller: &str, target: &str) -> Option<String> {
        self.upstreams
            .get(&(caller.to_owned(), target.to_owned()))
            .or_else(|| self.upstreams.get(&(String::new(), target.to_owned())))
            .cloned()
    }
}

/// A mesh about to start: its port is bound, so its address is known.
pub struct MeshBuilder {
    backend: Backend,
    listener: TcpListener,
    addr: SocketAddr,
    flags: Vec<String>,
    clock: Clock,
    upstreams: HashMap<(String, String), String>,
    dbs: HashMap<String, DbConfig>,
    caches: HashMap<String, CacheConfig>,
    client_policy: ClientPolicy,
    limits: ServerLimits,
    edge: Option<meshwork_gateway::edge::GatewayConfig>,
    test_telemetry: bool,
    startup_timeout: Duration,
}

impl MeshBuilder {
    /// How long services wait for their storage at start.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Leaves telemetry as the process set it up (a bench), instead of the
    /// test kit's in-memory exporter (see [`crate::traces`]).
    pub fn own_telemetry(mut self) -> Self {
        self.test_telemetry = false;
        self
    }

    /// The mesh's gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` of the mesh's gRPC port.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A flag of a service (`--name=value`), as on `meshwork serve`.
    pub fn flag(mut self, flag: impl Into<String>) -> Self {
        self.flags.push(flag.into());
        self
    }

    /// The clock the services read (the system clock unless set).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Callers of `target` reach it at `url` instead of the mesh's port.
    pub fn upstream(mut self, target: &str, url: impl Into<String>) -> Self {
        self.upstreams
            .insert((String::new(), target.to_owned()), url.into());
        self
    }

    /// `caller` (only) reaches `target` at `url`, e.g. a proxy a test cuts
    /// to take one link away.
    pub fn upstream_for(mut self, caller: &str, target: &str, url: impl Into<String>) -> Self {
        self.upstreams
            .insert((caller.to_owned(), target.to_owned()), url.into());
        self
    }

    /// `target`'s database is `db` (e.g. behind a proxy, or shared by two
    /// meshes playing replicas) instead of a fresh one.
    pub fn db(mut self, target: &str, db: DbConfig) -> Self {
        self.dbs.insert(target.to_owned(), db);
        self
    }

    /// `target`'s cache is `cache` instead of a fresh one.
    pub fn cache(mut self, target: &str, cache: CacheConfig) -> Self {
        self.caches.insert(target.to_owned(), cache);
        self
    }

    /// The policy of the services' channels to each other.
    pub fn client_policy(mut self, policy: ClientPolicy) -> Self {
        self.client_policy = policy;
        self
    }

    /// The gRPC server's limits.
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs the REST edge in front of the mesh, on a port of its own.
    pub fn edge(mut self, config: meshwork_gateway::edge::GatewayConfig) -> Self {
        self.edge = Some(config);
        self
    }

    /// Starts `services` and serves them; panics when one does not start.
    pub async fn start(self, services: &[&'static Service]) -> Mesh {
        self.try_start(services)
            .await
            .unwrap_or_else(|error| panic!("the mesh did not start: {error:#}"))
    }

    /// Starts `services` and serves them.
    pub async fn try_start(self, services: &[&'static Service]) -> anyhow::Result<Mesh> {
        if self.test_telemetry {
            crate::traces();
        }
        // Flags as the test gives them, never from the environment: a
        // developer's MESHWORK_* variables must not change a test.
        let command = meshwork_runtime::service::with_flags(
            clap::Command::new("mesh").no_binary_name(true),
            services,
        )
        .mut_args(|arg| arg.env(None));
        let flags = command.try_get_matches_from(&self.flags)?;
        let edge_listener = match &self.edge {
            Some(_) => Some(TcpListener::bind("127.0.0.1:0").await?),
            None => None,
        };
        let http_addr = match &edge_listener {
            Some(listener) => listener.local_addr()?,
            None => "127.0.0.1:0".parse()?,
        };
        let placement = Arc::new(TestPlacement {
            backend: self.backend.clone(),
            dbs: Mutex::new(self.dbs),
            caches: Mutex::new(self.caches),
            upstreams: self.upstreams,
        });
        let served: BTreeSet<&'static str> = services.iter().map(|s| s.target).collect();
        let shutdown = Shutdown::new();
        let (reporter, health) = tonic_health::server::health_reporter();
        let config = NodeConfig {
            placement: placement.clone(),
            flags,
            limits: self.limits,
            client_policy: self.client_policy,
            http_addr,
            health_interval: Duration::from_millis(100),
            clock: self.clock.clone(),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            startup_timeout: self.startup_timeout,
        };
        let url = format!("http://{}", self.addr);
        let names: Vec<&str> = services
            .iter()
            .flat_map(|s| s.grpc_services.iter().copied())
            .collect();
        let starting =
            meshwork_runtime::node::StartingHealth::serve(&self.listener, &names).await?;
        let node = Node::start(
            services,
            served,
            url.clone(),
            config,
            reporter.clone(),
            shutdown.clone(),
        )
        .await;
        starting.stop().await;
        let node = node?;
        let shared = node.shared();
        let serving = tokio::spawn(async move {
            if let Err(error) = node.run(Some(self.listener), health).await {
                tracing::error!(error = %format!("{error:#}"), "mesh stopped");
            }
        });
        let mut edge_url = None;
        if let (Some(listener), Some(config)) = (edge_listener, self.edge) {
            edge_url = Some(format!("http://{http_addr}"));
            let own = url.clone();
            let policy = self.client_policy;
            let gateway = meshwork_gateway::edge::Gateway::new(
                |_| client::channel(&own, policy).expect("own URL"),
                config,
            )?;
            let router = meshwork_gateway::router(
                meshwork_gateway::Readiness::local(reporter),
                Some(Arc::new(gateway)),
            );
            let stop = shutdown.clone();
            tokio::spawn(meshwork_gateway::serve(listener, router, async move {
                stop.cancelled().await
            }));
        }
        Ok(Mesh {
            url,
            edge_url,
            placement,
            shared,
            clock: self.clock,
            serving: Serving::new(shutdown, serving),
        })
    }
}

/// A running mesh; stops when dropped.
pub struct Mesh {
    url: String,
    edge_url: Option<String>,
    placement: Arc<TestPlacement>,
    shared: Shared,
    clock: Clock,
    serving: Serving,
}

impl Mesh {
    /// A mesh on fresh storage of `backend`, about to start.
    pub async fn builder(backend: &Backend) -> MeshBuilder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        MeshBuilder {
            backend: backend.clone(),
            listener,
            addr,
            flags: Vec::new(),
            clock: Clock::system(),
            upstreams: HashMap::new(),
            dbs: HashMap::new(),
            caches: HashMap::new(),
            client_policy: ClientPolicy::default(),
            limits: ServerLimits {
                shutdown_grace: Duration::from_secs(2),
                ..ServerLimits::default()
            },
            edge: None,
            test_telemetry: true,
            startup_timeout: Duration::from_secs(30),
        }
    }

    /// `services` with default settings.
    pub async fn start(backend: &Backend, services: &[&'static Service]) -> Self {
        Self::builder(backend).await.start(services).await
    }

    /// `http://127.0.0.1:<port>` of the gRPC port.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `http://127.0.0.1:<port>` of the REST edge, when it runs.
    pub fn edge_url(&self) -> Option<String> {
        self.edge_url.clone()
    }

    /// A plain tonic channel (no Meshwork client layer), like an outside client.
    pub async fn channel(&self) -> tonic::transport::Channel {
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

    /// Where `target`'s tables are, to look behind its back.
    pub fn db_config(&self, target: &str) -> DbConfig {
        self.placement.db(target)
    }

    /// The clock the services read.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A value a service published at start (a handle for tests).
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> T {
        self.shared
            .get::<T>()
            .unwrap_or_else(|| panic!("no service published a {}", std::any::type_name::<T>()))
    }

    /// Starts graceful shutdown (health goes NOT_SERVING at once).
    pub fn begin_shutdown(&self) {
        self.serving.begin_shutdown();
    }

    /// Shuts down and waits until the services have drained and their jobs
    /// stopped.
    pub async fn stop(self) {
        self.serving.stop().await;
    }
}
