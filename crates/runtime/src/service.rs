//! A service is one registration: the descriptor its crate exports, and the
//! start context it is started with.
//!
//! Every service crate exports `pub static SERVICE: Service` naming its
//! target, its gRPC services, its migrations, the targets it calls, its own
//! flags and its start function. The binary keeps one list of descriptors
//! (`meshwork up`, `meshwork serve --target`, `meshwork migrate`) and the
//! test kit starts the same descriptors with the same [`crate::node`] code,
//! so a service starts the same way in every mode.
//!
//! The start function gets a [`StartContext`]: its storage (opened and
//! migrated on first use), channels to the targets it calls, its flags, the
//! clock, the process's shutdown, and [`StartContext::spawn_job`] for
//! supervised background work. Health is wired by the node: each of the
//! service's gRPC names is SERVING while its storage, its jobs and any extra
//! probes it added are healthy.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

use crate::client::{self, ClientPolicy, MeshChannel};
use crate::counters::Counters;
use crate::events::{Log, Publisher, Subscription, consumer_job};
use crate::health::Probe;
use crate::jobs::Job;
use crate::outbox::{self, Outbox, Relay};
use crate::placement::Placement;
use crate::server::{GrpcServer, ServerLimits};
use crate::shutdown::Shutdown;
use crate::storage::Storage;
use crate::time::Clock;

/// How a service starts: registers its gRPC services, spawns its jobs.
pub type StartFn = for<'a> fn(&'a mut StartContext) -> BoxFuture<'a, anyhow::Result<()>>;

/// A service's descriptor: everything the binary, the test kit and the chart
/// need to know about it.
#[derive(Debug)]
pub struct Service {
    /// The target name, `<domain>.<service>` (e.g. `finance.account`), or a
    /// plain name for a helper target (e.g. `payment-sandbox`).
    pub target: &'static str,
    /// The full names of the gRPC services it serves (health, reflection).
    pub grpc_services: &'static [&'static str],
    /// Its schema migrations; `None` when it owns no tables.
    pub migrations: Option<&'static Migrator>,
    /// The targets it may call; [`StartContext::upstream`] refuses others.
    pub calls: &'static [&'static str],
    /// Its own flags, added to `meshwork up` and `serve` (a clap
    /// `Args::augment_args`); read back with [`StartContext::flags`].
    pub flags: Option<fn(clap::Command) -> clap::Command>,
    /// Starts it.
    pub start: StartFn,
}

impl Service {
    /// The domain of the target (`finance` for `finance.account`); `None`
    /// for a helper target.
    pub fn domain(&self) -> Option<&'static str> {
        self.target.split_once('.').map(|(domain, _)| domain)
    }
}

/// Whether opening storage failed because something is not reachable (yet):
/// worth waiting for. A refused login, a bad URL or a failing migration is
/// not.
fn unreachable(error: &crate::BoxError) -> bool {
    use crate::db::{DbError, is_unavailable};
    match error.downcast_ref::<DbError>() {
        Some(DbError::Sqlx(error)) => is_unavailable(error),
        Some(DbError::Migrate(sqlx::migrate::MigrateError::Execute(error))) => {
            is_unavailable(error)
        }
        Some(_) => false,
        // The cache (Redis) not answering.
        None => true,
    }
}

/// `command` with the flags of `services` added, each flag once (two
/// targets of one crate may declare the same flags, like finance.payment
/// and its sandbox).
pub fn with_flags(mut command: clap::Command, services: &[&Service]) -> clap::Command {
    for augment in services.iter().filter_map(|service| service.flags) {
        let flags = augment(clap::Command::new("flags"));
        for arg in flags.get_arguments() {
            if command.get_arguments().all(|a| a.get_id() != arg.get_id()) {
                command = command.arg(arg.clone());
            }
        }
    }
    command
}

impl std::fmt::Debug for StartContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartContext")
            .field("target", &self.service.target)
            .finish_non_exhaustive()
    }
}

