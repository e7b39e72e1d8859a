//! Reading what a refusal says, and waiting for what happens in the
//! background, the same way in every service's tests.

use std::future::Future;
use std::time::Duration;

use tonic_types::StatusExt;

/// The `ErrorInfo.reason` of a status ("" when it has none).
pub fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// The fields named by a status's `BadRequest`, in order.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` every 50 ms for up to 10 s; whether it came true. Bounded
/// polling for work done in the background (relays, settlers, exporters),
/// never a timing assertion.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
