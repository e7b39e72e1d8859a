//! Audit records, the hash chain and the compliance report: pure, no
//! transport or storage.

use std::collections::BTreeMap;

/// The hash before the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as recorded (already masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The deduplication key.
    pub event_id: String,
    /// The reporting service.
    pub source: String,
    /// Who caused it.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// To what.
    pub resource: String,
    /// How it ended.
    pub outcome: String,
    /// Details.
    pub attributes: BTreeMap<String, String>,
    /// Microseconds since the epoch.
    pub occurred_at: i64,
    /// The causing request's trace.
    pub trace_id: String,
}

/// A record of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// From 1, without gaps.
    pub sequence: i64,
    /// The event.
    pub event: Event,
    /// When it was stored, microseconds since the epoch.
    pub recorded_at: i64,
    /// The previous record's hash.
    pub previous_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl Record {
    /// The hash a record with these contents must have: SHA-256 over the
    /// previous hash and every field, each length-prefixed so that no two
    /// different records hash the same text.
    pub fn expected_hash(&self) -> String {
        let e = &self.event;
        let attributes =
            serde_json::to_string(&e.attributes).expect("string maps always serialise");
        meshwork_runtime::idempotency::fingerprint(&[
            &self.previous_hash,
            &self.sequence.to_string(),
            &e.event_id,
            &e.source,
            &e.actor,
            &e.action,
            &e.resource,
            &e.outcome,
            &attributes,
            &e.occurred_at.to_string(),
            &e.trace_id,
            &self.recorded_at.to_string(),
        ])
    }
}

/// What a walk over the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// A record's contents do not match its hash.
    Tampered { sequence: i64 },
    /// A record does not point at its predecessor's hash.
    Unlinked { sequence: i64 },
    /// A sequence number is missing (a record was deleted).
    Gap { expected: i64, found: i64 },
    /// The chain ends before its recorded head (records cut off the end).
    Truncated { last: i64, head: i64 },
}

impl Break {
    /// The first sequence number concerned.
    pub fn sequence(&self) -> i64 {
        match self {
            Self::Tampered { sequence } | Self::Unlinked { sequence } => *sequence,
            Self::Gap { expected, .. } => *expected,
            Self::Truncated { last, .. } => last + 1,
        }
    }

    /// What is wrong, for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Tampered { sequence } => {
                format!(
                    "record {sequence} does not match its hash: it was changed after it was written"
                )
            }
            Self::Unlinked { sequence } => {
                format!("record {sequence} does not follow the hash of its predecessor")
            }
            Self::Gap { expected, found } => {
                format!("record {expected} is missing (the next one found is {found})")
            }
            Self::Truncated { last, head } => {
                format!("the chain ends at {last} but its head says {head}: records were removed")
            }
        }
    }
}

/// Walks records in sequence order, checking each against its predecessor.
#[derive(Debug)]
pub struct ChainCheck {
    previous_hash: String,
    next_sequence: i64,
    checked: i64,
    broken: Option<Break>,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self {
            previous_hash: GENESIS_HASH.to_owned(),
            next_sequence: 1,
            checked: 0,
            broken: None,
        }
    }
}

impl ChainCheck {
    /// Checks the next record; after the first break, nothing more.
    pub fn check(&mut self, record: &Record) {
        if self.broken.is_some() {
            return;
        }
        self.checked += 1;
        self.broken = if record.sequence != self.next_sequence {
            Some(Break::Gap {
                expected: self.next_sequence,
                found: record.sequence,
            })
        } else if record.previous_hash != self.previous_hash {
            Some(Break::Unlinked {
                sequence: record.sequence,
            })
        } else if record.expected_hash() != record.hash {
            Some(Break::Tampered {
                sequence: record.sequence,
            })
        } else {
            None
        };
        self.previous_hash = record.hash.clone();
        self.next_sequence = record.sequence + 1;
    }

