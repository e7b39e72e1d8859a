//! Timestamps as stored: integer microseconds since the Unix epoch, which both
//! SQLite and PostgreSQL hold in a BIGINT and compare exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a service reads the time of day from: the system clock in
/// production, a clock a test sets and moves in tests. Rules that depend on
/// the hour or the date (risk's night rule, account ages, expiry) must get
/// their "now" from here, so that a test means the same at every hour.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { fixed: None }
    }

    /// A clock that stands at `micros` until [`Clock::set`] or
    /// [`Clock::advance`] moves it; clones share the same time.
    pub fn fixed(micros: i64) -> Self {
        Self {
            fixed: Some(Arc::new(AtomicI64::new(micros))),
        }
    }

    /// Now, in microseconds since the Unix epoch.
    pub fn now_micros(&self) -> i64 {
        match &self.fixed {
            None => now_micros(),
            Some(at) => at.load(Ordering::SeqCst),
        }
    }

    /// Moves a fixed clock to `micros` (no effect on the system clock).
    pub fn set(&self, micros: i64) {
        if let Some(at) = &self.fixed {
            at.store(micros, Ordering::SeqCst);
        }
    }

    /// Moves a fixed clock forward by `micros` (no effect on the system clock).
    pub fn advance(&self, micros: i64) {
        if let Some(at) = &self.fixed {
            at.fetch_add(micros, Ordering::SeqCst);
        }
    }
}

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// A stored timestamp as a protobuf `Timestamp`.
pub fn to_timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// A protobuf `Timestamp` as stored (microseconds, saturating at the ends).
pub fn from_timestamp(at: &prost_types::Timestamp) -> i64 {
    at.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(at.nanos) / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_stands_still_until_moved_and_clones_share_it() {
        let clock = Clock::fixed(1_000);
        let other = clock.clone();
        assert_eq!(clock.now_micros(), 1_000);
        other.advance(500);
        assert_eq!(clock.now_micros(), 1_500);
        clock.set(7);
        assert_eq!(other.now_micros(), 7);
        let system = Clock::system();
        system.set(7);
        assert!(system.now_micros() > 1_700_000_000_000_000);
    }

    #[test]
    fn timestamps_round_trip_and_saturate() {
        for micros in [0, 1_500_000, -1, 1_795_600_800_123_456] {
            assert_eq!(from_timestamp(&to_timestamp(micros)), micros);
        }
        let far = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(from_timestamp(&far), i64::MAX);
    }

    #[test]
    fn converts_micros_to_timestamp_both_sides_of_epoch() {
        assert_eq!(
            to_timestamp(1_500_000),
            prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            to_timestamp(-1),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_999_000
            }
        );
    }
}
