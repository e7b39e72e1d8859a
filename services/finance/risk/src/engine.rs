//! The engine at work: gather the facts a transfer's rules need, evaluate,
//! record the assessment once per transfer and count the transfer into the
//! velocity windows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meshwork_runtime::client::MeshChannel;
use meshwork_runtime::counters::Counters;
use tokio::sync::RwLock;

use crate::domain::{Condition, Decision, Facts, Policy, Rule, Subject, Totals, Window, evaluate};
use crate::error::RiskError;
use crate::ledger::Ledger;
use crate::store::{Assessment, Store};

/// How long a replica evaluates with the rules it loaded before reading
/// them again (changes made through this replica apply at once).
const RULEBOOK_TTL: Duration = Duration::from_secs(1);

/// The rules and policy in force.
#[derive(Clone)]
struct Rulebook {
    loaded: Instant,
    rules: Arc<Vec<Rule>>,
    policy: Policy,
}

/// Assessments.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    counters: Counters,
    ledger: Ledger,
    rulebook: Arc<RwLock<Option<Rulebook>>>,
}

impl Engine {
    /// The engine over its store, velocity counters and the ledger (asked
    /// when an account's age matters).
    pub fn new(store: Store, counters: Counters, ledger: MeshChannel) -> Self {
        Self {
            store,
            counters,
            ledger: Ledger::new(ledger),
            rulebook: Arc::default(),
        }
    }

    /// The store, for reads and rule changes.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Forgets the loaded rules, after a change through this replica.
    pub async fn rules_changed(&self) {
        *self.rulebook.write().await = None;
    }

    /// Assesses `subject` once: a transfer assessed before gets its first
    /// assessment back (and is not counted again).
    pub async fn assess(&self, subject: Subject) -> Result<Assessment, RiskError> {
        if let Some(earlier) = self.store.assessment(&subject.transfer_id).await? {
            return same_transfer(earlier, &subject);
        }
        let book = self.rulebook().await?;
        // Counted before the windows are read, so that concurrent transfers
        // from one sender see each other (a check-then-count would let a
        // burst through together); the totals read include this transfer,
        // which `facts` takes out again.
        self.count(&book.rules, &subject, 1).await?;
        let assessed = self.decide(&book, subject).await;
        let undo = match &assessed {
            // Rejected transfers never happen; a duplicate was counted by
            // the call that recorded it; a failure assessed nothing.
            Ok((assessment, recorded)) => {
                !recorded || assessment.verdict.decision == Decision::Reject
            }
            Err(_) => true,
        };
        if undo {
            let subject = match &assessed {
                Ok((assessment, _)) => &assessment.subject,
                Err((_, subject)) => subject,
            };
            if let Err(error) = self.count(&book.rules, subject, -1).await {
                tracing::warn!(%error, "velocity count not taken back");
            }
        }
        let (assessment, recorded) = assessed.map_err(|(error, _)| error)?;
        if !recorded {
            return Ok(assessment);
        }
        tracing::info!(
            transfer = %assessment.subject.transfer_id,
            decision = assessment.verdict.decision.as_str(),
            score = assessment.verdict.score,
            "transfer assessed"
        );
        Ok(assessment)
    }

    /// Evaluates and records; the stored assessment and whether this call
    /// recorded it (false: a concurrent duplicate's stands).
    async fn decide(
        &self,
        book: &Rulebook,
        subject: Subject,
    ) -> Result<(Assessment, bool), (RiskError, Subject)> {
        let facts = match self.facts(&book.rules, &subject).await {
            Ok(facts) => facts,
            Err(error) => return Err((error, subject)),
        };
        let verdict = evaluate(&book.rules, &book.policy, &subject, &facts);
        let assessment = Assessment { subject, verdict };
        match self.store.record(&assessment).await {
            Ok(true) => Ok((assessment, true)),
            Ok(false) => {
                let id = assessment.subject.transfer_id.clone();
                match self.store.assessment(&id).await {
                    Ok(Some(earlier)) => match same_transfer(earlier, &assessment.subject) {
                        Ok(earlier) => Ok((earlier, false)),
                        Err(error) => Err((error, assessment.subject)),
                    },
                    Ok(None) => Err((
                        RiskError::internal(format!("assessment of {id} vanished")),
                        assessment.subject,
                    )),
                    Err(error) => Err((error, assessment.subject)),
                }
            }
            Err(error) => Err((error, assessment.subject)),
        }
    }

