//! The multi-level cache: in-process (moka) in front of Redis, in front of
//! the database that the caller reads on a miss.
//!
//! Without a Redis URL the cache is the in-process level alone (embedded
//! mode). With one, a miss in-process asks Redis, and invalidations are
//! broadcast on a Redis channel so that every replica drops its in-process
//! copy too, not only the one that changed the data.
//!
//! Values carry the version of the data they were read at (an account's
//! version, a row's revision). A store only replaces an older version, at
//! both levels (a Lua compare-and-set in Redis, `and_compute_with` in moka),
//! so a reader that loaded a value just before a change cannot put it back
//! after the writer stored the new one. Writers [`Cache::replace`] the value
//! after their commit; every other replica drops its in-process copy and
//! reads the new one from Redis.
//!
//! Read-through ([`Cache::get_or_load`], [`Cache::get_many`]) is built in:
//! concurrent misses of one key in one process share one load (moka's
//! `try_get_with`), a batch asks Redis once (MGET) and its loader once for
//! what is left, an answer of "no such thing" is cached too (a negative
//! entry, for a shorter time, so that ids that do not exist cannot hammer
//! the database), and every lifetime is jittered (± [`CacheConfig::jitter`])
//! so that entries loaded together do not expire together.
//!
//! The cache is never the source of truth: Redis errors are logged and read
//! as misses. What is left: with Redis, a reader on another replica that
//! stored an old version in Redis just before the change may still put it in
//! its own in-process level just after the eviction reached it; that copy
//! lives at most `local_ttl`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::health::Probe;

/// How a cache is set up.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `redis://host:port/db`, or `None` for the in-process level only.
    pub redis_url: Option<String>,
    /// Prefix of every key and of the invalidation channel, e.g. the
    /// service name; tests use a fresh one each.
    pub namespace: String,
    /// Lifetime of an in-process entry.
    pub local_ttl: Duration,
    /// Lifetime of a Redis entry.
    pub shared_ttl: Duration,
    /// Entries kept in-process.
    pub local_capacity: u64,
    /// Lifetime of a negative entry ("no such thing") at either level.
    pub negative_ttl: Duration,
    /// Every lifetime is drawn from `ttl × (1 ± jitter)`.
    pub jitter: f64,
}

impl CacheConfig {
    /// Defaults for `namespace`: 5 s in-process, 60 s in Redis.
    pub fn new(namespace: impl Into<String>, redis_url: Option<String>) -> Self {
        Self {
            redis_url,
            namespace: namespace.into(),
            local_ttl: Duration::from_secs(5),
            shared_ttl: Duration::from_secs(60),
            local_capacity: 100_000,
            negative_ttl: Duration::from_secs(5),
            jitter: 0.15,
        }
    }
}

/// The version of a negative entry: any real version (≥ 1) replaces it.
const ABSENT: i64 = 0;

/// `ttl` drawn from `ttl × (1 ± jitter)`, at least a millisecond.
fn jittered(ttl: Duration, jitter: f64) -> Duration {
    let factor = 1.0 + jitter * (fastrand::f64() * 2.0 - 1.0);
    ttl.mul_f64(factor.max(0.0)).max(Duration::from_millis(1))
}

/// Per-entry lifetimes in-process: jittered, shorter for negative entries.
struct Lifetimes {
    ttl: Duration,
    negative_ttl: Duration,
    jitter: f64,
}

impl Lifetimes {
    fn of(&self, entry: &Bytes) -> Duration {
        let negative = split(entry).is_some_and(|(_, payload)| payload.is_empty());
        let ttl = if negative {
            self.negative_ttl
        } else {
            self.ttl
        };
        jittered(ttl, self.jitter)
    }
}

impl moka::Expiry<String, Bytes> for Lifetimes {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Bytes,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(self.of(value))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Bytes,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.of(value))
    }
}

/// A cheap-to-clone handle to the cache.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    local: moka::future::Cache<String, Bytes>,
    shared: Option<Shared>,
    _stop_listener: Option<DropGuard>,
}

