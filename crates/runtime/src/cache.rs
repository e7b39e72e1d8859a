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
use futures::future::BoxFuture;
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
    channel: String,
    ttl: Duration,
    negative_ttl: Duration,
    jitter: f64,
}

/// The longest a Redis call waits, and how long Redis is left alone after
/// it failed.
const REDIS_WAIT: Duration = Duration::from_secs(1);

impl Shared {
    /// The connection, unless Redis failed less than [`REDIS_WAIT`] ago
    /// (a breaker: while Redis is down, reads go straight to the source
    /// instead of each waiting for it).
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
                // Bounded waits: a Redis that stops answering must cost a
                // read a second at most, not hang it (then the breaker
                // below keeps reads off Redis for a while).
                let manager = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_WAIT))
                    .set_response_timeout(Some(REDIS_WAIT))
                    .set_number_of_retries(1)
                    .set_max_delay(REDIS_WAIT);
                let conn = ConnectionManager::new_with_config(client.clone(), manager).await?;
                let channel = format!("{}:invalidate", config.namespace);
                let stop = CancellationToken::new();
                let subscribed =
                    listen_for_invalidations(client, channel.clone(), local.clone(), stop.clone())
                        .await?;
                tokio::spawn(subscribed);
                let shared = Shared {
                    conn,
                    down_until: std::sync::atomic::AtomicU64::new(0),
                    epoch: std::time::Instant::now(),
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
        let entry = self.get_entry(key).await?;
        present(&entry)
    }

    async fn get_entry(&self, key: &str) -> Option<Bytes> {
        if let Some(value) = self.inner.local.get(key).await {
            return Some(value);
        }
        let value = self.get_shared(key).await?;
        self.inner.local.insert(key.to_owned(), value.clone()).await;
        Some(value)
    }

    /// Stores `value`, read at `version`, unless a newer version is cached.
    /// For read-through: call after loading from the source of truth.
    pub async fn store(&self, key: &str, version: i64, value: Bytes) {
        let entry = join(version, &value);
        if self.store_shared(key, version, &entry, false).await == Shared::NEWER {
            // Redis holds a newer version: this one must not be kept anywhere.
            return;
        }
        self.store_local(key, version, entry).await;
    }

    /// Compare-and-set of `entry` in Redis: stored, refused because Redis
    /// holds a newer version, or not stored because Redis failed (or is
    /// not in use).
    /// A reader's store (`for_reader`) skips Redis while it is down; a
    /// writer's always tries, since other replicas depend on it.
    async fn store_shared(&self, key: &str, version: i64, entry: &Bytes, for_reader: bool) -> i64 {
        let Some(shared) = &self.inner.shared else {
            return Shared::FAILED;
        };
        let conn = if for_reader {
            shared.conn()
        } else {
            Some(shared.conn.clone())
        };
        let Some(mut conn) = conn else {
            return Shared::FAILED;
        };
        let stored: Result<i64, _> = STORE_IF_NEWER
            .key(self.shared_key(key))
            .arg(version)
            .arg(entry.as_ref())
            .arg(shared.ttl_secs(entry))
            .invoke_async(&mut conn)
            .await;
        match stored {
            Ok(1) => Shared::STORED,
            Ok(_) => Shared::NEWER,
            Err(error) => {
                tracing::warn!(%error, "cache write failed");
                shared.failed();
                Shared::FAILED
            }
        }
    }

    /// The entry of `key` in Redis; `None` on a miss, a failure, or without
    /// Redis.
    async fn get_shared(&self, key: &str) -> Option<Bytes> {
        let shared = self.inner.shared.as_ref()?;
        let mut conn = shared.conn()?;
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
    /// process wait for one load. `Ok(None)` is a (cached) absence.
    pub async fn get_or_load<E, Fut>(
        &self,
        key: &str,
        load: impl FnOnce() -> Fut,
    ) -> Result<Option<Bytes>, Arc<E>>
    where
        Fut: std::future::Future<Output = Result<Option<(i64, Bytes)>, E>>,
        E: Send + Sync + 'static,
    {
        let entry = self
            .inner
            .local
            .try_get_with(key.to_owned(), async {
                if let Some(entry) = self.get_shared(key).await {
                    return Ok(entry);
                }
                let entry = match load().await? {
                    Some((version, payload)) => join(version, &payload),
                    None => join(ABSENT, b""),
                };
                Ok(self.share_loaded(key, entry).await)
            })
            .await?;
        Ok(present(&entry))
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
        {
            let names: Vec<String> = missing.iter().map(|&i| self.shared_key(&keys[i])).collect();
            let found: Result<Vec<Option<Vec<u8>>>, _> =
                redis::cmd("MGET").arg(&names).query_async(&mut conn).await;
            match found {
                Ok(found) => {
                    for (&i, value) in missing.iter().zip(found) {
                        if let Some(value) = value {
                            let value = Bytes::from(value);
                            self.inner
                                .local
                                .insert(keys[i].clone(), value.clone())
                                .await;
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
        if self.store_shared(key, version, &entry, true).await == Shared::NEWER
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
    /// other replica drop its in-process copy.
    pub async fn replace(&self, key: &str, version: i64, value: Bytes) {
        self.store(key, version, value).await;
        self.broadcast(key).await;
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

    async fn broadcast(&self, key: &str) {
        if let Some(shared) = &self.inner.shared {
            let mut conn = shared.conn.clone();
            let published: Result<(), _> = redis::cmd("PUBLISH")
                .arg(&shared.channel)
                .arg(key)
                .query_async(&mut conn)
                .await;
            if let Err(error) = published {
                tracing::error!(%error, "cache eviction broadcast failed; other replicas stale until TTL");
                shared.failed();
            }
        }
    }

    /// Drops `key` at every level, in every replica.
    pub async fn invalidate(&self, key: &str) {
        if let Some(shared) = &self.inner.shared {
            let mut conn = shared.conn.clone();
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
            if let Err(error) = done {
                // The entry lives on until its TTL; say so loudly.
                tracing::error!(%error, "cache invalidation failed; stale until TTL");
                shared.failed();
            }
        }
        self.inner.local.invalidate(key).await;
    }

    /// A health probe (PING) when Redis is in use.
    pub fn probe(&self) -> Option<Arc<dyn Probe>> {
        self.inner.shared.as_ref().map(|shared| {
            Arc::new(RedisProbe {
                conn: shared.conn.clone(),
            }) as Arc<dyn Probe>
        })
    }

    fn shared_key(&self, key: &str) -> String {
        format!("{}:{key}", self.inner.namespace)
    }
}

/// Subscribes before returning (so no invalidation published after
/// `connect` is missed), then yields the loop that applies them.
async fn listen_for_invalidations(
    client: redis::Client,
    channel: String,
    local: moka::future::Cache<String, Bytes>,
    stop: CancellationToken,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&channel).await?;
    Ok(async move {
        let mut pubsub = Some(pubsub);
        loop {
            let mut current = match pubsub.take() {
                Some(current) => current,
                None => match resubscribe(&client, &channel).await {
                    Ok(current) => current,
                    Err(error) => {
                        tracing::warn!(%error, "cache invalidation channel down; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                },
            };
            {
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
            // Invalidations may have been missed while disconnected.
            local.invalidate_all();
        }
    })
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

impl Shared {
    const STORED: i64 = 1;
    const NEWER: i64 = 0;
    const FAILED: i64 = -1;
}

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

async fn resubscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

struct RedisProbe {
    conn: ConnectionManager,
}

impl Probe for RedisProbe {
    fn name(&self) -> &str {
        "cache"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
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
