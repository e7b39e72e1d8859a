//! The ledger (finance.account) as this service needs it: post a transfer
//! and learn its outcome.
//!
//! A posting is idempotent by its key, so asking again is always safe: an
//! answer that got lost (an attempt's timeout, a dropped connection, the
//! ledger restarting) is asked for again with the same key by the mesh
//! client's retry loop until the ledger says either "posted" or "refused",
//! or the attempts or the caller's time run out. Only those two answers are
//! outcomes; everything else leaves the outcome unknown.

use std::time::Duration;

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::client::{ClientPolicy, MeshChannel};
use pb::account_service_client::AccountServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

use meshwork_runtime::time::{from_timestamp, to_timestamp};

use crate::domain::{LedgerEntry, NewTransfer, Refusal};
use crate::error::TransactionError;

/// Which way a posting moves the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// from → to: the transfer itself.
    Forward,
    /// to → from: its compensation.
    Reverse,
}

/// What the ledger said about a posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (now or by an earlier attempt); the posting's id.
    Posted(String),
    /// Refused; nothing moved, and the ledger remembers the refusal.
    Refused(Refusal),
    /// No answer could be had; why.
    Unknown(String),
}

/// How hard to try for an answer from another service (the ledger, risk
/// control) before leaving the outcome unknown.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// Deadline of one attempt (shortened to the caller's own deadline).
    pub attempt_timeout: Duration,
    /// Attempts before giving up with [`Outcome::Unknown`].
    pub attempts: u32,
    /// First pause between attempts; doubles, with jitter.
    pub backoff: Duration,
}

impl CallPolicy {
    /// The channel policy that carries it out: the mesh client's one retry
    /// loop asks again (the calls are idempotent by transfer id) while an
    /// attempt's answer is lost or the service is unavailable, within the
    /// attempts and the call's deadline; nothing here loops around it.
    pub fn client_policy(&self, base: ClientPolicy) -> ClientPolicy {
        ClientPolicy {
            max_attempts: self.attempts.max(1),
            base_backoff: self.backoff,
            attempt_timeout: Some(self.attempt_timeout),
            ..base
        }
    }
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(2),
            attempts: 4,
            backoff: Duration::from_millis(50),
        }
    }
}

/// A client of the ledger.
#[derive(Clone)]
pub struct Ledger {
    client: AccountServiceClient<MeshChannel>,
    reads: AccountServiceClient<MeshChannel>,
}

impl Ledger {
    /// The ledger: postings behind `postings` (whose policy says how hard
    /// to try for an outcome: see [`CallPolicy::client_policy`]), reads
    /// (accounts, journal pages) behind `reads`, with the plain policy, so
    /// that a large page is not cut short by a posting's attempt timeout.
    pub fn new(postings: MeshChannel, reads: MeshChannel) -> Self {
        Self {
            client: AccountServiceClient::new(postings),
            reads: AccountServiceClient::new(reads),
        }
    }

    /// Posts `transfer` (or its reversal) under `key` and learns the outcome.
    pub async fn post(&self, key: &str, transfer: &NewTransfer, direction: Direction) -> Outcome {
        let (from, to, kind) = match direction {
            Direction::Forward => (
                &transfer.from_account_id,
                &transfer.to_account_id,
                pb::TransferKind::Transfer,
            ),
            Direction::Reverse => (
                &transfer.to_account_id,
                &transfer.from_account_id,
                pb::TransferKind::Reversal,
            ),
        };
        let request = pb::PostTransferRequest {
            transfer_id: key.to_owned(),
            from_account_id: from.clone(),
            to_account_id: to.clone(),
            amount: Some(PositiveMoney {
                currency: transfer.currency.to_string(),
                amount_minor: transfer.amount_minor,
            }),
            memo: transfer.memo.clone(),
            kind: kind as i32,
        };
        match self.client.clone().post_transfer(request).await {
            Ok(response) => {
                let posting = response.into_inner().posting.unwrap_or_default();
                Outcome::Posted(posting.posting_id)
            }
            Err(status) => match refusal(&status) {
                Some(refused) => Outcome::Refused(refused),
                // Not "posted", not "refused": the caller's retry or the
                // settler asks again under the same key.
                None => {
                    tracing::warn!(key, code = ?status.code(), message = status.message(), "posting outcome not known yet");
                    Outcome::Unknown(format!("{:?}: {}", status.code(), status.message()))
                }
            },
        }
    }
}