/// What every service of one process shares at start.
pub struct NodeEnv {
    /// Where storage lives and where other targets run.
    pub placement: Arc<dyn Placement>,
    /// The flags of every service (see [`Service::flags`]).
    pub flags: clap::ArgMatches,
    /// The targets this process serves.
    pub served: BTreeSet<&'static str>,
    /// This process's own gRPC URL, for targets served here.
    pub own_url: String,
    /// Limits of the gRPC server.
    pub limits: ServerLimits,
    /// Policy of channels to other services.
    pub client_policy: ClientPolicy,
    /// The process's HTTP address (the REST edge, if it runs here).
    pub http_addr: std::net::SocketAddr,
    /// Cancelled on shutdown.
    pub shutdown: Shutdown,
    /// Where services read the time from.
    pub clock: Clock,
    /// Values services of one process share (see [`StartContext::shared`]).
    pub shared: Mutex<http::Extensions>,
    /// The event logs of the producers of this process (served as
    /// `EventLogService` on its port).
    pub logs: crate::events::Logs,
    /// How long producers keep delivered events.
    pub event_retention: std::time::Duration,
    /// How long a service waits for its storage at start.
    pub startup_timeout: std::time::Duration,
}

/// What a service is started with.
pub struct StartContext {
    service: &'static Service,
    env: Arc<NodeEnv>,
    pub(crate) grpc: GrpcServer,
    pub(crate) storage: Option<Storage>,
    pub(crate) probes: Vec<Arc<dyn Probe>>,
    pub(crate) jobs: Vec<Job>,
    publisher: Option<Publisher>,
    optional_cache: bool,
    // A mutex only to make the context `Sync` (futures are not), so that
    // start functions may hold `&ctx` across an await.
    pub(crate) tasks: Mutex<Vec<(String, BoxFuture<'static, anyhow::Result<()>>)>>,
}

impl StartContext {
    pub(crate) fn new(service: &'static Service, env: Arc<NodeEnv>, grpc: GrpcServer) -> Self {
        Self {
            service,
            env,
            grpc,
            storage: None,
            probes: Vec::new(),
            jobs: Vec::new(),
            publisher: None,
            optional_cache: false,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The target being started.
    pub fn target(&self) -> &'static str {
        self.service.target
    }

    /// The service's storage, opened and migrated on first use; its probes
    /// join the service's health.
    pub async fn storage(&mut self) -> anyhow::Result<Storage> {
        if let Some(storage) = &self.storage {
            return Ok(storage.clone());
        }
        let target = self.service.target;
        let migrator = self
            .service
            .migrations
            .with_context(|| format!("{target} declares no migrations"))?;
        let placement = &self.env.placement;
        let (db, cache) = (placement.db(target), placement.cache(target));
        // A database that is not there yet (it starts after us, it is
        // restarting) is waited for, up to the start-up timeout; health
        // says NOT_SERVING meanwhile (see `node::StartingHealth`).
        let give_up = std::time::Instant::now() + self.env.startup_timeout;
        let mut pause = std::time::Duration::from_millis(200);
        let storage = loop {
            match Storage::open(&db, &cache, migrator).await {
                Ok(storage) => break storage,
                Err(error)
                    if unreachable(&error) && std::time::Instant::now() + pause < give_up =>
                {
                    tracing::warn!(target, %error, retry_in_ms = pause.as_millis() as u64, "storage not reachable yet; waiting");
                    tokio::select! {
                        () = self.env.shutdown.cancelled() => {
                            anyhow::bail!("{target}: shut down while waiting for storage")
                        }
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(std::time::Duration::from_secs(5));
                }
                Err(error) => {
                    anyhow::bail!(
                        "{target}: storage: {error} (gave up after --startup-timeout {:?})",
                        self.env.startup_timeout
                    )
                }
            }
        };
        let optional_cache = self.optional_cache;
        self.probes.extend(
            storage
                .probes()
                .into_iter()
                .filter(|probe| !(optional_cache && probe.name() == "cache")),
        );
        self.storage = Some(storage.clone());
        Ok(storage)
    }

    /// Declares that the service serves without its cache's Redis (it
    /// reads through to the database): a Redis outage then leaves it
    /// SERVING instead of taking every replica out of rotation. Call before
    /// [`StartContext::storage`].
    pub fn cache_is_optional(&mut self) {
        self.optional_cache = true;
    }

    /// Where the service's cache lives (Redis URL, namespace): for a
    /// service that keeps its own data in Redis (commerce.cart).
    pub fn cache_config(&self) -> crate::cache::CacheConfig {
        self.env.placement.cache(self.service.target)
    }

    /// Expiring shared counters (Redis when configured, else in-process) in
    /// the service's cache namespace.
    pub async fn counters(&self) -> anyhow::Result<Counters> {
        let cache = self.env.placement.cache(self.service.target);
        Counters::connect(&cache.namespace, cache.redis_url.as_deref())
            .await
            .map_err(|e| anyhow::anyhow!("{}: counters: {e}", self.service.target))
    }

    /// A channel to `target`: its configured URL, or this process's own
    /// port when it runs here. Channels connect lazily, so start-up order
    /// does not matter.
    pub fn upstream(&self, target: &str) -> anyhow::Result<MeshChannel> {
        self.upstream_with(target, self.env.client_policy)
    }

    /// Like [`StartContext::upstream`], with a policy of the service's own
    /// (e.g. shorter attempts for calls whose answer may be lost).
    pub fn upstream_with(&self, target: &str, policy: ClientPolicy) -> anyhow::Result<MeshChannel> {
        if !self.service.calls.contains(&target) {
            bail!(
                "{} calls {target}, which its descriptor does not list in `calls`",
                self.service.target
            );
        }
        let url = match self.env.placement.upstream(self.service.target, target) {
            Some(url) => url,
            None if self.env.served.contains(target) => self.env.own_url.clone(),
            None => bail!(
                "{target} does not run in this process: give --upstream {target}=<grpc url> \
                 (or MESHWORK_UPSTREAM_{})",
                target.replace(['.', '-'], "_").to_uppercase()
            ),
        };
        client::channel(&url, policy)
            .map_err(|e| anyhow::anyhow!("upstream {target} at {url}: {e}"))
    }

    /// A channel to `target` when it runs here or is configured; `None`
    /// otherwise.
    pub fn optional_upstream(&self, target: &str) -> anyhow::Result<Option<MeshChannel>> {
        if self.serves(target)
            || self
                .env
                .placement
                .upstream(self.service.target, target)
                .is_some()
        {
            self.upstream(target).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether `target` runs in this process.
    pub fn serves(&self, target: &str) -> bool {
        self.env.served.contains(target)
    }

    /// The service's own flags.
    pub fn flags<T: clap::FromArgMatches>(&self) -> anyhow::Result<T> {
        T::from_arg_matches(&self.env.flags)
            .map_err(|e| anyhow::anyhow!("{}: flags: {e}", self.service.target))
    }

    /// The clock (the system clock, or a test's).
    pub fn clock(&self) -> Clock {
        self.env.clock.clone()
    }

    /// Cancelled when the process shuts down.
    pub fn shutdown(&self) -> Shutdown {
        self.env.shutdown.clone()
    }

    /// The gRPC server limits (apply the message size to the generated
    /// server, which tonic sets per service).
    pub fn limits(&self) -> ServerLimits {
        self.env.limits
    }

    /// The process's HTTP address.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.env.http_addr
    }

    /// Policy of channels to other services (for HTTP clients too).
    pub fn client_policy(&self) -> ClientPolicy {
        self.env.client_policy
    }

    /// The process's gRPC server, to add the service's generated servers
    /// to (`ctx.grpc().add_service(..)`).
    pub fn grpc(&mut self) -> &mut GrpcServer {
        &mut self.grpc
    }

    /// Adds a probe to the service's health.
    pub fn probe(&mut self, probe: Arc<dyn Probe>) {
        self.probes.push(probe);
    }

    /// Starts `job` under the process's supervisor once the service has
    /// started; a failing job makes the service NOT_SERVING until it
    /// recovers (see [`crate::jobs`]).
    pub fn spawn_job(&mut self, job: Job) {
        self.jobs.push(job);
    }

    /// Runs `task` (e.g. a helper's HTTP server) for the life of the
    /// process; its error stops the process.
    pub fn spawn_task(
        &mut self,
        name: &str,
        task: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.tasks
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((name.to_owned(), Box::pin(task)));
    }

    /// The value of type `T` that the services of this process share: made
    /// by the first one to ask (with `init`), the same for the others.
    pub fn shared<T: Clone + Send + Sync + 'static>(
        &self,
        init: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut shared = self
            .env
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(value) = shared.get::<T>() {
            return Ok(value.clone());
        }
        let value = init()?;
        shared.insert(value.clone());
        Ok(value)
    }

    /// Makes `value` reachable by the other services of this process and by
    /// the test kit (`Mesh::get`), e.g. a handle a test drives directly.
    pub fn publish<T: Clone + Send + Sync + 'static>(&self, value: T) {
        self.env
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(value);
    }

    /// This service's event log: served to consumers from this process's
    /// port, numbered by a supervised sequencer and trimmed by retention.
    /// Stores wake the sequencer through the returned publisher after a
    /// commit that wrote events (see [`crate::events`]).
    pub async fn event_log(&mut self) -> anyhow::Result<Publisher> {
        if let Some(publisher) = &self.publisher {
            return Ok(publisher.clone());
        }
        let storage = self.storage().await?;
        let log = Log::new(storage.db);
        let target = self.target();
        self.env.logs.insert(target, log.clone());
        self.spawn_job(log.sequencer_job(target));
        self.spawn_job(log.retention_job(target, self.env.event_retention));
        let publisher = log.publisher();
        self.publisher = Some(publisher.clone());
        Ok(publisher)
    }

    /// Consumes `subscription` (its producer must be among the targets this
    /// service calls) with a supervised consumer over the service's own
    /// database; `None` when the producer neither runs here nor is
    /// configured, which is logged.
    pub async fn subscribe(&mut self, subscription: Subscription) -> anyhow::Result<bool> {
        let Some(channel) = self.optional_upstream(&subscription.producer)? else {
            tracing::warn!(
                target = self.target(),
                producer = %subscription.producer,
                "the producer is neither served here nor configured (--upstream ...): not subscribed"
            );
            return Ok(false);
        };
        let storage = self.storage().await?;
        self.spawn_job(consumer_job(subscription, channel, storage.db));
        Ok(true)
    }

    /// The outbox of the service's storage: audit events go into its event
    /// log (topic `audit`), which finance.audit consumes. Events an earlier
    /// release left in the old `outbox` table are still relayed to
    /// finance.audit by a supervised job when that is reachable.
    pub async fn audit_outbox(&mut self) -> anyhow::Result<Outbox> {
        let publisher = self.event_log().await?;
        if let Some(audit) = self.optional_upstream(outbox::AUDIT_TARGET)? {
            let storage = self.storage().await?;
            let relay = Relay::new(storage.db, outbox::audit_sink(self.target(), audit));
            self.spawn_job(relay.job(self.target()));
        }
        Ok(Outbox::new(publisher))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Args)]
    struct Shared {
        /// A flag two targets share.
        #[arg(long, default_value = "x")]
        shared_flag: String,
    }

    fn start(_: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    static ONE: Service = Service {
        target: "test.one",
        grpc_services: &[],
        migrations: None,
        calls: &[],
        flags: Some(<Shared as clap::Args>::augment_args),
        start,
    };
    static TWO: Service = Service {
        target: "test.two",
        ..ONE
    };

    #[test]
    fn flags_two_targets_share_are_added_once() {
        let command = with_flags(clap::Command::new("t").no_binary_name(true), &[&ONE, &TWO]);
        command.clone().debug_assert();
        let matches = command
            .try_get_matches_from(["--shared-flag", "y"])
            .unwrap();
        let flags = <Shared as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
        assert_eq!(flags.shared_flag, "y");
    }
}