struct Shared {
    conn: ConnectionManager,
    /// Until when Redis is skipped after it failed (ms since `epoch`).
    down_until: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
    /// What writers could not do in Redis: it may still hold the old
    /// versions, and other replicas were not told. Done as soon as Redis
    /// answers again.
    dirty: Dirty,
    channel: String,
    ttl: Duration,
    negative_ttl: Duration,
    jitter: f64,
}

/// See [`Shared::dirty`]: by key (without the namespace).
type Dirty = Arc<std::sync::Mutex<std::collections::BTreeMap<String, Repair>>>;

/// A writer's change that is still to reach Redis.
#[derive(Debug, Clone)]
enum Repair {
    /// Store this entry (version, entry, TTL in seconds) if it is newer
    /// than Redis's, then tell the other replicas.
    Store(i64, Bytes, u64),
    /// Delete the key, then tell the other replicas.
    Delete,
    /// Only tell the other replicas (Redis has the value).
    Publish,
}

impl Repair {
    /// The one to keep when a key needs two: a store of a newer version
    /// wins over an older one, a delete over a store made before it.
    fn merge(self, later: Repair) -> Repair {
        match (self, later) {
            (Repair::Store(v1, e1, t1), Repair::Store(v2, ..)) if v2 < v1 => {
                Repair::Store(v1, e1, t1)
            }
            (_, later @ (Repair::Store(..) | Repair::Delete)) => later,
            (earlier, Repair::Publish) => earlier,
        }
    }
}

/// Does what writers could not (see [`Shared::dirty`]) over `conn`;
/// what fails stays to do.
async fn repair<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    namespace: &str,
    channel: &str,
    dirty: &Dirty,
) -> Result<(), redis::RedisError> {
    let pending: Vec<(String, Repair)> = {
        let mut dirty = dirty.lock().unwrap_or_else(|e| e.into_inner());
        if dirty.is_empty() {
            return Ok(());
        }
        std::mem::take(&mut *dirty).into_iter().collect()
    };
    let mut left = pending.into_iter();
    while let Some((key, what)) = left.next() {
        let shared_key = format!("{namespace}:{key}");
        let done: Result<(), redis::RedisError> = async {
            match &what {
                Repair::Store(version, entry, ttl) => {
                    STORE_IF_NEWER
                        .key(&shared_key)
                        .arg(*version)
                        .arg(entry.as_ref())
                        .arg(*ttl)
                        .invoke_async::<i64>(conn)
                        .await?;
                }
                Repair::Delete => {
                    redis::cmd("DEL")
                        .arg(&shared_key)
                        .query_async::<()>(conn)
                        .await?
                }
                Repair::Publish => {}
            }
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(&key)
                .query_async::<()>(conn)
                .await
        }
        .await;
        if let Err(error) = done {
            let mut dirty = dirty.lock().unwrap_or_else(|e| e.into_inner());
            for (key, what) in std::iter::once((key, what)).chain(left) {
                let merged = match dirty.remove(&key) {
                    // A writer added one meanwhile: it is the later.
                    Some(newer) => what.merge(newer),
                    None => what,
                };
                dirty.insert(key, merged);
            }
            return Err(error);
        }
    }
    Ok(())
}

/// How long Redis is left alone after it failed: as long as a call may wait.
use crate::redis_conn::REDIS_WAIT;

impl Shared {
    /// The connection, unless Redis failed less than [`REDIS_WAIT`] ago
    /// (a breaker: while Redis is down, calls go on without it instead of
    /// each waiting for it).
    fn conn(&self) -> Option<ConnectionManager> {
        use std::sync::atomic::Ordering;
        let now = self.epoch.elapsed().as_millis() as u64;
        (now >= self.down_until.load(Ordering::Relaxed)).then(|| self.conn.clone())
    }

    /// Notes that Redis failed.
    fn failed(&self) {
        use std::sync::atomic::Ordering;
        let until = (self.epoch.elapsed() + REDIS_WAIT).as_millis() as u64;
        self.down_until.store(until, Ordering::Relaxed);
    }