impl Ledger {
    /// The currency of `account_id`.
    pub async fn currency(&self, account_id: &str) -> Result<String, TransactionError> {
        let request = pb::GetAccountRequest {
            account_id: account_id.to_owned(),
        };
        let account = self
            .reads
            .clone()
            .get_account(request)
            .await
            .map_err(|status| read_error(account_id, status))?
            .into_inner()
            .account
            .unwrap_or_default();
        Ok(account.currency)
    }

    /// The journal of `account_id` in `[start, end)`, oldest first.
    pub async fn journal(
        &self,
        account_id: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<LedgerEntry>, TransactionError> {
        let mut entries = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .journal_page(account_id, start, end, 500, &page_token)
                .await?;
            entries.extend(page.entries.into_iter().map(entry_from_pb));
            if page.next_page_token.is_empty() {
                entries.reverse();
                return Ok(entries);
            }
            page_token = page.next_page_token;
        }
    }

    /// The balance of `account_id` just before `at` (0 before its first
    /// entry).
    pub async fn balance_before(&self, account_id: &str, at: i64) -> Result<i64, TransactionError> {
        let page = self.journal_page(account_id, None, Some(at), 1, "").await?;
        Ok(page
            .entries
            .first()
            .and_then(|e| e.balance_after.as_ref())
            .map_or(0, |m| m.amount_minor))
    }

    async fn journal_page(
        &self,
        account_id: &str,
        start: Option<i64>,
        end: Option<i64>,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListJournalEntriesResponse, TransactionError> {
        let request = pb::ListJournalEntriesRequest {
            account_id: account_id.to_owned(),
            page_size,
            page_token: page_token.to_owned(),
            start_time: start.map(to_timestamp),
            end_time: end.map(to_timestamp),
        };
        self.reads
            .clone()
            .list_journal_entries(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| read_error(account_id, status))
    }
}

fn entry_from_pb(entry: pb::JournalEntry) -> LedgerEntry {
    LedgerEntry {
        posting_id: entry.posting_id,
        kind: entry.kind,
        amount_minor: entry.amount.map_or(0, |m| m.amount_minor),
        balance_after_minor: entry.balance_after.map_or(0, |m| m.amount_minor),
        created_at: entry.create_time.as_ref().map_or(0, from_timestamp),
    }
}

fn read_error(account_id: &str, status: tonic::Status) -> TransactionError {
    match status.code() {
        Code::NotFound => TransactionError::AccountNotFound(account_id.to_owned()),
        _ => TransactionError::Ledger(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// The ledger's definite "no": the account is missing, or its state, funds
/// or currency decided against the posting (or the request itself was bad).
/// Every other status (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, ABORTED,
/// INTERNAL, ...) says nothing about whether the posting happened.
fn refusal(status: &tonic::Status) -> Option<Refusal> {
    let code = match status.code() {
        Code::NotFound => "NOT_FOUND",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        _ => return None,
    };
    let details = status.get_error_details();
    let reason = details
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_else(|| code.to_owned());
    let subject = details
        .precondition_failure()
        .and_then(|failure| failure.violations.first().map(|v| v.subject.clone()))
        .or_else(|| {
            details
                .resource_info()
                .map(|info| info.resource_name.clone())
        })
        .unwrap_or_default();
    Some(Refusal {
        code: code.to_owned(),
        reason,
        subject,
        message: status.message().to_owned(),
    })
}
