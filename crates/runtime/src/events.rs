//! Typed events between services: a per-producer log that consumers pull.
//!
//! **Producing.** A service writes a [`NewEvent`] (topic, key, a protobuf
//! message from its contract as `google.protobuf.Any`, the trace context of
//! the request) into its `event_log` table in the same transaction as the
//! change it reports ([`write`]), so the event exists exactly when the change
//! does. After the commit the store wakes the [`Log`]'s sequencer, a
//! supervised job that numbers committed rows 1, 2, 3... under one row lock:
//! a number is given only to a committed row and only ever grows, so a
//! consumer reading "after N" never skips an event that commits late. Events
//! of one key keep their commit order. Retention deletes events older than
//! the configured age.
//!
//! **Serving.** Every process that runs producers serves
//! `meshwork.platform.events.v1.EventLogService/ReadEvents` on its gRPC port
//! ([`Logs`]): the events of a producer after a sequence, with a long poll.
//!
//! **Consuming.** A [`Subscription`] names a producer, topics and a handler.
//! Work subscriptions ([`Delivery::Work`]) are handled by one replica at a
//! time (a lease in the consumer's own `event_cursors` table); each event's
//! effect commits in the same transaction as the cursor that moves past it,
//! so an effect happens once even though delivery is at least once. A
//! consumer that was down, or deployed later, continues from its cursor (or
//! from the oldest retained event). Broadcast subscriptions
//! ([`Delivery::Broadcast`]) run on every replica with a cursor in memory:
//! each replica sees every retained event (a cache, an index). Lag, handled
//! events and errors are metrics per subscription.
//!
//! Why pull: it needs no broker beyond what the mesh runs (gRPC, the
//! services' own databases), a new consumer needs no change at the producer,
//! and broadcast to every replica falls out of it (a push would have to find
//! each replica).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use futures::future::BoxFuture;
use meshwork_proto::meshwork::platform::events::v1 as pb;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use sqlx::{AnyConnection, Row};
use tokio::sync::{Notify, watch};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::client::MeshChannel;
use crate::db::Database;
use crate::jobs::{Job, Next};

use crate::{BoxError, propagation};

/// Events a read returns at most by default, and at most at all.
const DEFAULT_BATCH: i32 = 100;
const MAX_BATCH: i32 = 1000;
/// The longest long poll.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// How long a consumer waits for new events per read.
const CONSUMER_WAIT: Duration = Duration::from_secs(2);
/// How long a work subscription's lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(10);

/// An event about to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `evt_...`, unique: what consumers deduplicate on.
    pub id: String,
    /// E.g. "audit", "product".
    pub topic: String,
    /// Events of one key stay in commit order.
    pub key: String,
    /// The message.
    pub payload: prost_types::Any,
    /// The W3C traceparent of the request that caused it.
    pub traceparent: String,
    /// Microseconds since the epoch.
    pub occurred_at: i64,
}

impl NewEvent {
    /// `message` on `topic` under `key`, now, in the current trace.
    pub fn new<M: prost::Name>(topic: &str, key: &str, message: &M, occurred_at: i64) -> Self {
        Self {
            id: crate::validate::new_id("evt"),
            topic: topic.to_owned(),
            key: key.to_owned(),
            payload: prost_types::Any::from_msg(message).expect("encoding into a Vec cannot fail"),
            traceparent: current_traceparent(),
            occurred_at,
        }
    }
}