    /// Remembers a writer's change of `key` that did not reach Redis.
    fn mark_dirty(&self, key: &str, what: Repair) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        let merged = match dirty.remove(key) {
            Some(earlier) => earlier.merge(what),
            None => what,
        };
        dirty.insert(key.to_owned(), merged);
    }

    /// Does what writers could not (after a call went through: Redis is
    /// back), before anyone reads the old versions.
    /// Whether nothing is left to repair: until then Redis may hold
    /// versions older than the database's, and readers must not use it.
    async fn clean(&self, conn: &mut ConnectionManager, namespace: &str) -> bool {
        match repair(conn, namespace, &self.channel, &self.dirty).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "cache: writes that missed Redis not repaired yet");
                self.failed();
                false
            }
        }
    }

    /// A jittered Redis lifetime for `entry`, in whole seconds (≥ 1).
    fn ttl_secs(&self, entry: &Bytes) -> u64 {
        let negative = split(entry).is_some_and(|(_, payload)| payload.is_empty());
        let ttl = if negative {
            self.negative_ttl
        } else {
            self.ttl
        };
        jittered(ttl, self.jitter).as_secs().max(1)
    }
}

/// What a compare-and-set in Redis did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// Stored.
    Yes,
    /// Redis holds a newer version.
    Newer,
    /// Redis failed, is skipped for now, or is not in use.
    No,
}

