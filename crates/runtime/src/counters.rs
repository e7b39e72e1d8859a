//! Shared counters with an expiry: Redis when configured (so every replica
//! counts into the same numbers), in-process otherwise.
//!
//! Made for sliding-window limits such as risk control's velocity rules: a
//! caller keeps one counter per time bucket, adds to the current bucket and
//! reads the buckets of the window. Increments are atomic per call (one
//! MULTI in Redis, one lock in-process); an expired counter reads as 0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// Counters could not be read or written (Redis down).
#[derive(Debug, thiserror::Error)]
#[error("counters unavailable: {0}")]
pub struct CounterError(#[from] redis::RedisError);

/// A cheap-to-clone handle to the counters of one namespace.
#[derive(Clone)]
pub struct Counters {
    namespace: String,
    store: Store,
}

#[derive(Clone)]
enum Store {
    Local(Arc<Mutex<HashMap<String, (i64, Instant)>>>),
    Redis(ConnectionManager),
}

/// In-process maps are swept of expired entries when they grow past this.
const SWEEP_AT: usize = 100_000;

impl Counters {
    /// Counters under `namespace`, in Redis at `redis_url` or in-process.
    pub async fn connect(namespace: &str, redis_url: Option<&str>) -> Result<Self, CounterError> {
        let store = match redis_url {
            None => Store::Local(Arc::default()),
            Some(url) => Store::Redis(crate::redis_conn::connect(url).await?),
        };
        Ok(Self {
            namespace: namespace.to_owned(),
            store,
        })
    }

    /// Adds each delta to its counter and (re)sets the counters to expire
    /// after `ttl`.
    pub async fn add(&self, deltas: &[(String, i64)], ttl: Duration) -> Result<(), CounterError> {
        match &self.store {
            Store::Local(map) => {
                let expires = Instant::now() + ttl;
                let mut map = map.lock().expect("counters lock");
                if map.len() > SWEEP_AT {
                    let now = Instant::now();
                    map.retain(|_, (_, expiry)| *expiry > now);
                }
                for (key, delta) in deltas {
                    let entry = map.entry(self.key(key)).or_insert((0, expires));
                    if entry.1 <= Instant::now() {
                        entry.0 = 0;
                    }
                    *entry = (entry.0 + delta, expires);
                }
                Ok(())
            }
            Store::Redis(conn) => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                let ttl_ms = ttl.as_millis().max(1) as i64;
                for (key, delta) in deltas {
                    let key = self.key(key);
                    pipe.incr(&key, *delta).ignore();
                    pipe.pexpire(&key, ttl_ms).ignore();
                }
                let _: () = pipe.query_async(&mut conn.clone()).await?;
                Ok(())
            }
        }
    }

    /// The current values of `keys` (0 when unset or expired), in order.
    pub async fn get(&self, keys: &[String]) -> Result<Vec<i64>, CounterError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match &self.store {
            Store::Local(map) => {
                let map = map.lock().expect("counters lock");
                let now = Instant::now();
                Ok(keys
                    .iter()
                    .map(|key| match map.get(&self.key(key)) {
                        Some((value, expiry)) if *expiry > now => *value,
                        _ => 0,
                    })
                    .collect())
            }
            Store::Redis(conn) => {
                let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
                let values: Vec<Option<i64>> = redis::cmd("MGET")
                    .arg(&full)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(values.into_iter().map(Option::unwrap_or_default).collect())
            }
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_counters_add_up_and_expire() {
        let counters = Counters::connect("t", None).await.unwrap();
        let keys = ["a".to_owned(), "b".to_owned()];
        counters
            .add(&[("a".into(), 2), ("b".into(), 5)], Duration::from_secs(60))
            .await
            .unwrap();
        counters
            .add(&[("a".into(), 3)], Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(counters.get(&keys).await.unwrap(), [5, 5]);
        counters
            .add(&[("c".into(), 1)], Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(counters.get(&["c".to_owned()]).await.unwrap(), [0]);
    }
}
