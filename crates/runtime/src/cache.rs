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
        }
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
    channel: String,
    ttl_secs: u64,
}

impl Cache {
    /// Builds the cache; with Redis, connects and starts listening for
    /// invalidations from other replicas.
    pub async fn connect(config: &CacheConfig) -> Result<Self, redis::RedisError> {
        let local = moka::future::Cache::builder()
            .max_capacity(config.local_capacity)
            .time_to_live(config.local_ttl)
            .build();
        let (shared, stop) = match &config.redis_url {
            None => (None, None),
            Some(url) => {
                let client = redis::Client::open(url.as_str())?;
                let conn = ConnectionManager::new(client.clone()).await?;
                let channel = format!("{}:invalidate", config.namespace);
                let stop = CancellationToken::new();
                let subscribed =
                    listen_for_invalidations(client, channel.clone(), local.clone(), stop.clone())
                        .await?;
                tokio::spawn(subscribed);
                let shared = Shared {
                    conn,
                    channel,
                    ttl_secs: config.shared_ttl.as_secs().max(1),
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
        split(&entry).map(|(_, payload)| payload)
    }

    async fn get_entry(&self, key: &str) -> Option<Bytes> {
        if let Some(value) = self.inner.local.get(key).await {
            return Some(value);
        }
        let shared = self.inner.shared.as_ref()?;
        let mut conn = shared.conn.clone();
        let found: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
            .arg(self.shared_key(key))
            .query_async(&mut conn)
            .await;
        match found {
            Ok(Some(value)) => {
                let value = Bytes::from(value);
                self.inner.local.insert(key.to_owned(), value.clone()).await;
                Some(value)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "cache read failed; reading through");
                None
            }
        }
    }

    /// Stores `value`, read at `version`, unless a newer version is cached.
    /// For read-through: call after loading from the source of truth.
    pub async fn store(&self, key: &str, version: i64, value: Bytes) {
        let entry = join(version, &value);
        if let Some(shared) = &self.inner.shared {
            let mut conn = shared.conn.clone();
            let stored: Result<i64, _> = STORE_IF_NEWER
                .key(self.shared_key(key))
                .arg(version)
                .arg(entry.as_ref())
                .arg(shared.ttl_secs)
                .invoke_async(&mut conn)
                .await;
            match stored {
                Ok(1) => {}
                // Redis holds a newer version: this one must not be kept anywhere.
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, "cache write failed");
                    return;
                }
            }
        }
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

    #[test]
    fn entries_split_back_into_version_and_payload() {
        let entry = join(-3, b"a:b");
        assert_eq!(split(&entry), Some((-3, Bytes::from_static(b"a:b"))));
        assert_eq!(split(&Bytes::from_static(b"nonsense")), None);
    }
}
