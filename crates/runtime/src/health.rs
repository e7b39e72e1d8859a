//! `grpc.health.v1` statuses that follow the dependencies.
//!
//! Each service registers the probes of what it cannot work without (its
//! database, its cache); [`HealthMonitor`] runs them on an interval and
//! reports SERVING only while all pass. The empty service name ("", the whole
//! server) is SERVING only while every service is. Once shutdown starts,
//! everything is NOT_SERVING so that load balancers stop sending traffic
//! before the server stops accepting it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::shutdown::Shutdown;

/// Something a service depends on, checked cheaply and often.
pub trait Probe: Send + Sync + 'static {
    /// A short name for logs ("database", "cache").
    fn name(&self) -> &str;
    /// Ok when the dependency answers.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

struct Watched {
    service: String,
    probes: Vec<Arc<dyn Probe>>,
}

/// Runs probes and keeps the health reporter in step with them.
pub struct HealthMonitor {
    reporter: HealthReporter,
    watched: Vec<Watched>,
    interval: Duration,
    probe_timeout: Duration,
}

impl HealthMonitor {
    /// A monitor reporting through `reporter`, probing every `interval`.
    pub fn new(reporter: HealthReporter, interval: Duration) -> Self {
        Self {
            reporter,
            watched: Vec::new(),
            interval,
            probe_timeout: Duration::from_secs(2).min(interval * 2),
        }
    }

    /// Watches `service` (its full proto name) with `probes`.
    pub fn watch(&mut self, service: &str, probes: Vec<Arc<dyn Probe>>) -> &mut Self {
        self.watched.push(Watched {
            service: service.to_owned(),
            probes,
        });
        self
    }

    /// Probes once, then every interval until `shutdown`; then reports
    /// NOT_SERVING for everything and returns.
    pub async fn run(self, shutdown: Shutdown) {
        let mut last: Vec<Option<bool>> = vec![None; self.watched.len()];
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            for (index, watched) in self.watched.iter().enumerate() {
                let failure = self.first_failure(&watched.probes).await;
                let serving = failure.is_none();
                if last[index] != Some(serving) {
                    match &failure {
                        None => tracing::info!(service = %watched.service, "SERVING"),
                        Some((probe, error)) => {
                            tracing::warn!(service = %watched.service, dependency = %probe, %error, "NOT_SERVING")
                        }
                    }
                    self.reporter
                        .set_service_status(&watched.service, status(serving))
                        .await;
                    last[index] = Some(serving);
                }
            }
            let all = last.iter().all(|s| *s == Some(true));
            self.reporter.set_service_status("", status(all)).await;
        }
        for watched in &self.watched {
            self.reporter
                .set_service_status(&watched.service, ServingStatus::NotServing)
                .await;
        }
        self.reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        tracing::info!("health: NOT_SERVING, shutting down");
    }

    async fn first_failure(&self, probes: &[Arc<dyn Probe>]) -> Option<(String, String)> {
        for probe in probes {
            let outcome = tokio::time::timeout(self.probe_timeout, probe.check()).await;
            let error = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(_) => format!("no answer within {:?}", self.probe_timeout),
            };
            return Some((probe.name().to_owned(), error));
        }
        None
    }
}

fn status(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}
