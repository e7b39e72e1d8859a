//! The transactional outbox of audit events: written in the same database
//! transaction as the state change they report, into the service's event
//! log (topic `audit`, see [`crate::events`]), which finance.audit consumes.
//! The `outbox` table and its relay are what an earlier release wrote to;
//! the relay still delivers rows left there, then idles.
//!
//! A service [`enqueue`]s an [`Event`] inside the transaction that changes
//! its data, so the event exists if and only if the change committed. The
//! [`Relay`] delivers pending events in order through a [`Sink`] (the audit
//! service, for finance) and marks them delivered once acknowledged; when the
//! receiver is down it waits and tries again, so a receiver that comes back
//! gets every event. Delivery is at least once (a crash between the
//! acknowledgement and the mark resends), so receivers drop duplicates by
//! event id.
//!
//! Each event keeps the `traceparent` of the request that caused it; the
//! relay delivers it inside that trace, so the receiver's work shows up in
//! the same trace as the original request.
//!
//! The table is one of the platform tables that
//! [`crate::db::Database::migrate`] creates after every service's own
//! migrations (`crates/runtime/migrations`); a service does not define it:
//! ```sql
//! CREATE TABLE outbox (
//!     event_id     TEXT PRIMARY KEY,
//!     occurred_at  BIGINT NOT NULL,
//!     actor        TEXT NOT NULL,
//!     action       TEXT NOT NULL,
//!     resource     TEXT NOT NULL,
//!     outcome      TEXT NOT NULL,
//!     attributes   TEXT NOT NULL,
//!     traceparent  TEXT NOT NULL,
//!     delivered_at BIGINT NOT NULL DEFAULT 0
//! );
//! CREATE INDEX outbox_pending ON outbox (delivered_at, occurred_at, event_id);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::{AnyConnection, Row};
use tracing::Instrument;

use crate::db::Database;
use crate::jobs::{Job, Next};
use crate::time::now_micros;
use crate::{caller, propagation};

/// Something that happened, to be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_...`, unique: the receiver's deduplication key.
    pub id: String,
    /// Microseconds since the epoch.
    pub occurred_at: i64,
    /// Who caused it (see [`crate::caller`]).
    pub actor: String,
    /// What happened, e.g. "transfer.posted".
    pub action: String,
    /// What it happened to, e.g. "transfers/trf_...".
    pub resource: String,
    /// How it ended, e.g. "OK" or a refusal's reason.
    pub outcome: String,
    /// Details.
    pub attributes: BTreeMap<String, String>,
    /// The W3C traceparent of the request that caused it (may be empty).
    pub traceparent: String,
}

impl Event {
    /// An event now, by the current caller, in the current trace.
    pub fn new(action: &str, resource: &str, outcome: &str) -> Self {
        Self {
            id: crate::validate::new_id("evt"),
            occurred_at: now_micros(),
            actor: caller::actor(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            outcome: outcome.to_owned(),
            attributes: BTreeMap::new(),
            traceparent: crate::events::current_traceparent(),
        }
    }

    /// Adds a detail.
    pub fn attr(mut self, key: &str, value: impl ToString) -> Self {
        self.attributes.insert(key.to_owned(), value.to_string());
        self
    }

    /// The trace id within `traceparent`, if any.
    pub fn trace_id(&self) -> &str {
        self.traceparent.split('-').nth(1).unwrap_or_default()
    }
}

/// Writes `event` in the caller's transaction: into the service's event
/// log (see [`crate::events`]), topic [`AUDIT_TOPIC`], keyed by its
/// resource, as a `meshwork.finance.audit.v1.AuditEvent` (the source is the
/// producer, which the consumer knows). Wake the [`Outbox`] after the commit.
pub async fn enqueue(tx: &mut AnyConnection, event: &Event) -> Result<(), sqlx::Error> {
    crate::events::write(tx, &log_event(event)).await
}

/// `event` as an entry of the event log.
pub fn log_event(event: &Event) -> crate::events::NewEvent {
    let payload = audit_event("", event);
    crate::events::NewEvent {
        id: event.id.clone(),
        topic: AUDIT_TOPIC.to_owned(),
        key: event.resource.clone(),
        payload: prost_types::Any::from_msg(&payload).expect("encoding into a Vec cannot fail"),
        traceparent: event.traceparent.clone(),
        occurred_at: event.occurred_at,
    }
}

/// The topic audit events are published on.
pub const AUDIT_TOPIC: &str = "audit";

/// What a store holds to report events: after committing a transaction
/// that wrote some, it wakes the event log's sequencer so they go out at
/// once.
#[derive(Clone, Default)]
pub struct Outbox {
    publisher: crate::events::Publisher,
}

impl Outbox {
    /// The outbox whose commits wake `publisher`.
    pub fn new(publisher: crate::events::Publisher) -> Self {
        Self { publisher }
    }

