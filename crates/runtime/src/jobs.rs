//! Background jobs (settlers, sync passes, outbox relays), supervised.
//!
//! A job is a *round* run again and again: after an interval, or at once
//! when something wakes it. The supervisor owns the loop, so no service
//! writes one: a round that fails (returns an error or panics) is logged,
//! counted in `meshwork_job_rounds_total{job,outcome}`, marks the job
//! unhealthy (the services that started it report NOT_SERVING through
//! [`JobProbe`]) and is tried again with exponential backoff; the next round
//! that succeeds makes it healthy again. Shutdown stops every job between
//! rounds; a round still running [`ROUND_GRACE`] after shutdown began is
//! dropped (rounds are idempotent or at-least-once by design: the next
//! start does the work again), and [`Jobs::wait`] returns once all have
//! stopped.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::BoxError;
use crate::health::Probe;
use crate::shutdown::Shutdown;

/// When a round wants the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// After the job's interval (or a wake-up).
    Interval,
    /// After this pause (or a wake-up): a job backing off on its own, e.g.
    /// a relay whose receiver is down, which is no failure of the job.
    After(Duration),
}

/// One round of a job.
pub type Round = Arc<dyn Fn() -> BoxFuture<'static, Result<Next, BoxError>> + Send + Sync>;

/// A job to supervise.
#[derive(Clone)]
pub struct Job {
    name: String,
    every: Duration,
    first_after: Duration,
    wake: Option<Arc<Notify>>,
    round: Round,
}

impl Job {
    /// `name` runs `round` every `every` (the first round after one interval).
    pub fn every<F, Fut>(name: impl Into<String>, every: Duration, round: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Next, BoxError>> + Send + 'static,
    {
        Self {
            name: name.into(),
            every,
            first_after: every,
            wake: None,
            round: Arc::new(move || round().boxed()),
        }
    }

    /// Runs the first round at once instead of after one interval.
    pub fn starting_now(mut self) -> Self {
        self.first_after = Duration::ZERO;
        self
    }

    /// Also runs a round as soon as `wake` is notified.
    pub fn woken_by(mut self, wake: Arc<Notify>) -> Self {
        self.wake = Some(wake);
        self
    }

    /// The job's name, as in logs and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How long a round may go on after shutdown began before it is dropped.
pub const ROUND_GRACE: Duration = Duration::from_secs(3);

/// Backoff after failed rounds: 100 ms doubling up to 30 s.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(100);
    base.saturating_mul(1 << failures.min(9))
        .min(Duration::from_secs(30))
}

/// Whether a job's last round succeeded, as a health probe.
#[derive(Clone)]
pub struct JobProbe {
    name: String,
    healthy: Arc<AtomicBool>,
}

impl JobProbe {
    /// Whether the last round succeeded (true before the first).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }
}

impl Probe for JobProbe {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let healthy = self.healthy();
        Box::pin(async move {
            if healthy {
                Ok(())
            } else {
                Err("its last round failed; retrying with backoff".to_owned())
            }
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoundLabels {
    job: String,
    outcome: &'static str,
}

fn rounds() -> &'static Family<RoundLabels, Counter> {
    static ROUNDS: OnceLock<Family<RoundLabels, Counter>> = OnceLock::new();
    ROUNDS.get_or_init(|| {
        let family = Family::default();
        crate::metrics::with_registry(|registry| {
            registry.register(
                "job_rounds",
                "Rounds of background jobs, by job and outcome (ok, error, panic)",
                family.clone(),
            )
        });
        family
    })
}

/// How many rounds of `job` ended with `outcome` (ok, error, panic).
pub fn round_count(job: &str, outcome: &'static str) -> u64 {
    rounds()
        .get_or_create(&RoundLabels {
            job: job.to_owned(),
            outcome,
        })
        .get()
}

/// The supervisor of a process's jobs.
pub struct Jobs {
    running: JoinSet<()>,
    shutdown: Shutdown,
    // Jobs spawned while services start wait for this: a consumer must not
    // call a port that answers only health yet.
    go: tokio::sync::watch::Sender<bool>,
}

impl Jobs {
    /// Jobs that stop when `shutdown` is cancelled.
    pub fn new(shutdown: Shutdown) -> Self {
        // The families exist from start-up, so dashboards see zeroes.
        let _ = rounds();
        Self {
            running: JoinSet::new(),
            shutdown,
            go: tokio::sync::watch::channel(false).0,
        }
    }

    /// Lets the jobs run (those spawned before wait until now; those spawned
    /// after start at once).
    pub fn start(&self) {
        self.go.send_replace(true);
    }

    /// Starts `job` under supervision; its probe tells whether it is healthy.
    pub fn spawn(&mut self, job: Job) -> JobProbe {
        let probe = JobProbe {
            name: format!("job {}", job.name),
            healthy: Arc::new(AtomicBool::new(true)),
        };
        let healthy = probe.healthy.clone();
        let shutdown = self.shutdown.clone();
        let mut go = self.go.subscribe();
        self.running.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = go.wait_for(|started| *started) => {}
            }
            supervise(job, healthy, shutdown).await;
        });
        probe
    }

    /// Waits until every job has stopped (they stop on shutdown).
    pub async fn wait(mut self) {
        while self.running.join_next().await.is_some() {}
    }
}