/// The traceparent of the current span (empty without one).
pub fn current_traceparent() -> String {
    let mut headers = http::HeaderMap::new();
    propagation::inject(&tracing::Span::current().context(), &mut headers);
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Writes `event` in the caller's transaction (it is numbered after the
/// commit; wake the [`Publisher`] then).
pub async fn write(tx: &mut AnyConnection, event: &NewEvent) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_log (event_id, sequence, topic, event_key, type_url, payload, traceparent, occurred_at) \
         VALUES ($1, 0, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&event.id)
    .bind(&event.topic)
    .bind(&event.key)
    .bind(&event.payload.type_url)
    .bind(base64::engine::general_purpose::STANDARD.encode(&event.payload.value))
    .bind(&event.traceparent)
    .bind(event.occurred_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What a store holds to tell the sequencer that events were committed.
#[derive(Clone, Default, Debug)]
pub struct Publisher {
    wake: Option<Arc<Notify>>,
}

impl Publisher {
    /// A publisher no sequencer in this process listens to (tools, tests of
    /// a store alone): events are written and numbered by the next one.
    pub fn detached() -> Self {
        Self::default()
    }

    /// Wakes the sequencer.
    pub fn wake(&self) {
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
    }
}

/// One producer's log: its sequencer, retention and reads.
#[derive(Clone)]
pub struct Log {
    db: Database,
    wake: Arc<Notify>,
    head: watch::Sender<i64>,
}

impl Log {
    /// The log in `db` (migrated).
    pub fn new(db: Database) -> Self {
        Self {
            db,
            wake: Arc::new(Notify::new()),
            head: watch::channel(0).0,
        }
    }

    /// The handle stores wake the sequencer with.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            wake: Some(self.wake.clone()),
        }
    }

    /// Numbers the committed events that have no number yet, in the order
    /// they were written; returns how many.
    pub async fn sequence(&self) -> Result<usize, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        // Written first: the row lock (PostgreSQL) or the write lock
        // (SQLite) makes sequencers of several replicas take turns.
        let last: i64 = sqlx::query_scalar(
            "UPDATE event_sequencer SET last = last WHERE id = 1 RETURNING last",
        )
        .fetch_one(&mut *tx)
        .await?;
        let unnumbered: Vec<String> = sqlx::query_scalar(
            "SELECT event_id FROM event_log WHERE sequence = 0 ORDER BY occurred_at, event_id LIMIT 500",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut next = last;
        for id in &unnumbered {
            next += 1;
            sqlx::query("UPDATE event_log SET sequence = $1 WHERE event_id = $2")
                .bind(next)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE event_sequencer SET last = $1 WHERE id = 1")
            .bind(next)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.head.send_replace(next);
        Ok(unnumbered.len())
    }

    /// The sequencer as a supervised job: at once when woken, every second
    /// anyway (events of other replicas, or written before a restart).
    pub fn sequencer_job(&self, producer: &str) -> Job {
        let log = self.clone();
        Job::every(
            format!("{producer}.events.sequencer"),
            Duration::from_secs(1),
            move || {
                let log = log.clone();
                async move {
                    // A full batch: go again at once.
                    match log.sequence().await? {
                        500 => Ok(Next::After(Duration::ZERO)),
                        _ => Ok(Next::Interval),
                    }
                }
            },
        )
        .starting_now()
        .woken_by(self.wake.clone())
    }

    /// Deletes numbered events older than `retention`, every minute: the
    /// oldest part of the log, by sequence (an event that committed late
    /// with an old time is not cut out of the middle).
    pub fn retention_job(&self, producer: &str, retention: Duration) -> Job {
        let db = self.db.clone();
        Job::every(
            format!("{producer}.events.retention"),
            Duration::from_secs(60),
            move || {
                // Operational time, not a business rule: the system clock.
                let (db, cutoff) = (
                    db.clone(),
                    crate::time::now_micros() - retention.as_micros() as i64,
                );
                async move {
                    let deleted = sqlx::query(
                    "DELETE FROM event_log WHERE sequence > 0 AND sequence <= \
                     (SELECT COALESCE(MAX(sequence), 0) FROM event_log WHERE sequence > 0 AND occurred_at < $1)",
                )
                .bind(cutoff)
                .execute(db.pool())
                .await?
                .rows_affected();
                    if deleted > 0 {
                        tracing::info!(deleted, "events past retention deleted");
                    }
                    Ok(Next::Interval)
                }
            },
        )
    }

    /// Events after `after` (of `topics`, or all), at most `max`, waiting up
    /// to `wait` when there is none yet.
    pub async fn read(
        &self,
        topics: &[String],
        after: i64,
        max: i32,
        wait: Duration,
    ) -> Result<pb::ReadEventsResponse, sqlx::Error> {
        let max = if max <= 0 {
            DEFAULT_BATCH
        } else {
            max.min(MAX_BATCH)
        };
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let mut head = self.head.subscribe();
        loop {
            let response = self.read_now(topics, after, max).await?;
            // Rows of other topics count too: the consumer moves past them.
            if response.last_sequence > after || tokio::time::Instant::now() >= deadline {
                return Ok(response);
            }
            // Woken by this process's sequencer, or every 250 ms for those
            // of other replicas.
            tokio::select! {
                _ = head.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    async fn read_now(
        &self,
        topics: &[String],
        after: i64,
        max: i32,
    ) -> Result<pb::ReadEventsResponse, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT sequence, event_id, topic, event_key, type_url, payload, traceparent, occurred_at \
             FROM event_log WHERE sequence > $1 ORDER BY sequence LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(max))
        .fetch_all(self.db.pool())
        .await?;
        let head: i64 = sqlx::query_scalar("SELECT last FROM event_sequencer WHERE id = 1")
            .fetch_one(self.db.pool())
            .await?;
        let first: Option<i64> =
            sqlx::query_scalar("SELECT MIN(sequence) FROM event_log WHERE sequence > 0")
                .fetch_one(self.db.pool())
                .await?;
        let mut last = after;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let sequence: i64 = row.try_get("sequence")?;
            last = last.max(sequence);
            let topic: String = row.try_get("topic")?;
            if !topics.is_empty() && !topics.contains(&topic) {
                continue;
            }
            let payload: String = row.try_get("payload")?;
            let Ok(value) = base64::engine::general_purpose::STANDARD.decode(payload) else {
                // Damaged, not written by us: skipped (and said), so it
                // cannot stop every consumer.
                tracing::error!(sequence, "event log row with an unreadable payload skipped");
                continue;
            };
            events.push(pb::Event {
                sequence,
                event_id: row.try_get("event_id")?,
                topic,
                key: row.try_get("event_key")?,
                payload: Some(prost_types::Any {
                    type_url: row.try_get("type_url")?,
                    value,
                }),
                occur_time: Some(crate::time::to_timestamp(row.try_get("occurred_at")?)),
                traceparent: row.try_get("traceparent")?,
            });
        }
        let first_retained = first.unwrap_or(head + 1);
        Ok(pb::ReadEventsResponse {
            events,
            // Past what retention deleted, so a consumer behind it moves on
            // (once) instead of asking for it again.
            last_sequence: last.max(first_retained - 1),
            head_sequence: head,
            first_retained_sequence: first_retained,
        })
    }
}

/// The event logs a process serves, by producer target: its
/// `EventLogService`.
#[derive(Clone, Default)]
pub struct Logs {
    by_producer: Arc<Mutex<HashMap<String, Log>>>,
}

impl Logs {
    /// Serves `log` as `producer`'s.
    pub fn insert(&self, producer: &str, log: Log) {
        self.by_producer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(producer.to_owned(), log);
    }

    /// Whether any producer runs here.
    pub fn is_empty(&self) -> bool {
        self.by_producer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn get(&self, producer: &str) -> Option<Log> {
        self.by_producer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(producer)
            .cloned()
    }
}

#[tonic::async_trait]
impl pb::event_log_service_server::EventLogService for Logs {
    async fn read_events(
        &self,
        request: tonic::Request<pb::ReadEventsRequest>,
    ) -> Result<tonic::Response<pb::ReadEventsResponse>, tonic::Status> {
        // after_sequence and max_events are never negative: the contract's
        // rules, checked by the codec.
        let request = request.into_inner();
        let log = self.get(&request.producer).ok_or_else(|| {
            crate::errors::not_found("producer", &format!("producers/{}", request.producer))
        })?;
        let wait = request
            .wait
            .map(|w| {
                Duration::from_secs(w.seconds.max(0) as u64)
                    + Duration::from_nanos(w.nanos.max(0) as u64)
            })
            .unwrap_or_default()
            // The caller's deadline bounds the long poll.
            .min(crate::deadline::budget(MAX_WAIT).saturating_sub(Duration::from_millis(100)));
        let response = log
            .read(
                &request.topics,
                request.after_sequence,
                request.max_events,
                wait,
            )
            .await
            .map_err(|e| crate::errors::Common::from(e).status())?;
        Ok(tonic::Response::new(response))
    }
}

/// An event as a consumer gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The producer's target.
    pub producer: String,
    /// Position in the producer's log.
    pub sequence: i64,
    /// Unique.
    pub id: String,
    /// The topic.
    pub topic: String,
    /// The key.
    pub key: String,
    /// The message.
    pub payload: prost_types::Any,
    /// Microseconds since the epoch.
    pub occurred_at: i64,
    /// Of the request that caused it.
    pub traceparent: String,
}

impl Received {
    /// The payload as `M`; an error when it is another message.
    pub fn decode<M: prost::Name + Default>(&self) -> Result<M, prost::DecodeError> {
        self.payload.to_msg()
    }
}

/// What a handler returns for an event it can never apply (its payload is
/// not the message it expects, its rules refuse it): the event is set aside
/// in `event_dead_letters` with the cursor move, counted `rejected`, and the
/// subscription goes on. Any other error is taken as passing: the round
/// fails and the event comes again.
#[derive(Debug, thiserror::Error)]
#[error("event rejected: {0}")]
pub struct Rejected(pub String);

/// A work subscription's handler: applies one event inside the transaction
/// that also moves the cursor past it.
pub trait Handler: Send + Sync + 'static {
    /// Applies `event` in `tx`; an error rolls back both effect and cursor
    /// (the event comes again).
    fn handle<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        event: &'a Received,
    ) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// A broadcast subscription's handler (no transaction: its effect is local