    /// An outbox no sequencer in this process listens to (tests, tools):
    /// events are written and numbered by the next sequencer round.
    pub fn detached() -> Self {
        Self::default()
    }

    /// Tells the sequencer, if any, that events were committed.
    pub fn wake(&self) {
        self.publisher.wake();
    }
}

/// Where events go.
pub trait Sink: Send + Sync + 'static {
    /// Delivers one event; `Ok` once the receiver has it (or had it).
    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), String>>;
}

/// Delivers what an earlier release left in a service's `outbox` table
/// (events are written to the event log now; see [`enqueue`]).
#[derive(Clone)]
pub struct Relay {
    db: Database,
    sink: Arc<dyn Sink>,
}

/// Events read per round.
const BATCH: i64 = 100;
/// The first pause after the receiver failed.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between attempts while the receiver is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often pending events are looked for without a wake-up (events of
/// other replicas, or written before a restart).
const POLL: Duration = Duration::from_secs(1);

impl Relay {
    /// A relay of the outbox in `db` to `sink`.
    pub fn new(db: Database, sink: Arc<dyn Sink>) -> Self {
        Self { db, sink }
    }

    /// Delivers pending events in order until one fails or none is left;
    /// returns how many were delivered.
    pub async fn deliver_pending(&self) -> Result<usize, DeliveryError> {
        let mut delivered = 0;
        loop {
            let events = self.pending().await?;
            if events.is_empty() {
                return Ok(delivered);
            }
            for event in &events {
                self.deliver(event).await.map_err(DeliveryError::Receiver)?;
                sqlx::query("UPDATE outbox SET delivered_at = $1 WHERE event_id = $2")
                    .bind(now_micros())
                    .bind(&event.id)
                    .execute(self.db.pool())
                    .await?;
                delivered += 1;
            }
        }
    }

    /// Delivers one event inside the trace of the request that caused it.
    async fn deliver(&self, event: &Event) -> Result<(), String> {
        let span = tracing::info_span!(
            "outbox.deliver",
            otel.kind = "producer",
            messaging.operation = "publish",
            event.action = %event.action,
        );
        propagation::continue_trace(&span, &event.traceparent);
        self.sink.deliver(event).instrument(span).await
    }

    /// The next pending events. A row that cannot be read as an event
    /// (its attributes are not JSON: written by hand, or damaged) is set
    /// aside with `delivered_at = -1` and logged, so that one bad row can
    /// neither block the events behind it nor take the service down.
    async fn pending(&self) -> Result<Vec<Event>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT event_id, occurred_at, actor, action, resource, outcome, attributes, traceparent \
             FROM outbox WHERE delivered_at = 0 ORDER BY occurred_at, event_id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(self.db.pool())
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("event_id")?;
            let attributes: String = row.try_get("attributes")?;
            let attributes = match serde_json::from_str(&attributes) {
                Ok(attributes) => attributes,
                Err(error) => {
                    tracing::error!(event_id = %id, %error, "outbox row is not a readable event: set aside (delivered_at = -1)");
                    sqlx::query("UPDATE outbox SET delivered_at = -1 WHERE event_id = $1")
                        .bind(&id)
                        .execute(self.db.pool())
                        .await?;
                    continue;
                }
            };
            events.push(Event {
                id,
                occurred_at: row.try_get("occurred_at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                resource: row.try_get("resource")?,
                outcome: row.try_get("outcome")?,
                attributes,
                traceparent: row.try_get("traceparent")?,
            });
        }
        Ok(events)
    }

    /// The relay as a supervised job named `<source>.outbox`: a round
    /// every second, backing off (up to 5 s) while
    /// the receiver fails. A receiver that is down is not a failure of the
    /// job (the service stays SERVING; the events wait); a database that
    /// cannot be read is.
    pub fn job(self, source: &str) -> Job {
        let backoff = Arc::new(std::sync::Mutex::new(MIN_BACKOFF));
        Job::every(format!("{source}.outbox"), POLL, move || {
            let relay = self.clone();
            let backoff = backoff.clone();
            async move {
                match relay.deliver_pending().await {
                    Ok(_) => {
                        *backoff.lock().unwrap_or_else(|e| e.into_inner()) = MIN_BACKOFF;
                        Ok(Next::Interval)
                    }
                    Err(DeliveryError::Storage(error)) => Err(error.into()),
                    Err(DeliveryError::Receiver(error)) => {
                        let mut current = backoff.lock().unwrap_or_else(|e| e.into_inner());
                        let pause = *current;
                        *current = (pause * 2).min(MAX_BACKOFF);
                        tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "outbox delivery failed");
                        Ok(Next::After(pause))
                    }
                }
            }
        })
        .starting_now()
    }
}

