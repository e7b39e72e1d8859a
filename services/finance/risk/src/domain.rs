//! Rules, scores and decisions: pure, no transport or storage.
//!
//! [`evaluate`] is the whole engine: every enabled rule looks at the
//! transfer and at the facts gathered for it (velocity totals, the sender's
//! age), each rule that fires adds its score, and the policy's thresholds
//! turn the total into a [`Decision`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use meshwork_runtime::validate::{Checks, Currency, new_id};

/// Microseconds per second.
const SECOND: i64 = 1_000_000;

/// What a rule checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// A transfer of at least `min_amount_minor` in `currency`.
    AmountThreshold {
        /// ISO 4217 code.
        currency: String,
        /// Minor units.
        min_amount_minor: i64,
    },
    /// Too many, or too much, from one account within `window_seconds`.
    Velocity {
        /// The sliding window.
        window_seconds: i64,
        /// 0 for no count limit.
        max_count: i64,
        /// 0 for no sum limit.
        max_amount_minor: i64,
        /// The currency summed.
        currency: String,
    },
    /// Listed accounts, as sender or receiver.
    Blacklist {
        /// Account ids.
        account_ids: Vec<String>,
    },
    /// A young sender moving a large amount.
    NewAccount {
        /// Young means opened less than this long ago.
        max_age_seconds: i64,
        /// Minor units.
        min_amount_minor: i64,
    },
    /// A transfer in a local-time period, `[start_hour, end_hour)`.
    UnusualHour {
        /// 0-23.
        start_hour: i32,
        /// 0-23; before `start_hour` when the period wraps midnight.
        end_hour: i32,
        /// Local time's offset from UTC.
        utc_offset_minutes: i32,
    },
}

impl Condition {
    /// Records what is wrong with the condition's parameters under `field`
    /// that its contract cannot say: how one parameter depends on another.
    /// (Each parameter's own range is a rule of the contract, checked
    /// before a request reaches the service.)
    pub fn check(&self, checks: &mut Checks, field: &str) {
        let at = |name: &str| format!("{field}.{name}");
        match self {
            Self::Velocity {
                max_count,
                max_amount_minor,
                currency,
                ..
            } => {
                if *max_count == 0 && *max_amount_minor == 0 {
                    checks.fail(&at("max_count"), "set max_count, max_amount_minor or both");
                }
                if *max_amount_minor > 0 && currency.is_empty() {
                    checks.fail(&at("currency"), "is required when max_amount_minor is set");
                }
            }
            Self::UnusualHour {
                start_hour,
                end_hour,
                ..
            } if start_hour == end_hour => {
                checks.fail(&at("end_hour"), "must differ from start_hour");
            }
            _ => {}
        }
    }
}

/// A rule of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `rul_...`.
    pub id: String,
    /// For people.
    pub name: String,
    /// Evaluated or not.
    pub enabled: bool,
    /// Added when it fires.
    pub score: i32,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// What it checks.
    pub condition: Condition,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Microseconds since the epoch.
    pub updated_at: i64,
}

/// Largest score of one rule.
pub const MAX_RULE_SCORE: i32 = 1000;

/// Score thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// At least this: REVIEW.
    pub review_score: i32,
    /// At least this: REJECT.
    pub reject_score: i32,
}

impl Policy {
    /// The decision for a total score.
    pub fn decide(&self, score: i32) -> Decision {
        if score >= self.reject_score {
            Decision::Reject
        } else if score >= self.review_score {
            Decision::Review
        } else {
            Decision::Approve
        }
    }
}

/// What risk control says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Approve,
    /// Hold for review.
    Review,
    /// Stop.
    Reject,
}

impl Decision {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "APPROVE",
            Self::Review => "REVIEW",
            Self::Reject => "REJECT",
        }
    }

    /// The stored form back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "APPROVE" => Self::Approve,
            "REVIEW" => Self::Review,
            "REJECT" => Self::Reject,
            _ => return None,
        })
    }
}

/// The transfer being assessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Its id (the assessment's key).
    pub transfer_id: String,
    /// Debited.
    pub from_account_id: String,
    /// Credited.
    pub to_account_id: String,
    /// Currency.
    pub currency: Currency,
    /// Minor units.
    pub amount_minor: i64,
    /// When it happens, microseconds since the epoch.
    pub occur_at: i64,
}

/// What the sender did earlier in a velocity rule's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Transfers.
    pub count: i64,
    /// Their sum in the rule's currency.
    pub amount_minor: i64,
}