    /// Whether a break was found (no need to read further).
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The verdict, given the head's sequence and hash.
    pub fn finish(mut self, head_sequence: i64, head_hash: &str) -> (i64, Option<Break>) {
        if self.broken.is_none() {
            let last = self.next_sequence - 1;
            if last != head_sequence || (last > 0 && self.previous_hash != head_hash) {
                self.broken = Some(Break::Truncated {
                    last,
                    head: head_sequence,
                });
            }
        }
        (self.checked, self.broken)
    }
}

/// The sections of a compliance report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Money movements of at least the large amount.
    LargeTransaction,
    /// Accounts frozen.
    FrozenAccount,
    /// Transfers rejected or declined.
    RejectedTransfer,
    /// Transfers held for review and the reviews.
    ReviewedTransfer,
    /// Payments that failed.
    FailedPayment,
}

impl Section {
    /// The CSV name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LargeTransaction => "large_transaction",
            Self::FrozenAccount => "frozen_account",
            Self::RejectedTransfer => "rejected_transfer",
            Self::ReviewedTransfer => "reviewed_transfer",
            Self::FailedPayment => "failed_payment",
        }
    }
}

/// The large amount when a report request names none: 10,000.00.
pub const DEFAULT_LARGE_AMOUNT_MINOR: i64 = 1_000_000;

/// Money movements that can be large.
const MOVEMENTS: &[&str] = &["transfer.posted", "account.deposited", "account.withdrawn"];

/// The report sections `event` belongs in (possibly several, possibly none).
pub fn sections(event: &Event, large_amount_minor: i64) -> Vec<Section> {
    let mut sections = Vec::new();
    let amount = event
        .attributes
        .get("amount_minor")
        .and_then(|a| a.parse::<i64>().ok());
    if MOVEMENTS.contains(&event.action.as_str()) && amount.is_some_and(|a| a >= large_amount_minor)
    {
        sections.push(Section::LargeTransaction);
    }
    match event.action.as_str() {
        "account.frozen" => sections.push(Section::FrozenAccount),
        "transfer.rejected" => sections.push(Section::RejectedTransfer),
        "transfer.declined" => {
            sections.push(Section::RejectedTransfer);
            sections.push(Section::ReviewedTransfer);
        }
        "transfer.held_for_review" | "transfer.approved" => {
            sections.push(Section::ReviewedTransfer)
        }
        "payment.failed" => sections.push(Section::FailedPayment),
        _ => {}
    }
    sections
}

/// An amount as an event's attributes state it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    /// The `currency` attribute (empty when there is none).
    pub currency: String,
    /// The `amount_minor` attribute.
    pub amount_minor: i64,
}

/// A record as one line of one section of a compliance report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    /// The section it is in.
    pub section: Section,
    /// When the event occurred, microseconds since the epoch.
    pub occurred_at: i64,
    /// The record's sequence number.
    pub sequence: i64,
    /// What happened.
    pub action: String,
    /// To what.
    pub resource: String,
    /// How it ended.
    pub outcome: String,
    /// The amount, when the event states a readable `amount_minor`.
    pub amount: Option<Amount>,
    /// The accounts the event names, space-separated.
    pub accounts: String,
    /// Why (the `reason` attribute).
    pub detail: String,
}

/// The attributes that name accounts, in the order a line lists them.
const ACCOUNT_ATTRIBUTES: [&str; 4] = [
    "account_id",
    "from_account_id",
    "to_account_id",
    "account_number",
];