    async fn rulebook(&self) -> Result<Rulebook, RiskError> {
        if let Some(book) = self.rulebook.read().await.as_ref()
            && book.loaded.elapsed() < RULEBOOK_TTL
        {
            return Ok(book.clone());
        }
        let (rules, policy) = self.store.rulebook().await?;
        let book = Rulebook {
            loaded: Instant::now(),
            rules: Arc::new(rules),
            policy,
        };
        *self.rulebook.write().await = Some(book.clone());
        Ok(book)
    }

    /// What the enabled rules need to know besides the transfer.
    async fn facts(&self, rules: &[Rule], subject: &Subject) -> Result<Facts, RiskError> {
        let mut facts = Facts::default();
        let velocity: Vec<(&Rule, Window)> = rules
            .iter()
            .filter_map(|rule| match &rule.condition {
                Condition::Velocity { window_seconds, .. } => {
                    Some((rule, Window::of(*window_seconds)))
                }
                _ => None,
            })
            .collect();
        let mut keys = Vec::new();
        for (rule, window) in &velocity {
            for bucket in window.buckets_at(subject.occur_at) {
                keys.push(count_key(&rule.id, &subject.from_account_id, bucket));
                keys.push(amount_key(&rule.id, &subject.from_account_id, bucket));
            }
        }
        let values = self.counters.get(&keys).await?;
        let mut values = values.chunks(2);
        for (rule, window) in &velocity {
            let mut totals = Totals::default();
            for _ in window.buckets_at(subject.occur_at) {
                if let Some([count, amount]) = values.next() {
                    totals.count += count;
                    totals.amount_minor += amount;
                }
            }
            // The windows already hold this transfer (counted first).
            totals.count -= 1;
            if let Condition::Velocity { currency, .. } = &rule.condition
                && currency == subject.currency.as_str()
            {
                totals.amount_minor -= subject.amount_minor;
            }
            facts.velocity.insert(rule.id.clone(), totals);
        }

        if rules
            .iter()
            .any(|rule| matches!(rule.condition, Condition::NewAccount { .. }))
        {
            facts.sender_opened_at = self.ledger.opened_at(&subject.from_account_id).await?;
        }
        Ok(facts)
    }

    /// Counts `subject` into the current bucket of every velocity rule.
    /// Adds `sign` (1 or -1) times `subject` to the current bucket of every
    /// velocity rule.
    async fn count(&self, rules: &[Rule], subject: &Subject, sign: i64) -> Result<(), RiskError> {
        for rule in rules {
            let Condition::Velocity {
                window_seconds,
                currency,
                ..
            } = &rule.condition
            else {
                continue;
            };
            let window = Window::of(*window_seconds);
            let bucket = window.bucket(subject.occur_at);
            let mut deltas = vec![(count_key(&rule.id, &subject.from_account_id, bucket), sign)];
            if currency == subject.currency.as_str() {
                deltas.push((
                    amount_key(&rule.id, &subject.from_account_id, bucket),
                    sign * subject.amount_minor,
                ));
            }
            self.counters.add(&deltas, window.ttl()).await?;
        }
        Ok(())
    }
}

/// An earlier assessment answers a repeat only if it is about the same
/// transfer (the same accounts and amount).
fn same_transfer(earlier: Assessment, asked: &Subject) -> Result<Assessment, RiskError> {
    let (a, b) = (&earlier.subject, asked);
    if (
        &a.from_account_id,
        &a.to_account_id,
        &a.currency,
        a.amount_minor,
    ) == (
        &b.from_account_id,
        &b.to_account_id,
        &b.currency,
        b.amount_minor,
    ) {
        Ok(earlier)
    } else {
        Err(meshwork_runtime::idempotency::KeyReused.into())
    }
}

fn count_key(rule_id: &str, account_id: &str, bucket: i64) -> String {
    format!("velocity:{rule_id}:{account_id}:{bucket}:count")
}

fn amount_key(rule_id: &str, account_id: &str, bucket: i64) -> String {
    format!("velocity:{rule_id}:{account_id}:{bucket}:amount")
}