/// What the rules need besides the transfer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Per velocity rule id: the sender's earlier totals in its window.
    pub velocity: HashMap<String, Totals>,
    /// When the sender's account was opened, if a rule needs it.
    pub sender_opened_at: Option<i64>,
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    /// The rule.
    pub rule_id: String,
    /// Its name.
    pub name: String,
    /// What it added.
    pub score: i32,
    /// Why, for investigators.
    pub reason: String,
}

/// The outcome of an assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The decision.
    pub decision: Decision,
    /// Sum of the hits' scores.
    pub score: i32,
    /// The rules that fired.
    pub hits: Vec<Hit>,
}

/// Runs every enabled rule over `subject` and `facts`.
pub fn evaluate(rules: &[Rule], policy: &Policy, subject: &Subject, facts: &Facts) -> Verdict {
    let hits: Vec<Hit> = rules
        .iter()
        .filter(|rule| rule.enabled)
        .filter_map(|rule| {
            fires(rule, subject, facts).map(|reason| Hit {
                rule_id: rule.id.clone(),
                name: rule.name.clone(),
                score: rule.score,
                reason,
            })
        })
        .collect();
    let score = hits.iter().map(|hit| hit.score).sum();
    Verdict {
        decision: policy.decide(score),
        score,
        hits,
    }
}

/// Why `rule` fires for `subject`, or `None`.
fn fires(rule: &Rule, subject: &Subject, facts: &Facts) -> Option<String> {
    let amount = subject.amount_minor;
    let currency = subject.currency.as_str();
    match &rule.condition {
        Condition::AmountThreshold {
            currency: rule_currency,
            min_amount_minor,
        } => (rule_currency == currency && amount >= *min_amount_minor)
            .then(|| format!("amount {amount} {currency} is at least {min_amount_minor}")),
        Condition::Velocity {
            window_seconds,
            max_count,
            max_amount_minor,
            currency: rule_currency,
        } => {
            let before = facts.velocity.get(&rule.id).copied().unwrap_or_default();
            if *max_count > 0 && before.count + 1 > *max_count {
                return Some(format!(
                    "{} transfers from the sender within {window_seconds}s (limit {max_count})",
                    before.count + 1
                ));
            }
            if *max_amount_minor > 0
                && rule_currency == currency
                && before.amount_minor + amount > *max_amount_minor
            {
                return Some(format!(
                    "{} {currency} sent within {window_seconds}s (limit {max_amount_minor})",
                    before.amount_minor + amount
                ));
            }
            None
        }
        Condition::Blacklist { account_ids } => {
            if account_ids.contains(&subject.from_account_id) {
                Some(format!("sender {} is blacklisted", subject.from_account_id))
            } else if account_ids.contains(&subject.to_account_id) {
                Some(format!("receiver {} is blacklisted", subject.to_account_id))
            } else {
                None
            }
        }
        Condition::NewAccount {
            max_age_seconds,
            min_amount_minor,
        } => {
            let opened = facts.sender_opened_at?;
            let age = (subject.occur_at - opened) / SECOND;
            (age < *max_age_seconds && amount >= *min_amount_minor).then(|| {
                format!("sender opened {age}s ago (new below {max_age_seconds}s) sends {amount}")
            })
        }
        Condition::UnusualHour {
            start_hour,
            end_hour,
            utc_offset_minutes,
        } => {
            let hour = local_hour(subject.occur_at, *utc_offset_minutes);
            let inside = if start_hour < end_hour {
                (*start_hour..*end_hour).contains(&hour)
            } else {
                hour >= *start_hour || hour < *end_hour
            };
            inside.then(|| format!("at {hour:02}h local time ({start_hour:02}h-{end_hour:02}h)"))
        }
    }
}

/// The hour (0-23) of `at` (microseconds) at `offset_minutes` from UTC.
pub fn local_hour(at: i64, offset_minutes: i32) -> i32 {
    let local_seconds = at.div_euclid(SECOND) + i64::from(offset_minutes) * 60;
    local_seconds.div_euclid(3600).rem_euclid(24) as i32
}

/// A velocity rule's window cut into buckets: counters are kept per bucket,
/// and the window at time `t` is the `buckets` buckets ending with `t`'s.
/// A bucket is a sixtieth of the window (at least a second), so the window
/// slides in steps of that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Length of a bucket in microseconds.
    pub bucket_micros: i64,
    /// Buckets per window.
    pub buckets: i64,
}