impl Cache {
    /// Builds the cache; with Redis, connects and starts listening for
    /// invalidations from other replicas.
    pub async fn connect(config: &CacheConfig) -> Result<Self, redis::RedisError> {
        let local = moka::future::Cache::builder()
            .max_capacity(config.local_capacity)
            .expire_after(Lifetimes {
                ttl: config.local_ttl,
                negative_ttl: config.negative_ttl,
                jitter: config.jitter,
            })
            .build();
        let (shared, stop) = match &config.redis_url {
            None => (None, None),
            Some(url) => {
                let client = redis::Client::open(url.as_str())?;
                // Calls wait at most REDIS_WAIT, then the breaker keeps
                // calls off Redis for a while.
                let conn = crate::redis_conn::connect_client(client.clone()).await?;
                let channel = format!("{}:invalidate", config.namespace);
                let stop = CancellationToken::new();
                let dirty = Dirty::default();
                let subscribed = listen_for_invalidations(
                    client,
                    config.namespace.clone(),
                    channel.clone(),
                    local.clone(),
                    dirty.clone(),
                    stop.clone(),
                )
                .await?;
                tokio::spawn(subscribed);
                let shared = Shared {
                    conn,
                    down_until: std::sync::atomic::AtomicU64::new(0),
                    epoch: std::time::Instant::now(),
                    dirty,
                    channel,
                    ttl: config.shared_ttl,
                    negative_ttl: config.negative_ttl,
                    jitter: config.jitter,
                };
                (Some(shared), Some(stop.drop_guard()))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                namespace: config.namespace.clone(),
                local,
                shared,
                _stop_listener: stop,
            }),
        })
    }

    /// Which levels are in use: "memory" or "memory+redis".
    pub fn levels(&self) -> &'static str {
        if self.inner.shared.is_some() {
            "memory+redis"
        } else {
            "memory"
        }
    }

    /// The cached value of `key`, from the nearest level that has it.
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        if let Some(entry) = self.inner.local.get(key).await {
            return present(&entry);
        }
        let entry = self.get_shared(key).await?;
        self.store_local_entry(key, entry.clone()).await;
        present(&entry)
    }

    /// Stores `value`, read at `version`, unless a newer version is cached.
    /// For read-through: call after loading from the source of truth.
    pub async fn store(&self, key: &str, version: i64, value: Bytes) {
        let entry = join(version, &value);
        match self.store_shared(key, version, &entry).await {
            // Redis holds a newer version: this one must not be kept anywhere.
            Stored::Newer => {}
            Stored::Yes | Stored::No => self.store_local(key, version, entry).await,
        }
    }

    /// Compare-and-set of `entry` in Redis.
    async fn store_shared(&self, key: &str, version: i64, entry: &Bytes) -> Stored {
        let Some(shared) = &self.inner.shared else {
            return Stored::No;
        };
        let Some(mut conn) = shared.conn() else {
            return Stored::No;
        };
        let stored: Result<i64, _> = STORE_IF_NEWER
            .key(self.shared_key(key))
            .arg(version)
            .arg(entry.as_ref())
            .arg(shared.ttl_secs(entry))
            .invoke_async(&mut conn)
            .await;
        match stored {
            Ok(1) => Stored::Yes,
            Ok(_) => Stored::Newer,
            Err(error) => {
                tracing::warn!(%error, "cache write failed");
                shared.failed();
                Stored::No
            }
        }
    }

    /// The entry of `key` in Redis; `None` on a miss, a failure, or without
    /// Redis.
    async fn get_shared(&self, key: &str) -> Option<Bytes> {
        let shared = self.inner.shared.as_ref()?;
        let mut conn = shared.conn()?;
        // Keys a writer could not reach go first, so nobody reads their
        // old version back.
        if !shared.clean(&mut conn, &self.inner.namespace).await {
            return None;
        }
        let found: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
            .arg(self.shared_key(key))
            .query_async(&mut conn)
            .await;
        match found {
            Ok(value) => value.map(Bytes::from),
            Err(error) => {
                tracing::warn!(%error, "cache read failed; reading through");
                shared.failed();
                None
            }
        }
    }

    /// Read-through of `key`: the nearest level that has it, else `load`,
    /// whose answer (a payload at a version, or `None` for "no such thing")
    /// is cached at both levels. Concurrent misses of one key in this
    /// process wait for one load, and a load never replaces what a writer
    /// stored meanwhile (both run under the key's lock in moka).
    /// `Ok(None)` is a (cached) absence.
    pub async fn get_or_load<E, Fut>(
        &self,
        key: &str,
        load: impl FnOnce() -> Fut,
    ) -> Result<Option<Bytes>, E>
    where
        Fut: std::future::Future<Output = Result<Option<(i64, Bytes)>, E>>,
        E: Send + Sync + 'static,
    {
        if let Some(entry) = self.inner.local.get(key).await {
            return Ok(present(&entry));
        }
        let computed = self
            .inner
            .local
            .entry(key.to_owned())
            .and_try_compute_with(|current| async move {
                // Someone loaded (or wrote) it while we waited for the lock.
                if current.is_some() {
                    return Ok(moka::ops::compute::Op::Nop);
                }
                let entry = match self.get_shared(key).await {
                    Some(entry) => entry,
                    None => {
                        let loaded = match load().await? {
                            Some((version, payload)) => join(version, &payload),
                            None => join(ABSENT, b""),
                        };
                        self.share_loaded(key, loaded).await
                    }
                };
                Ok(moka::ops::compute::Op::Put(entry))
            })
            .await?;
        Ok(computed
            .into_entry()
            .and_then(|entry| present(entry.value())))
    }

    /// Read-through of many keys at once: in-process first, then one MGET
    /// for the misses, then one call of `load` with the indices (into
    /// `keys`) of what is still missing, answering for each of them in that
    /// order. The result is in the order of `keys`; `None` is an absence.
    pub async fn get_many<E, Fut>(
        &self,
        keys: &[String],
        load: impl FnOnce(Vec<usize>) -> Fut,
    ) -> Result<Vec<Option<Bytes>>, E>
    where
        Fut: std::future::Future<Output = Result<Vec<Option<(i64, Bytes)>>, E>>,
    {
        let mut entries: Vec<Option<Bytes>> = Vec::with_capacity(keys.len());
        for key in keys {
            entries.push(self.inner.local.get(key).await);
        }
        let mut missing: Vec<usize> = (0..keys.len()).filter(|&i| entries[i].is_none()).collect();
        if let (Some(shared), false) = (&self.inner.shared, missing.is_empty())
            && let Some(mut conn) = shared.conn()
            && shared.clean(&mut conn, &self.inner.namespace).await
        {
            let names: Vec<String> = missing.iter().map(|&i| self.shared_key(&keys[i])).collect();
            let found: Result<Vec<Option<Vec<u8>>>, _> =
                redis::cmd("MGET").arg(&names).query_async(&mut conn).await;
            match found {
                Ok(found) => {
                    for (&i, value) in missing.iter().zip(found) {
                        if let Some(value) = value {
                            let value = Bytes::from(value);
                            self.store_local_entry(&keys[i], value.clone()).await;
                            entries[i] = Some(value);
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cache read failed; reading through");
                    shared.failed();
                }
            }
            missing.retain(|&i| entries[i].is_none());
        }
        if !missing.is_empty() {
            let loaded = load(missing.clone()).await?;
            let stores = missing.iter().zip(loaded).map(|(&i, answer)| {
                let entry = match answer {
                    Some((version, payload)) => join(version, &payload),
                    None => join(ABSENT, b""),
                };
                let key = &keys[i];
                async move { (i, self.share_loaded(key, entry).await) }
            });
            for (i, entry) in futures::future::join_all(stores).await {
                self.store_local_entry(&keys[i], entry.clone()).await;
                entries[i] = Some(entry);
            }
        }
        Ok(entries
            .iter()
            .map(|e| e.as_ref().and_then(present))
            .collect())
    }

    /// Puts a freshly loaded `entry` into Redis; when Redis holds a newer
    /// version (a writer got there while we read), that one is the answer.
    async fn share_loaded(&self, key: &str, entry: Bytes) -> Bytes {
        let version = split(&entry).map_or(ABSENT, |(v, _)| v);
        if self.store_shared(key, version, &entry).await == Stored::Newer
            && let Some(newer) = self.get_shared(key).await
        {
            return newer;
        }
        entry
    }

    async fn store_local_entry(&self, key: &str, entry: Bytes) {
        let version = split(&entry).map_or(ABSENT, |(v, _)| v);
        self.store_local(key, version, entry).await;
    }

    /// Stores the value a writer just committed at `version`, and makes every
    /// other replica drop its in-process copy. When Redis cannot be reached
    /// the key is remembered and deleted from Redis once it answers again
    /// (until then other replicas may serve their copy for `local_ttl`).
    pub async fn replace(&self, key: &str, version: i64, value: Bytes) {
        let entry = join(version, &value);
        let stored = self.store_shared(key, version, &entry).await;
        let entry_copy = entry.clone();
        if stored != Stored::Newer {
            self.store_local(key, version, entry).await;
        }
        let Some(shared) = &self.inner.shared else {
            return;
        };
        if stored == Stored::No {
            let ttl = shared.ttl_secs(&entry_copy);
            shared.mark_dirty(key, Repair::Store(version, entry_copy, ttl));
            return;
        }
        self.broadcast(shared, key).await;
    }

    async fn store_local(&self, key: &str, version: i64, entry: Bytes) {
        self.inner
            .local
            .entry(key.to_owned())
            .and_compute_with(|current| async move {
                match current.as_ref().and_then(|c| split(c.value())) {
                    Some((held, _)) if held >= version => moka::ops::compute::Op::Nop,
                    _ => moka::ops::compute::Op::Put(entry),
                }
            })
            .await;
    }

    async fn broadcast(&self, shared: &Shared, key: &str) {
        let Some(mut conn) = shared.conn() else {
            shared.mark_dirty(key, Repair::Publish);
            return;
        };
        let published: Result<(), _> = redis::cmd("PUBLISH")
            .arg(&shared.channel)
            .arg(key)
            .query_async(&mut conn)
            .await;
        match published {
            Ok(()) => {
                shared.clean(&mut conn, &self.inner.namespace).await;
            }
            Err(error) => {
                tracing::error!(%error, "cache eviction broadcast failed; retried when Redis answers");
                shared.failed();
                shared.mark_dirty(key, Repair::Publish);
            }
        }
    }

    /// Drops `key` at every level, in every replica.
    pub async fn invalidate(&self, key: &str) {
        self.inner.local.invalidate(key).await;
        let Some(shared) = &self.inner.shared else {
            return;
        };
        let Some(mut conn) = shared.conn() else {
            shared.mark_dirty(key, Repair::Delete);
            return;
        };
        let done: Result<(), redis::RedisError> = async {
            redis::cmd("DEL")
                .arg(self.shared_key(key))
                .query_async::<()>(&mut conn)
                .await?;
            redis::cmd("PUBLISH")
                .arg(&shared.channel)
                .arg(key)
                .query_async::<()>(&mut conn)
                .await
        }
        .await;
        match done {
            Ok(()) => {
                shared.clean(&mut conn, &self.inner.namespace).await;
            }
            Err(error) => {
                tracing::error!(%error, "cache invalidation failed; retried when Redis answers");
                shared.failed();
                shared.mark_dirty(key, Repair::Delete);
            }
        }
    }

    /// A health probe (PING) when Redis is in use.
    pub fn probe(&self) -> Option<Arc<dyn Probe>> {
        self.inner
            .shared
            .as_ref()
            .map(|shared| crate::redis_conn::probe("cache", shared.conn.clone()))
    }

    fn shared_key(&self, key: &str) -> String {
        format!("{}:{key}", self.inner.namespace)
    }
}

/// Subscribes before returning (so no invalidation published after
/// `connect` is missed), then yields the loop that applies them. After a
/// reconnection it deletes the keys writers could not reach meanwhile and
/// drops every in-process entry (invalidations may have been missed).
async fn listen_for_invalidations(
    client: redis::Client,
    namespace: String,
    channel: String,
    local: moka::future::Cache<String, Bytes>,
    dirty: Dirty,
    stop: CancellationToken,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&channel).await?;
    Ok(async move {
        let mut pubsub = Some(pubsub);
        loop {
            let mut current = match pubsub.take() {
                Some(current) => current,
                None => match resubscribe(&client, &namespace, &channel, &dirty).await {
                    Ok(current) => {
                        local.invalidate_all();
                        current
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cache invalidation channel down; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                },
            };
            let mut messages = current.on_message();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    message = messages.next() => match message {
                        Some(message) => {
                            if let Ok(key) = message.get_payload::<String>() {
                                local.invalidate(&key).await;
                            }
                        }
                        None => break,
                    },
                }
            }
        }
    })
}