impl ReportLine {
    /// `record` as a line of `section`.
    pub fn new(section: Section, record: &Record) -> Self {
        let e = &record.event;
        let get = |key: &str| e.attributes.get(key).cloned().unwrap_or_default();
        let accounts = ACCOUNT_ATTRIBUTES
            .iter()
            .filter_map(|key| e.attributes.get(*key).cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let amount = e
            .attributes
            .get("amount_minor")
            .and_then(|a| a.parse().ok())
            .map(|amount_minor| Amount {
                currency: get("currency"),
                amount_minor,
            });
        Self {
            section,
            occurred_at: e.occurred_at,
            sequence: record.sequence,
            action: e.action.clone(),
            resource: e.resource.clone(),
            outcome: e.outcome.clone(),
            amount,
            accounts,
            detail: get("reason"),
        }
    }
}

/// One CSV field, quoted when it needs to be (RFC 4180).
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sequence: i64, previous: &str) -> Record {
        let mut record = Record {
            sequence,
            event: Event {
                event_id: format!("evt_{sequence}"),
                source: "finance.transaction".into(),
                actor: "alice".into(),
                action: "transfer.posted".into(),
                resource: "transfers/trf_1".into(),
                outcome: "OK".into(),
                attributes: BTreeMap::from([("amount_minor".into(), "5".into())]),
                occurred_at: 1,
                trace_id: String::new(),
            },
            recorded_at: 2,
            previous_hash: previous.to_owned(),
            hash: String::new(),
        };
        record.hash = record.expected_hash();
        record
    }

    fn chain(n: i64) -> Vec<Record> {
        let mut records: Vec<Record> = Vec::new();
        for sequence in 1..=n {
            let previous = records
                .last()
                .map_or(GENESIS_HASH.to_owned(), |r| r.hash.clone());
            records.push(record(sequence, &previous));
        }
        records
    }

    fn verify(records: &[Record], head: i64, head_hash: &str) -> Option<Break> {
        let mut check = ChainCheck::default();
        for record in records {
            check.check(record);
        }
        check.finish(head, head_hash).1
    }

    #[test]
    fn an_intact_chain_verifies() {
        let records = chain(4);
        assert_eq!(verify(&records, 4, &records[3].hash), None);
        assert_eq!(verify(&[], 0, GENESIS_HASH), None);
    }

    #[test]
    fn every_kind_of_tampering_is_found_where_it_is() {
        let records = chain(4);
        let head = records[3].hash.clone();

        let mut edited = records.clone();
        edited[1].event.outcome = "REFUSED".into();
        assert_eq!(
            verify(&edited, 4, &head),
            Some(Break::Tampered { sequence: 2 })
        );

        let mut rehashed = records.clone();
        rehashed[1].event.actor = "mallory".into();
        rehashed[1].hash = rehashed[1].expected_hash();
        assert_eq!(
            verify(&rehashed, 4, &head),
            Some(Break::Unlinked { sequence: 3 })
        );

        let mut deleted = records.clone();
        deleted.remove(2);
        assert_eq!(
            verify(&deleted, 4, &head),
            Some(Break::Gap {
                expected: 3,
                found: 4
            })
        );

        let cut = &records[..3];
        assert_eq!(
            verify(cut, 4, &head),
            Some(Break::Truncated { last: 3, head: 4 })
        );
    }

    #[test]
    fn events_fall_into_their_report_sections() {
        let mut event = record(1, GENESIS_HASH).event;
        event
            .attributes
            .insert("amount_minor".into(), "1000000".into());
        assert_eq!(sections(&event, 1_000_000), [Section::LargeTransaction]);
        assert!(sections(&event, 1_000_001).is_empty());
        event.action = "transfer.declined".into();
        assert_eq!(
            sections(&event, 1),
            [Section::RejectedTransfer, Section::ReviewedTransfer]
        );
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn a_report_line_shows_amount_accounts_and_reason() {
        let mut posted = record(7, GENESIS_HASH);
        posted.event.attributes.extend([
            ("to_account_id".to_owned(), "acc_2".to_owned()),
            ("from_account_id".to_owned(), "acc_1".to_owned()),
            ("currency".to_owned(), "EUR".to_owned()),
            ("reason".to_owned(), "limit".to_owned()),
        ]);
        let line = ReportLine::new(Section::LargeTransaction, &posted);
        assert_eq!(line.sequence, 7);
        assert_eq!(line.accounts, "acc_1 acc_2");
        assert_eq!(
            line.amount,
            Some(Amount {
                currency: "EUR".into(),
                amount_minor: 5
            })
        );
        assert_eq!(line.detail, "limit");

        posted
            .event
            .attributes
            .insert("amount_minor".into(), "x".into());
        assert_eq!(
            ReportLine::new(Section::LargeTransaction, &posted).amount,
            None
        );
    }
}
