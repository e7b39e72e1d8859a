//! The caller's deadline, carried across hops.
//!
//! The server layer turns an incoming `grpc-timeout` into a deadline that
//! lives in a task-local for the duration of the call; the client layer sends
//! `grpc-timeout` no longer than what is left of it. tonic's
//! `Endpoint::timeout` alone does not send the header, so the server on the
//! other side would not know when to give up.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Option<Instant>;
}

/// Runs `fut` with `deadline` as the current call's deadline.
pub async fn scope<F: Future>(deadline: Option<Instant>, fut: F) -> F::Output {
    DEADLINE.scope(deadline, fut).await
}

/// The current call's deadline, if the caller set one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok().flatten()
}

/// The time budget for an outgoing call: `default`, shortened to what is left
/// of the current call's deadline.
pub fn budget(default: Duration) -> Duration {
    match current() {
        Some(deadline) => default.min(deadline.saturating_duration_since(Instant::now())),
        None => default,
    }
}

/// Parses a `grpc-timeout` header value ("100m", "5S", "2500000u").
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Formats a duration as a `grpc-timeout` value: at most 8 digits, in the
/// finest unit that fits, rounding up so the budget is never cut.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, &str); 6] = [
        (1, "n"),
        (1_000, "u"),
        (1_000_000, "m"),
        (1_000_000_000, "S"),
        (60_000_000_000, "M"),
        (3_600_000_000_000, "H"),
    ];
    for (size, unit) in units {
        let amount = nanos.div_ceil(size);
        if amount <= MAX {
            return format!("{amount}{unit}");
        }
    }
    format!("{MAX}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_garbage() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "10", "10x", "-1S", "123456789S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_in_the_finest_unit_that_fits_and_round_trips() {
        assert_eq!(format_grpc_timeout(Duration::from_nanos(1500)), "1500n");
        assert_eq!(format_grpc_timeout(Duration::from_secs(30)), "30000000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(3600)), "3600000m");
        for d in [
            Duration::from_millis(1),
            Duration::from_secs(59),
            Duration::from_secs(86_400),
        ] {
            let back = parse_grpc_timeout(&format_grpc_timeout(d)).unwrap();
            assert!(
                back >= d && back - d < Duration::from_millis(1) + d / 1000,
                "{d:?} -> {back:?}"
            );
        }
    }

    #[tokio::test]
    async fn budget_is_cut_to_the_callers_deadline() {
        assert_eq!(budget(Duration::from_secs(5)), Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_millis(200);
        let inside = scope(Some(deadline), async { budget(Duration::from_secs(5)) }).await;
        assert!(inside <= Duration::from_millis(200));
        let no_deadline = scope(None, async { budget(Duration::from_secs(5)) }).await;
        assert_eq!(no_deadline, Duration::from_secs(5));
    }
}