/// to the replica, e.g. an in-memory index).
pub trait BroadcastHandler: Send + Sync + 'static {
    /// Applies `event`.
    fn handle<'a>(&'a self, event: &'a Received) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// How a subscription is delivered.
#[derive(Clone)]
pub enum Delivery {
    /// One replica at a time, effects exactly once (cursor in the
    /// consumer's database, committed with the effect).
    Work(Arc<dyn Handler>),
    /// Every replica, cursor in memory (from the oldest retained event at
    /// each start).
    Broadcast(Arc<dyn BroadcastHandler>),
}

/// What a consumer reads.
#[derive(Clone)]
pub struct Subscription {
    /// Unique in the consumer, e.g. "finance.audit<-finance.account".
    pub name: String,
    /// The producing target.
    pub producer: String,
    /// Only these topics; empty for all.
    pub topics: Vec<String>,
    /// The handler and how it is delivered.
    pub delivery: Delivery,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    subscription: String,
    outcome: &'static str,
}

struct ConsumerMetrics {
    lag: Family<SubscriptionLabels, Gauge>,
    handled: Family<OutcomeLabels, Counter>,
}

fn consumer_metrics() -> &'static ConsumerMetrics {
    static METRICS: OnceLock<ConsumerMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = ConsumerMetrics {
            lag: Family::default(),
            handled: Family::default(),
        };
        crate::metrics::with_registry(|registry| {
            registry.register(
                "event_consumer_lag",
                "Events of the producer's log the subscription has not handled yet",
                metrics.lag.clone(),
            );
            registry.register(
                "event_deliveries",
                "Events delivered to a subscription, by outcome (ok, error, unreachable, lost)",
                metrics.handled.clone(),
            );
        });
        metrics
    })
}