/// Subscribes again, and does what writers could not while Redis was away
/// (before anyone reads the old versions into memory again).
async fn resubscribe(
    client: &redis::Client,
    namespace: &str,
    channel: &str,
    dirty: &Dirty,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    repair(&mut conn, namespace, channel, dirty).await?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// Compare-and-set on the version prefix ("<version>:<payload>").
static STORE_IF_NEWER: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local current = redis.call('GET', KEYS[1])
        if current then
            local held = tonumber(string.match(current, '^(-?%d+):'))
            if held and held >= tonumber(ARGV[1]) then
                return 0
            end
        end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
        return 1
        ",
    )
});

/// The payload of an entry; `None` for a negative entry.
fn present(entry: &Bytes) -> Option<Bytes> {
    split(entry)
        .map(|(_, payload)| payload)
        .filter(|payload| !payload.is_empty())
}

/// `version:payload`.
fn join(version: i64, payload: &[u8]) -> Bytes {
    let mut entry = format!("{version}:").into_bytes();
    entry.extend_from_slice(payload);
    Bytes::from(entry)
}

/// `version:payload` → (version, payload).
fn split(entry: &Bytes) -> Option<(i64, Bytes)> {
    let colon = entry.iter().position(|b| *b == b':')?;
    let version = std::str::from_utf8(&entry[..colon]).ok()?.parse().ok()?;
    Some((version, entry.slice(colon + 1..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> CacheConfig {
        CacheConfig::new("test", None)
    }

    #[tokio::test]
    async fn an_older_version_never_replaces_a_newer_one() {
        let cache = Cache::connect(&memory()).await.unwrap();
        cache.store("k", 6, Bytes::from_static(b"new")).await;
        cache.store("k", 5, Bytes::from_static(b"old")).await;
        assert_eq!(cache.get("k").await.as_deref(), Some(&b"new"[..]));
        cache.replace("k", 7, Bytes::from_static(b"newer")).await;
        assert_eq!(cache.get("k").await.as_deref(), Some(&b"newer"[..]));
        cache.invalidate("k").await;
        assert_eq!(cache.get("k").await, None);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load_and_absence_is_cached() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = Cache::connect(&memory()).await.unwrap();
        let loads = Arc::new(AtomicUsize::new(0));
        let gets = (0..100).map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            async move {
                cache
                    .get_or_load::<(), _>("p1", || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(Some((3, Bytes::from_static(b"mug"))))
                    })
                    .await
                    .unwrap()
            }
        });
        for got in futures::future::join_all(gets).await {
            assert_eq!(got.as_deref(), Some(&b"mug"[..]));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);

        for _ in 0..3 {
            let got = cache
                .get_or_load::<(), _>("nope", || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(None)
                })
                .await
                .unwrap();
            assert_eq!(got, None);
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "the absence was loaded once"
        );
        assert_eq!(
            cache.get("nope").await,
            None,
            "a negative entry reads as absent"
        );
        // A write replaces the negative entry.
        cache.replace("nope", 1, Bytes::from_static(b"made")).await;
        assert_eq!(cache.get("nope").await.as_deref(), Some(&b"made"[..]));
    }

    #[tokio::test]
    async fn a_slow_load_never_puts_back_an_older_version_than_a_write() {
        let cache = Cache::connect(&memory()).await.unwrap();
        let (loaded, go) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let reader = {
            let (cache, loaded, go) = (cache.clone(), loaded.clone(), go.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load::<(), _>("p1", || async move {
                        // Read v7 from the database, then stall.
                        loaded.notify_one();
                        go.notified().await;
                        Ok(Some((7, Bytes::from_static(b"old"))))
                    })
                    .await
                    .unwrap()
            })
        };
        loaded.notified().await;
        // A writer commits v8 while the reader holds v7.
        let writer = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.replace("p1", 8, Bytes::from_static(b"new")).await })
        };
        tokio::task::yield_now().await;
        go.notify_one();
        reader.await.unwrap();
        writer.await.unwrap();
        assert_eq!(
            cache.get("p1").await.as_deref(),
            Some(&b"new"[..]),
            "v8 stays"
        );
    }

    #[tokio::test]
    async fn a_batch_loads_only_its_misses_once_in_order() {
        let cache = Cache::connect(&memory()).await.unwrap();
        cache.store("a", 1, Bytes::from_static(b"A")).await;
        let keys: Vec<String> = ["a", "b", "x", "c"].map(String::from).to_vec();
        let got = cache
            .get_many::<(), _>(&keys, |missing| async move {
                assert_eq!(missing, [1, 2, 3]);
                Ok(vec![
                    Some((1, Bytes::from_static(b"B"))),
                    None,
                    Some((1, Bytes::from_static(b"C"))),
                ])
            })
            .await
            .unwrap();
        let got: Vec<Option<&[u8]>> = got.iter().map(|g| g.as_deref()).collect();
        assert_eq!(got, [Some(&b"A"[..]), Some(b"B"), None, Some(b"C")]);
        let again = cache
            .get_many::<(), _>(&keys, |missing| async move {
                panic!("everything is cached, the absence too: {missing:?}")
            })
            .await
            .unwrap();
        assert_eq!(again[2], None);
    }

    #[test]
    fn lifetimes_are_spread_so_a_batch_does_not_expire_at_once() {
        let lifetimes = Lifetimes {
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            jitter: 0.15,
        };
        let entry = join(1, b"x");
        let mut buckets = std::collections::BTreeMap::<u64, usize>::new();
        for _ in 0..1000 {
            let ttl = lifetimes.of(&entry);
            assert!(ttl >= Duration::from_millis(25_500) && ttl <= Duration::from_millis(34_500));
            *buckets.entry(ttl.as_secs()).or_default() += 1;
        }
        let fullest = buckets.values().max().copied().unwrap();
        assert!(
            fullest < 250,
            "one second holds {fullest} of 1000 expiries: {buckets:?}"
        );
        let negative = lifetimes.of(&join(ABSENT, b""));
        assert!(
            negative <= Duration::from_millis(5_750),
            "negative entries live shorter"
        );
    }

    #[test]
    fn entries_split_back_into_version_and_payload() {
        let entry = join(-3, b"a:b");
        assert_eq!(split(&entry), Some((-3, Bytes::from_static(b"a:b"))));
        assert_eq!(split(&Bytes::from_static(b"nonsense")), None);
    }
}
