//! Connections to Redis, made one way for every user of it (the cache, the
//! shared counters, services that keep data in Redis): a multiplexed,
//! reconnecting connection whose calls wait a bounded time, and the health
//! probe that PINGs it.
//!
//! Bounded waits matter more than they seem: without them a Redis that
//! stops answering (a partition, a paused server) hangs every call that
//! touches it, instead of failing it in a second so that the caller can
//! degrade or answer UNAVAILABLE.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::ConnectionManager;

use crate::health::Probe;

/// The longest a Redis call (or a connection attempt) waits.
pub const REDIS_WAIT: Duration = Duration::from_secs(1);

/// A connection to the Redis at `url`, with bounded waits.
pub async fn connect(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    connect_client(redis::Client::open(url)?).await
}

/// The same, from a client (the cache also subscribes with it).
pub async fn connect_client(client: redis::Client) -> Result<ConnectionManager, redis::RedisError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_WAIT))
        .set_response_timeout(Some(REDIS_WAIT))
        .set_number_of_retries(1)
        .set_max_delay(REDIS_WAIT);
    ConnectionManager::new_with_config(client, config).await
}

/// A health probe named `name` that PINGs `conn`.
pub fn probe(name: &'static str, conn: ConnectionManager) -> Arc<dyn Probe> {
    Arc::new(RedisProbe { name, conn })
}

struct RedisProbe {
    name: &'static str,
    conn: ConnectionManager,
}

impl Probe for RedisProbe {
    fn name(&self) -> &str {
        self.name
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut self.conn.clone())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}