/// How many deliveries of `subscription` ended with `outcome`.
pub fn delivery_count(subscription: &str, outcome: &'static str) -> u64 {
    consumer_metrics()
        .handled
        .get_or_create(&OutcomeLabels {
            subscription: subscription.to_owned(),
            outcome,
        })
        .get()
}

fn count(subscription: &str, outcome: &'static str, n: u64) {
    consumer_metrics()
        .handled
        .get_or_create(&OutcomeLabels {
            subscription: subscription.to_owned(),
            outcome,
        })
        .inc_by(n);
}

fn set_lag(subscription: &str, lag: i64) {
    consumer_metrics()
        .lag
        .get_or_create(&SubscriptionLabels {
            subscription: subscription.to_owned(),
        })
        .set(lag.max(0));
}

/// A subscription's consumer: reads the producer's log through `channel`
/// and applies what it reads. `db` is the consumer's own database (its
/// cursor, for work subscriptions).
pub fn consumer_job(subscription: Subscription, channel: MeshChannel, db: Database) -> Job {
    let _ = consumer_metrics();
    let name = subscription.name.clone();
    let owner = crate::validate::new_id("replica");
    let position = Arc::new(AtomicI64::new(0));
    let backoff = Arc::new(Mutex::new(Duration::from_millis(100)));
    let consumer = Arc::new(Consumer {
        subscription,
        client: pb::event_log_service_client::EventLogServiceClient::new(channel),
        db,
        owner,
        position,
        backoff,
    });
    Job::every(
        format!("{name}.consumer"),
        Duration::from_millis(10),
        move || {
            let consumer = consumer.clone();
            async move { consumer.round().await }
        },
    )
    .starting_now()
}

/// What became of one event.
enum Applied {
    /// Its effect committed.
    Done,
    /// Rejected by the handler and set aside.
    SetAside,
    /// Another replica holds the subscription now.
    NotOurs,
}

struct Consumer {
    subscription: Subscription,
    client: pb::event_log_service_client::EventLogServiceClient<MeshChannel>,
    db: Database,
    owner: String,
    /// The broadcast cursor (work cursors live in the database).
    position: Arc<AtomicI64>,
    backoff: Arc<Mutex<Duration>>,
}

