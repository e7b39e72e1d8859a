//! Rate limiting per client at the edge: a token bucket (GCRA, from the
//! `governor` crate) per key, the verified subject when there is one, the
//! peer address otherwise. Over the limit: 429 with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::StatusCode;

use crate::problem::Problem;

/// Requests per second and burst size of every client.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitConfig {
    /// Sustained requests per second.
    pub per_second: NonZeroU32,
    /// Requests allowed at once from a full bucket.
    pub burst: NonZeroU32,
}

/// The buckets of every client.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>>,
    clock: DefaultClock,
}

impl RateLimit {
    /// Buckets for `config`; forgets idle clients every minute.
    pub fn new(config: RateLimitConfig) -> Self {
        let quota = Quota::per_second(config.per_second).allow_burst(config.burst);
        let limiter = Arc::new(RateLimiter::keyed(quota));
        let weak = Arc::downgrade(&limiter);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    match weak.upgrade() {
                        Some(limiter) => limiter.retain_recent(),
                        None => return,
                    }
                }
            });
        }
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Takes a token from `key`'s bucket, or says when to come back.
    pub fn check(&self, key: &str) -> Result<(), Problem> {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut problem = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    tonic::Code::ResourceExhausted,
                    format!("rate limit exceeded; retry in {seconds} s"),
                );
                problem
                    .headers
                    .push((http::header::RETRY_AFTER, seconds.max(1).to_string()));
                Err(problem)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_over_the_limit_is_refused_per_client() {
        let limit = RateLimit::new(RateLimitConfig {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(3).unwrap(),
        });
        for _ in 0..3 {
            assert!(limit.check("alice").is_ok());
        }
        let refused = limit.check("alice").unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers[0].0, http::header::RETRY_AFTER);
        assert!(
            limit.check("bob").is_ok(),
            "another client has its own bucket"
        );
    }
}
