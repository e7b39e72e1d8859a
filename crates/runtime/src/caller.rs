//! Who a call is for: the subject the REST edge verified (sent as
//! `x-meshwork-subject` metadata), carried across hops like the deadline.
//!
//! The server layer reads it into a task-local for the duration of a call;
//! the client layer passes it on, so the audit trail of a transfer names the
//! person who asked for it, not the service that happened to write. Inside
//! the mesh the header is trusted (the edge strips it from outside requests;
//! a mesh's mTLS policy keeps anything else from calling services directly).

use std::future::Future;

/// The metadata key.
pub const SUBJECT_HEADER: &str = "x-meshwork-subject";

/// Longest subject kept; longer ones are cut.
const MAX_SUBJECT_LEN: usize = 256;

tokio::task_local! {
    static SUBJECT: Option<String>;
}

/// Runs `fut` on behalf of `subject`.
pub async fn scope<F: Future>(subject: Option<String>, fut: F) -> F::Output {
    SUBJECT.scope(subject, fut).await
}

/// The current call's subject, if one was given.
pub fn subject() -> Option<String> {
    SUBJECT.try_with(Clone::clone).ok().flatten()
}

/// The current subject, or "anonymous".
pub fn actor() -> String {
    subject().unwrap_or_else(|| "anonymous".to_owned())
}

/// The subject in `headers`, if any (printable ASCII, cut to a sane length).
pub fn from_headers(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(SUBJECT_HEADER)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.chars().take(MAX_SUBJECT_LEN).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_subject_lives_for_its_scope() {
        assert_eq!(actor(), "anonymous");
        let inside = scope(Some("alice".into()), async { actor() }).await;
        assert_eq!(inside, "alice");
        let mut headers = http::HeaderMap::new();
        headers.insert(SUBJECT_HEADER, "  bob ".parse().unwrap());
        assert_eq!(from_headers(&headers).as_deref(), Some("bob"));
    }
}