impl Consumer {
    async fn round(&self) -> Result<Next, BoxError> {
        let after = match &self.subscription.delivery {
            Delivery::Work(_) => match self.lease().await? {
                Some(position) => position,
                // Another replica works it: look again before its lease ends.
                None => return Ok(Next::After(LEASE / 2)),
            },
            Delivery::Broadcast(_) => self.position.load(Ordering::SeqCst),
        };
        let name = &self.subscription.name;
        let request = pb::ReadEventsRequest {
            producer: self.subscription.producer.clone(),
            topics: self.subscription.topics.clone(),
            after_sequence: after,
            max_events: DEFAULT_BATCH,
            wait: Some(prost_types::Duration {
                seconds: CONSUMER_WAIT.as_secs() as i64,
                nanos: 0,
            }),
        };
        let read = match self.client.clone().read_events(request).await {
            Ok(read) => read.into_inner(),
            // Anything but "away" is a fault to see (a producer that does
            // not serve that log, a refused request): the job fails.
            Err(status)
                if !matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled
                ) =>
            {
                count(name, "error", 1);
                return Err(format!(
                    "reading {}'s event log: {:?}: {}",
                    self.subscription.producer,
                    status.code(),
                    status.message()
                )
                .into());
            }
            Err(status) => {
                // The producer is away: not this consumer's failure (it
                // stays SERVING); its events wait in the producer's log.
                count(name, "unreachable", 1);
                let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
                let pause = *backoff;
                *backoff = (pause * 2).min(Duration::from_secs(5));
                tracing::warn!(subscription = %name, code = ?status.code(), message = status.message(), retry_in_ms = pause.as_millis() as u64, "event log unreachable");
                return Ok(Next::After(pause));
            }
        };
        *self.backoff.lock().unwrap_or_else(|e| e.into_inner()) = Duration::from_millis(100);
        // A consumer that had read something and finds it deleted lost
        // events; one that starts (after 0) takes what is retained.
        if after > 0 && read.first_retained_sequence > after + 1 {
            let lost = read.first_retained_sequence - after - 1;
            count(name, "lost", lost as u64);
            tracing::error!(subscription = %name, after, first_retained = read.first_retained_sequence, "events were deleted by retention before this consumer read them");
        }
        let mut position = after;
        for event in &read.events {
            let received = Received {
                producer: self.subscription.producer.clone(),
                sequence: event.sequence,
                id: event.event_id.clone(),
                topic: event.topic.clone(),
                key: event.key.clone(),
                payload: event.payload.clone().unwrap_or_default(),
                occurred_at: event
                    .occur_time
                    .as_ref()
                    .map(crate::time::from_timestamp)
                    .unwrap_or_default(),
                traceparent: event.traceparent.clone(),
            };
            let applied = self
                .apply(position, &received)
                .instrument(consume_span(name, &received))
                .await;
            match applied {
                Ok(Applied::Done) => {
                    count(name, "ok", 1);
                    position = received.sequence;
                }
                Ok(Applied::SetAside) => {
                    count(name, "rejected", 1);
                    position = received.sequence;
                }
                // The lease moved to another replica meanwhile.
                Ok(Applied::NotOurs) => return Ok(Next::Interval),
                Err(error) => {
                    count(name, "error", 1);
                    set_lag(name, read.head_sequence - position);
                    return Err(error);
                }
            }
        }
        // Past events of other topics too.
        if read.last_sequence > position && self.advance(position, read.last_sequence).await? {
            position = read.last_sequence;
        }
        set_lag(name, read.head_sequence - position);
        Ok(Next::After(Duration::ZERO))
    }

    /// Takes or renews the work lease; the cursor when this replica holds it.
    async fn lease(&self) -> Result<Option<i64>, sqlx::Error> {
        // Leases are operational time: the system clock.
        let now = crate::time::now_micros();
        let name = &self.subscription.name;
        sqlx::query(
            "INSERT INTO event_cursors (subscription, producer, position, owner, lease_until) \
             VALUES ($1, $2, 0, '', 0) ON CONFLICT (subscription) DO NOTHING",
        )
        .bind(name)
        .bind(&self.subscription.producer)
        .execute(self.db.pool())
        .await?;
        sqlx::query_scalar(
            "UPDATE event_cursors SET owner = $1, lease_until = $2 \
             WHERE subscription = $3 AND (owner = $1 OR lease_until < $4) RETURNING position",
        )
        .bind(&self.owner)
        .bind(now + LEASE.as_micros() as i64)
        .bind(name)
        .bind(now)
        .fetch_optional(self.db.pool())
        .await
    }

    /// Applies one event.
    async fn apply(&self, position: i64, event: &Received) -> Result<Applied, BoxError> {
        let name = &self.subscription.name;
        match &self.subscription.delivery {
            Delivery::Broadcast(handler) => {
                let outcome = match handler.handle(event).await {
                    Ok(()) => Applied::Done,
                    Err(error) if error.is::<Rejected>() => {
                        tracing::error!(subscription = %name, event = %event.id, %error, "event set aside");
                        Applied::SetAside
                    }
                    Err(error) => return Err(error),
                };
                self.position.store(event.sequence, Ordering::SeqCst);
                Ok(outcome)
            }
            Delivery::Work(handler) => {
                let mut tx = self.db.pool().begin().await?;
                // The cursor first: a write (SQLite queues writers), and the
                // guard that this replica still holds the subscription here.
                if !move_cursor(&mut tx, name, &self.owner, position, event.sequence).await? {
                    return Ok(Applied::NotOurs);
                }
                match handler.handle(&mut tx, event).await {
                    Ok(()) => {
                        tx.commit().await?;
                        Ok(Applied::Done)
                    }
                    Err(error) if error.is::<Rejected>() => {
                        // Nothing of the handler's work stays; the cursor
                        // moves and the event is set aside, together.
                        drop(tx);
                        let mut tx = self.db.pool().begin().await?;
                        if !move_cursor(&mut tx, name, &self.owner, position, event.sequence)
                            .await?
                        {
                            return Ok(Applied::NotOurs);
                        }
                        sqlx::query(
                            "INSERT INTO event_dead_letters (subscription, event_id, sequence, reason, set_aside_at) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subscription, event_id) DO NOTHING",
                        )
                        .bind(name)
                        .bind(&event.id)
                        .bind(event.sequence)
                        .bind(error.to_string())
                        .bind(crate::time::now_micros())
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        tracing::error!(subscription = %name, event = %event.id, %error, "event set aside in event_dead_letters");
                        Ok(Applied::SetAside)
                    }
                    Err(error) => Err(error),
                }
            }
        }
    }

    /// Moves the cursor past events of other topics.
    async fn advance(&self, from: i64, to: i64) -> Result<bool, BoxError> {
        match &self.subscription.delivery {
            Delivery::Broadcast(_) => {
                self.position.store(to, Ordering::SeqCst);
                Ok(true)
            }
            Delivery::Work(_) => {
                let mut conn = self.db.pool().acquire().await?;
                Ok(move_cursor(&mut conn, &self.subscription.name, &self.owner, from, to).await?)
            }
        }
    }
}