async fn supervise(job: Job, healthy: Arc<AtomicBool>, shutdown: Shutdown) {
    let mut pause = job.first_after;
    let mut failures: u32 = 0;
    loop {
        let woken = async {
            match &job.wake {
                Some(wake) => wake.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
            () = woken => {}
        }
        // The closure is called inside the guarded future, so that a panic
        // while building the round is caught like one inside it.
        let round = AssertUnwindSafe(async { (job.round)().await }).catch_unwind();
        let stopped = async {
            shutdown.cancelled().await;
            tokio::time::sleep(ROUND_GRACE).await;
        };
        let outcome = tokio::select! {
            outcome = round => outcome,
            () = stopped => {
                tracing::warn!(job = %job.name, "job round dropped: still running after the shutdown grace");
                return;
            }
        };
        let (label, next) = match outcome {
            Ok(Ok(next)) => {
                failures = 0;
                healthy.store(true, Ordering::SeqCst);
                let pause = match next {
                    Next::Interval => job.every,
                    Next::After(pause) => pause,
                };
                ("ok", pause)
            }
            Ok(Err(error)) => {
                let retry_in = backoff(failures);
                failures = failures.saturating_add(1);
                healthy.store(false, Ordering::SeqCst);
                tracing::warn!(job = %job.name, %error, retry_in_ms = retry_in.as_millis() as u64, "job round failed");
                ("error", retry_in)
            }
            Err(panic) => {
                let retry_in = backoff(failures);
                failures = failures.saturating_add(1);
                healthy.store(false, Ordering::SeqCst);
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                tracing::error!(job = %job.name, panic = %message, retry_in_ms = retry_in.as_millis() as u64, "job round panicked");
                ("panic", retry_in)
            }
        };
        rounds()
            .get_or_create(&RoundLabels {
                job: job.name.clone(),
                outcome: label,
            })
            .inc();
        pause = next;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use tokio::sync::{Mutex, mpsc};

    use super::*;

    /// Polls `check` (bounded) until it holds.
    async fn until(mut check: impl FnMut() -> bool) -> bool {
        for _ in 0..400 {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// A job whose rounds do what the test sends: 'f' fails, 'p' panics,
    /// anything else succeeds. A round waits for its instruction, so the
    /// test decides the order of events, not the timer.
    fn scripted(name: &str) -> (Job, mpsc::UnboundedSender<char>, Arc<AtomicU32>) {
        let (send, receive) = mpsc::unbounded_channel::<char>();
        let receive = Arc::new(Mutex::new(receive));
        let done = Arc::new(AtomicU32::new(0));
        let counted = done.clone();
        let job = Job::every(name, Duration::from_millis(1), move || {
            let receive = receive.clone();
            let counted = counted.clone();
            async move {
                let what = receive.lock().await.recv().await.unwrap_or('s');
                counted.fetch_add(1, Ordering::SeqCst);
                match what {
                    'f' => Err::<Next, BoxError>("this round fails".into()),
                    'p' => panic!("this round panics"),
                    _ => Ok(Next::Interval),
                }
            }
        });
        (job, send, done)
    }

    #[tokio::test]
    async fn a_failing_or_panicking_round_is_counted_marks_unhealthy_and_is_retried() {
        let shutdown = Shutdown::new();
        let mut jobs = Jobs::new(shutdown.clone());
        jobs.start();
        let (job, send, done) = scripted("test.flaky");
        let probe = jobs.spawn(job);
        assert!(probe.healthy(), "healthy before its first round");

        send.send('f').unwrap();
        assert!(until(|| done.load(Ordering::SeqCst) == 1 && !probe.healthy()).await);
        assert!(probe.check().await.is_err());
        // A panic does not end the job: it is retried after its backoff.
        send.send('p').unwrap();
        assert!(until(|| done.load(Ordering::SeqCst) == 2).await);
        assert!(!probe.healthy());
        send.send('s').unwrap();
        assert!(until(|| probe.healthy()).await, "a good round heals it");
        assert!(until(|| round_count("test.flaky", "ok") == 1).await);
        assert_eq!(round_count("test.flaky", "error"), 1);
        assert_eq!(round_count("test.flaky", "panic"), 1);
        assert!(
            crate::metrics::encode()
                .contains("meshwork_job_rounds_total{job=\"test.flaky\",outcome=\"panic\"} 1")
        );

        shutdown.cancel();
        drop(send);
        jobs.wait().await;
    }

    #[tokio::test]
    async fn a_panic_while_making_a_round_is_caught_too() {
        let shutdown = Shutdown::new();
        let mut jobs = Jobs::new(shutdown.clone());
        jobs.start();
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let probe = jobs.spawn(Job::every(
            "test.eager",
            Duration::from_millis(1),
            move || {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the closure itself panics");
                }
                async { Ok(Next::Interval) }
            },
        ));
        // The job lives on: a second call happens, and it heals.
        assert!(until(|| calls.load(Ordering::SeqCst) >= 2 && probe.healthy()).await);
        assert_eq!(round_count("test.eager", "panic"), 1);
        shutdown.cancel();
        jobs.wait().await;
    }

    #[tokio::test]
    async fn a_wake_up_runs_a_round_before_the_interval_and_shutdown_stops_the_job() {
        let shutdown = Shutdown::new();
        let mut jobs = Jobs::new(shutdown.clone());
        jobs.start();
        let wake = Arc::new(Notify::new());
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        // An interval no test waits for: only the wake-up can run a round.
        jobs.spawn(
            Job::every("test.woken", Duration::from_secs(3600), move || {
                seen.fetch_add(1, Ordering::SeqCst);
                async { Ok(Next::Interval) }
            })
            .woken_by(wake.clone()),
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        wake.notify_one();
        assert!(until(|| calls.load(Ordering::SeqCst) == 1).await);
        shutdown.cancel();
        jobs.wait().await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
