//! The `events` rows: delivery through the event log, from the producer's
//! commit to the consumer's committed effect. Writers publish one event per
//! transaction for the row's duration; a work subscription applies each in
//! its own transaction with its cursor (as the audit trail does). Reported:
//! events/s delivered (from the first write until the consumer has the
//! last) and the commit-to-effect latency of each event.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshwork_proto::meshwork::platform::events::v1 as pb;
use meshwork_runtime::BoxError;
use meshwork_runtime::db::Database;
use meshwork_runtime::events::{
    self, Delivery, Handler, Log, Logs, NewEvent, Received, Subscription,
};
use meshwork_runtime::jobs::Jobs;
use meshwork_runtime::service::BoxFuture;
use meshwork_runtime::shutdown::Shutdown;
use meshwork_runtime::time::now_micros;
use meshwork_testkit::Backend;
use sqlx::AnyConnection;

use crate::Measured;

/// Notes when each event's effect committed.
struct Effect {
    latencies: Arc<Mutex<Vec<Duration>>>,
}

impl Handler for Effect {
    fn handle<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        event: &'a Received,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                .bind(&event.id)
                .execute(&mut *tx)
                .await?;
            // Measured at the effect's write; its commit follows at once.
            let micros = (now_micros() - event.occurred_at).max(0) as u64;
            self.latencies
                .lock()
                .unwrap()
                .push(Duration::from_micros(micros));
            Ok(())
        })
    }
}

/// Delivers events for `duration` from `writers` concurrent writers, each
/// pausing `pace` between writes (`None`: as fast as it can).
pub async fn run(
    backend: &Backend,
    writers: usize,
    duration: Duration,
    pace: Option<Duration>,
) -> anyhow::Result<Measured> {
    let producer = Database::connect(&backend.fresh_db_config()).await?;
    producer.migrate(&sqlx::migrate::Migrator::DEFAULT).await?;
    let consumer = Database::connect(&backend.fresh_db_config()).await?;
    consumer.migrate(&sqlx::migrate::Migrator::DEFAULT).await?;
    sqlx::query("CREATE TABLE effects (event_id TEXT PRIMARY KEY)")
        .execute(consumer.pool())
        .await?;

    let log = Log::new(producer.clone());
    let logs = Logs::default();
    logs.insert("bench.producer", log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::event_log_service_server::EventLogServiceServer::new(
                logs,
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = meshwork_runtime::client::channel(&url, Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let shutdown = Shutdown::new();
    let mut jobs = Jobs::new(shutdown.clone());
    jobs.start();
    jobs.spawn(log.sequencer_job("bench.producer"));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    jobs.spawn(events::consumer_job(
        Subscription {
            name: "bench.consumer".into(),
            producer: "bench.producer".into(),
            topics: Vec::new(),
            delivery: Delivery::Work(Arc::new(Effect {
                latencies: latencies.clone(),
            })),
        },
        channel,
        consumer.clone(),
    ));

    let started = Instant::now();
    let deadline = started + duration;
    let publisher = log.publisher();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (db, publisher) = (producer.clone(), publisher.clone());
        tasks.push(tokio::spawn(async move {
            let mut written = 0u64;
            while Instant::now() < deadline {
                let mut tx = db.pool().begin().await?;
                let message = prost_types::Duration {
                    seconds: written as i64,
                    nanos: 0,
                };
                events::write(
                    &mut tx,
                    &NewEvent::new("bench", "k", &message, now_micros()),
                )
                .await?;
                tx.commit().await?;
                publisher.wake();
                written += 1;
                if let Some(pace) = pace {
                    tokio::time::sleep(pace).await;
                }
            }
            Ok::<u64, sqlx::Error>(written)
        }));
    }
    let mut written = 0;
    for task in tasks {
        written += task.await??;
    }
    // Until every event's effect is there (bounded: a stuck consumer is an
    // error, not a hang).
    let wait_until = Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(consumer.pool())
            .await?;
        if done as u64 >= written {
            break;
        }
        anyhow::ensure!(
            Instant::now() < wait_until,
            "only {done} of {written} events delivered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    jobs.wait().await;
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_unstable();
    Ok(Measured {
        ops: written,
        errors: 0,
        elapsed,
        latencies,
    })
}