async fn move_cursor(
    conn: &mut AnyConnection,
    subscription: &str,
    owner: &str,
    from: i64,
    to: i64,
) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE event_cursors SET position = $1 WHERE subscription = $2 AND owner = $3 AND position = $4",
    )
    .bind(to)
    .bind(subscription)
    .bind(owner)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// The span of handling one event, inside the trace that caused it.
fn consume_span(subscription: &str, event: &Received) -> tracing::Span {
    let span = tracing::info_span!(
        "event.consume",
        otel.kind = "consumer",
        messaging.system = "meshwork",
        messaging.operation = "process",
        messaging.destination.name = %event.topic,
        messaging.message.id = %event.id,
        messaging.consumer.group.name = %subscription,
        event.producer = %event.producer,
        event.sequence = event.sequence,
    );
    propagation::continue_trace(&span, &event.traceparent);
    span
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::db::DbConfig;
    use crate::jobs::Jobs;
    use crate::shutdown::Shutdown;

    async fn sqlite(name: &str) -> Database {
        let dir = std::env::temp_dir().join(format!("meshwork-events-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&DbConfig::sqlite_file(&dir.join(format!("{name}.db"))))
            .await
            .unwrap();
        db.migrate(&sqlx::migrate::Migrator::DEFAULT).await.unwrap();
        db
    }

    /// A producer's log served on port 0, as a node serves it.
    async fn serve(log: &Log) -> MeshChannel {
        let logs = Logs::default();
        logs.insert("test.producer", log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::event_log_service_server::EventLogServiceServer::new(
                    logs,
                ))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        crate::client::channel(&url, crate::client::ClientPolicy::default()).unwrap()
    }

    /// Publishes `(key, n)` pairs, one transaction each, and numbers them.
    async fn publish(log: &Log, db: &Database, events: &[(&str, i64)]) {
        for (key, n) in events {
            let mut tx = db.pool().begin().await.unwrap();
            let message = prost_types::Duration {
                seconds: *n,
                nanos: 0,
            };
            write(&mut tx, &NewEvent::new("numbers", key, &message, *n))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        log.sequence().await.unwrap();
    }

    /// Records each event in the consumer's table, in the consumer's
    /// transaction (a duplicate would break the primary key).
    struct Record;

    impl Handler for Record {
        fn handle<'a>(
            &'a self,
            tx: &'a mut AnyConnection,
            event: &'a Received,
        ) -> BoxFuture<'a, Result<(), BoxError>> {
            Box::pin(async move {
                let n = event.decode::<prost_types::Duration>()?.seconds;
                if event.key == "poison" {
                    return Err(Rejected(format!("{n} is no number we take")).into());
                }
                sqlx::query("INSERT INTO handled (event_id, event_key, n, sequence) VALUES ($1, $2, $3, $4)")
                    .bind(&event.id)
                    .bind(&event.key)
                    .bind(n)
                    .bind(event.sequence)
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            })
        }
    }

    struct Collect(Mutex<Vec<i64>>);

    impl BroadcastHandler for Collect {
        fn handle<'a>(&'a self, event: &'a Received) -> BoxFuture<'a, Result<(), BoxError>> {
            self.0
                .lock()
                .unwrap()
                .push(event.decode::<prost_types::Duration>().unwrap().seconds);
            Box::pin(async { Ok(()) })
        }
    }

    async fn until(mut check: impl AsyncFnMut() -> bool) -> bool {
        for _ in 0..500 {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// A consumer's database with the table [`Record`] writes.
    async fn consumer_db() -> Database {
        let consumer = sqlite("consumer").await;
        sqlx::query(
            "CREATE TABLE handled (event_id TEXT PRIMARY KEY, event_key TEXT, n BIGINT, sequence BIGINT)",
        )
        .execute(consumer.pool())
        .await
        .unwrap();
        consumer
    }

    async fn handled(db: &Database) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT event_key, n FROM handled ORDER BY sequence")
            .fetch_all(db.pool())
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_consumers_apply_each_event_once_in_key_order_and_catch_up() {
        let producer = sqlite("producer").await;
        let log = Log::new(producer.clone());
        let channel = serve(&log).await;
        // Written before any consumer exists.
        publish(&log, &producer, &[("a", 1), ("b", 2), ("a", 3)]).await;

        let consumer = consumer_db().await;
        let shutdown = Shutdown::new();
        let mut jobs = Jobs::new(shutdown.clone());
        jobs.start();
        let subscription = Subscription {
            name: "test.work".into(),
            producer: "test.producer".into(),
            topics: vec!["numbers".into()],
            delivery: Delivery::Work(Arc::new(Record)),
        };
        // Two replicas of the consumer over one database: one holds the lease.
        for _ in 0..2 {
            jobs.spawn(consumer_job(
                subscription.clone(),
                channel.clone(),
                consumer.clone(),
            ));
        }
        assert!(
            until(async || handled(&consumer).await.len() == 3).await,
            "{:?}",
            handled(&consumer).await
        );
        publish(&log, &producer, &[("b", 4), ("a", 5)]).await;
        assert!(until(async || handled(&consumer).await.len() == 5).await);
        let seen = handled(&consumer).await;
        let mut by_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (key, n) in seen {
            by_key.entry(key).or_default().push(n);
        }
        assert_eq!(by_key["a"], [1, 3, 5]);
        assert_eq!(by_key["b"], [2, 4]);
        assert_eq!(
            delivery_count("test.work", "ok"),
            5,
            "each event once, by one replica"
        );
        let cursor: i64 = sqlx::query_scalar(
            "SELECT position FROM event_cursors WHERE subscription = 'test.work'",
        )
        .fetch_one(consumer.pool())
        .await
        .unwrap();
        assert_eq!(cursor, 5);
        assert!(
            crate::metrics::encode()
                .contains("meshwork_event_consumer_lag{subscription=\"test.work\"} 0")
        );
        shutdown.cancel();
        jobs.wait().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_the_handler_rejects_is_set_aside_and_the_rest_go_on() {
        let producer = sqlite("producer").await;
        let log = Log::new(producer.clone());
        let channel = serve(&log).await;
        publish(&log, &producer, &[("a", 1), ("poison", 2), ("a", 3)]).await;
        let consumer = consumer_db().await;
        let shutdown = Shutdown::new();
        let mut jobs = Jobs::new(shutdown.clone());
        jobs.start();
        let subscription = Subscription {
            name: "test.poison".into(),
            producer: "test.producer".into(),
            topics: Vec::new(),
            delivery: Delivery::Work(Arc::new(Record)),
        };
        jobs.spawn(consumer_job(subscription, channel, consumer.clone()));
        assert!(until(async || handled(&consumer).await.len() == 2).await);
        assert_eq!(
            handled(&consumer).await,
            [("a".to_owned(), 1), ("a".to_owned(), 3)]
        );
        let set_aside: (String, i64) = sqlx::query_as(
            "SELECT reason, sequence FROM event_dead_letters WHERE subscription = 'test.poison'",
        )
        .fetch_one(consumer.pool())
        .await
        .unwrap();
        assert_eq!(
            set_aside,
            ("event rejected: 2 is no number we take".to_owned(), 2)
        );
        assert_eq!(delivery_count("test.poison", "rejected"), 1);
        shutdown.cancel();
        jobs.wait().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broadcast_consumers_each_see_every_event_and_other_topics_are_skipped() {
        let producer = sqlite("producer").await;
        let log = Log::new(producer.clone());
        let channel = serve(&log).await;
        publish(&log, &producer, &[("a", 1), ("a", 2)]).await;
        let mut tx = producer.pool().begin().await.unwrap();
        let other = NewEvent::new("other", "x", &prost_types::Duration::default(), 3);
        write(&mut tx, &other).await.unwrap();
        tx.commit().await.unwrap();
        log.sequence().await.unwrap();
        publish(&log, &producer, &[("a", 4)]).await;

        let shutdown = Shutdown::new();
        let mut jobs = Jobs::new(shutdown.clone());
        jobs.start();
        let replicas: Vec<Arc<Collect>> = (0..2)
            .map(|_| Arc::new(Collect(Mutex::new(Vec::new()))))
            .collect();
        for (i, replica) in replicas.iter().enumerate() {
            let subscription = Subscription {
                name: format!("test.broadcast.{i}"),
                producer: "test.producer".into(),
                topics: vec!["numbers".into()],
                delivery: Delivery::Broadcast(replica.clone()),
            };
            jobs.spawn(consumer_job(
                subscription,
                channel.clone(),
                sqlite("replica").await,
            ));
        }
        for replica in &replicas {
            assert!(until(async || replica.0.lock().unwrap().len() == 3).await);
            assert_eq!(
                *replica.0.lock().unwrap(),
                [1, 2, 4],
                "in order, without the other topic"
            );
        }
        shutdown.cancel();
        jobs.wait().await;
    }

    #[tokio::test]
    async fn events_get_numbers_only_once_committed_and_in_write_order() {
        let producer = sqlite("producer").await;
        let log = Log::new(producer.clone());
        publish(&log, &producer, &[("a", 1)]).await;
        // Uncommitted: not numbered, not readable.
        let mut open = producer.pool().begin().await.unwrap();
        write(
            &mut open,
            &NewEvent::new(
                "numbers",
                "a",
                &prost_types::Duration {
                    seconds: 2,
                    nanos: 0,
                },
                2,
            ),
        )
        .await
        .unwrap();
        let read = log.read(&[], 0, 10, Duration::ZERO).await.unwrap();
        assert_eq!(read.events.len(), 1);
        assert_eq!(
            (
                read.head_sequence,
                read.last_sequence,
                read.first_retained_sequence
            ),
            (1, 1, 1)
        );
        open.commit().await.unwrap();
        assert_eq!(log.sequence().await.unwrap(), 1);
        let read = log.read(&[], 1, 10, Duration::ZERO).await.unwrap();
        assert_eq!(
            read.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [2]
        );
        // Retention of nothing: every numbered event goes.
        let shutdown = Shutdown::new();
        let mut jobs = Jobs::new(shutdown.clone());
        jobs.start();
        jobs.spawn(log.retention_job("test", Duration::ZERO).starting_now());
        assert!(
            until(async || log
                .read(&[], 0, 10, Duration::ZERO)
                .await
                .unwrap()
                .events
                .is_empty())
            .await
        );
        let read = log.read(&[], 0, 10, Duration::ZERO).await.unwrap();
        assert_eq!(
            read.first_retained_sequence, 3,
            "a consumer at 1 can tell it lost one"
        );
        let behind = log.read(&[], 1, 10, Duration::ZERO).await.unwrap();
        assert_eq!(behind.last_sequence, 2, "and moves past what was deleted");
        shutdown.cancel();
        jobs.wait().await;
    }
}