/// Why a delivery round stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The outbox table could not be read or marked.
    #[error("outbox table: {0}")]
    Storage(#[from] sqlx::Error),
    /// The receiver refused or did not answer.
    #[error("receiver: {0}")]
    Receiver(String),
}

/// The target the audit events go to.
pub const AUDIT_TARGET: &str = "finance.audit";

/// The audit service (finance.audit) as a sink.
pub fn audit_sink(source: &str, channel: crate::client::MeshChannel) -> Arc<dyn Sink> {
    Arc::new(AuditSink {
        source: source.to_owned(),
        client: audit::audit_service_client::AuditServiceClient::new(channel),
    })
}

use meshwork_proto::meshwork::finance::audit::v1 as audit;

/// `event` as the audit trail's message, from `source`.
fn audit_event(source: &str, event: &Event) -> audit::AuditEvent {
    audit::AuditEvent {
        event_id: event.id.clone(),
        source: source.to_owned(),
        actor: event.actor.clone(),
        action: event.action.clone(),
        resource: event.resource.clone(),
        outcome: event.outcome.clone(),
        attributes: event.attributes.clone().into_iter().collect(),
        occur_time: Some(crate::time::to_timestamp(event.occurred_at)),
        trace_id: event.trace_id().to_owned(),
    }
}

struct AuditSink {
    source: String,
    client: audit::audit_service_client::AuditServiceClient<crate::client::MeshChannel>,
}

impl Sink for AuditSink {
    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let request = audit::RecordEventRequest {
                event: Some(audit_event(&self.source, event)),
            };
            self.client
                .clone()
                .record_event(request)
                .await
                .map(|_| ())
                .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::db::DbConfig;

    struct Recorder(Mutex<Vec<String>>);

    impl Sink for Recorder {
        fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), String>> {
            self.0.lock().unwrap().push(event.id.clone());
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn a_row_that_is_no_event_is_set_aside_and_the_rest_go_out() {
        let dir = std::env::temp_dir().join(format!("meshwork-outbox-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&DbConfig::sqlite_file(&dir.join("o.db")))
            .await
            .unwrap();
        db.migrate(&sqlx::migrate::Migrator::DEFAULT).await.unwrap();
        sqlx::query(
            "INSERT INTO outbox (event_id, occurred_at, actor, action, resource, outcome, attributes, traceparent) \
             VALUES ('evt_good', 1, 'a', 'thing.made', 'things/1', 'OK', '{}', '')",
        )
        .execute(db.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO outbox (event_id, occurred_at, actor, action, resource, outcome, attributes, traceparent) \
             VALUES ('evt_bad', 0, 'a', 'x', 'y', 'OK', 'not json', '')",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let sink = Arc::new(Recorder(Mutex::new(Vec::new())));
        let relay = Relay::new(db.clone(), sink.clone());
        assert_eq!(relay.deliver_pending().await.unwrap(), 1);
        assert_eq!(sink.0.lock().unwrap().as_slice(), ["evt_good".to_owned()]);
        let bad: i64 =
            sqlx::query_scalar("SELECT delivered_at FROM outbox WHERE event_id = 'evt_bad'")
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(bad, -1);
        assert_eq!(relay.deliver_pending().await.unwrap(), 0, "nothing left");
        db.close().await;
    }
}