impl Window {
    /// The buckets of a window of `window_seconds`.
    pub fn of(window_seconds: i64) -> Self {
        let bucket_seconds = (window_seconds / 60).max(1);
        Self {
            bucket_micros: bucket_seconds * SECOND,
            buckets: (window_seconds + bucket_seconds - 1) / bucket_seconds,
        }
    }

    /// The bucket `at` falls in.
    pub fn bucket(&self, at: i64) -> i64 {
        at.div_euclid(self.bucket_micros)
    }

    /// The buckets of the window ending at `at`, oldest first.
    pub fn buckets_at(&self, at: i64) -> std::ops::RangeInclusive<i64> {
        let last = self.bucket(at);
        (last - self.buckets + 1)..=last
    }

    /// How long a bucket's counters must live: its window, and one bucket
    /// for transfers assessed a little late.
    pub fn ttl(&self) -> std::time::Duration {
        let micros = self.bucket_micros * (self.buckets + 1);
        std::time::Duration::from_micros(micros as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        review_score: 50,
        reject_score: 100,
    };

    fn rule(id: &str, score: i32, condition: Condition) -> Rule {
        Rule {
            id: id.into(),
            name: id.into(),
            enabled: true,
            score,
            version: 1,
            condition,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn subject(amount_minor: i64, occur_at: i64) -> Subject {
        Subject {
            transfer_id: "trf_1".into(),
            from_account_id: "acc_a".into(),
            to_account_id: "acc_b".into(),
            currency: Currency::parse("EUR").unwrap(),
            amount_minor,
            occur_at,
        }
    }

    fn fired(rules: &[Rule], subject: &Subject, facts: &Facts) -> Vec<String> {
        evaluate(rules, &POLICY, subject, facts)
            .hits
            .into_iter()
            .map(|h| h.rule_id)
            .collect()
    }

    #[test]
    fn amount_thresholds_fire_from_their_threshold_in_their_currency() {
        let rules = [rule(
            "big",
            60,
            Condition::AmountThreshold {
                currency: "EUR".into(),
                min_amount_minor: 1_000,
            },
        )];
        let none = Facts::default();
        assert!(fired(&rules, &subject(999, 0), &none).is_empty());
        assert_eq!(fired(&rules, &subject(1_000, 0), &none), ["big"]);
        let mut usd = subject(5_000, 0);
        usd.currency = Currency::parse("USD").unwrap();
        assert!(fired(&rules, &usd, &none).is_empty());
    }

    #[test]
    fn velocity_counts_this_transfer_with_the_earlier_ones() {
        let rules = [rule(
            "fast",
            40,
            Condition::Velocity {
                window_seconds: 60,
                max_count: 3,
                max_amount_minor: 500,
                currency: "EUR".into(),
            },
        )];
        let with = |count, amount_minor| Facts {
            velocity: HashMap::from([(
                "fast".to_owned(),
                Totals {
                    count,
                    amount_minor,
                },
            )]),
            sender_opened_at: None,
        };
        assert!(fired(&rules, &subject(100, 0), &with(2, 300)).is_empty());
        assert_eq!(
            fired(&rules, &subject(100, 0), &with(3, 0)),
            ["fast"],
            "4th in the window"
        );
        assert!(
            fired(&rules, &subject(200, 0), &with(1, 300)).is_empty(),
            "sum at the limit"
        );
        assert_eq!(
            fired(&rules, &subject(201, 0), &with(1, 300)),
            ["fast"],
            "sum over it"
        );
    }

    #[test]
    fn blacklists_catch_either_side() {
        let rules = [rule(
            "bl",
            100,
            Condition::Blacklist {
                account_ids: vec!["acc_b".into()],
            },
        )];
        let verdict = evaluate(&rules, &POLICY, &subject(1, 0), &Facts::default());
        assert_eq!(verdict.decision, Decision::Reject);
        assert!(verdict.hits[0].reason.contains("receiver"));
        let mut clean = subject(1, 0);
        clean.to_account_id = "acc_c".into();
        assert!(fired(&rules, &clean, &Facts::default()).is_empty());
    }

    #[test]
    fn new_accounts_are_young_strictly_below_their_age() {
        let rules = [rule(
            "young",
            50,
            Condition::NewAccount {
                max_age_seconds: 3600,
                min_amount_minor: 100,
            },
        )];
        let opened = |at| Facts {
            velocity: HashMap::new(),
            sender_opened_at: Some(at),
        };
        let at = 10_000 * SECOND;
        assert_eq!(
            fired(&rules, &subject(100, at), &opened(at - 3599 * SECOND)),
            ["young"]
        );
        assert!(fired(&rules, &subject(100, at), &opened(at - 3600 * SECOND)).is_empty());
        assert!(fired(&rules, &subject(99, at), &opened(at)).is_empty());
        assert!(fired(&rules, &subject(100, at), &Facts::default()).is_empty());
    }

    #[test]
    fn unusual_hours_wrap_midnight_in_local_time() {
        let rules = [rule(
            "night",
            30,
            Condition::UnusualHour {
                start_hour: 23,
                end_hour: 5,
                utc_offset_minutes: 480,
            },
        )];
        let utc = |h: i64, m: i64| (h * 3600 + m * 60) * SECOND;
        // 15:00 UTC is 23:00 at +08:00: inside; 20:59 UTC is 04:59: inside;
        // 21:00 UTC is 05:00: outside; 14:59 UTC is 22:59: outside.
        assert_eq!(
            fired(&rules, &subject(1, utc(15, 0)), &Facts::default()),
            ["night"]
        );
        assert_eq!(
            fired(&rules, &subject(1, utc(20, 59)), &Facts::default()),
            ["night"]
        );
        assert!(fired(&rules, &subject(1, utc(21, 0)), &Facts::default()).is_empty());
        assert!(fired(&rules, &subject(1, utc(14, 59)), &Facts::default()).is_empty());
        assert_eq!(local_hour(utc(1, 0), -120), 23);
    }

    #[test]
    fn scores_add_up_to_decisions_at_the_thresholds() {
        assert_eq!(POLICY.decide(49), Decision::Approve);
        assert_eq!(POLICY.decide(50), Decision::Review);
        assert_eq!(POLICY.decide(99), Decision::Review);
        assert_eq!(POLICY.decide(100), Decision::Reject);
        let big = Condition::AmountThreshold {
            currency: "EUR".into(),
            min_amount_minor: 1,
        };
        let mut off = rule("off", 500, big.clone());
        off.enabled = false;
        let rules = [rule("a", 30, big.clone()), rule("b", 30, big), off];
        let verdict = evaluate(&rules, &POLICY, &subject(5, 0), &Facts::default());
        assert_eq!((verdict.score, verdict.decision), (60, Decision::Review));
    }

    #[test]
    fn windows_slide_bucket_by_bucket() {
        let minute = Window::of(60);
        assert_eq!((minute.bucket_micros, minute.buckets), (SECOND, 60));
        let t = 1_000 * SECOND;
        // A transfer at t is in the window until t + 60 s, not at t + 60 s.
        assert!(
            minute
                .buckets_at(t + 59 * SECOND + 999_999)
                .contains(&minute.bucket(t))
        );
        assert!(
            !minute
                .buckets_at(t + 60 * SECOND)
                .contains(&minute.bucket(t))
        );
        let day = Window::of(86_400);
        assert_eq!((day.bucket_micros, day.buckets), (1_440 * SECOND, 60));
        let odd = Window::of(90);
        assert_eq!((odd.bucket_micros, odd.buckets), (SECOND, 90));
    }

    #[test]
    fn conditions_are_checked_where_one_parameter_depends_on_another() {
        let mut checks = Checks::new();
        Condition::Velocity {
            window_seconds: 60,
            max_count: 0,
            max_amount_minor: 0,
            currency: String::new(),
        }
        .check(&mut checks, "rule.velocity");
        Condition::Velocity {
            window_seconds: 60,
            max_count: 0,
            max_amount_minor: 5,
            currency: String::new(),
        }
        .check(&mut checks, "rule.velocity");
        Condition::UnusualHour {
            start_hour: 3,
            end_hour: 3,
            utc_offset_minutes: 0,
        }
        .check(&mut checks, "rule.unusual_hour");
        Condition::UnusualHour {
            start_hour: 22,
            end_hour: 6,
            utc_offset_minutes: 0,
        }
        .check(&mut checks, "rule.unusual_hour");
        let Err(invalid) = checks.finish() else {
            panic!("expected violations")
        };
        let fields: Vec<_> = invalid.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rule.velocity.max_count",
                "rule.velocity.currency",
                "rule.unusual_hour.end_hour",
            ]
        );
    }
}
