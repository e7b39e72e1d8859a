//! Everything that can go wrong in finance.account, and the one mapping of it
//! to gRPC statuses. Reasons in `ErrorInfo` are stable: clients branch on them.

use meshwork_runtime::errors::{self, Common};
use tonic::Status;

/// An account service error.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No such account.
    #[error("account {0} not found")]
    NotFound(String),
    /// Frozen accounts move no money.
    #[error("account {account_id} is frozen")]
    Frozen { account_id: String },
    /// Closed accounts do nothing.
    #[error("account {account_id} is closed")]
    Closed { account_id: String },
    /// Freeze of a frozen account.
    #[error("account {account_id} is already frozen")]
    AlreadyFrozen { account_id: String },
    /// Unfreeze of an active account.
    #[error("account {account_id} is not frozen")]
    NotFrozen { account_id: String },
    /// Close with money left.
    #[error("account {account_id} still has a balance")]
    BalanceNotZero { account_id: String },
    /// Withdrawal beyond the balance.
    #[error("account {account_id} has insufficient funds")]
    InsufficientFunds { account_id: String },
    /// Amount in another currency than the account's.
    #[error("account {account_id} holds {account_currency}, not {requested}")]
    CurrencyMismatch {
        account_id: String,
        account_currency: String,
        requested: String,
    },
    /// A balance would leave the supported range.
    #[error("account {account_id} would exceed the balance limit")]
    BalanceLimit { account_id: String },
    /// Settlement accounts are moved only by postings.
    #[error("account {account_id} is a settlement account")]
    SettlementAccount { account_id: String },
    /// A refusal recorded earlier for the same transfer id, replayed.
    #[error("{message}")]
    Recorded {
        reason: String,
        account_id: String,
        message: String,
    },
    /// A concurrent change won; the client may retry.
    #[error("account {0} changed concurrently")]
    Conflict(String),
    /// What every service shares: invalid requests, reused request ids,
    /// the database, anything else.
    #[error(transparent)]
    Common(Common),
}

meshwork_runtime::common_errors!(AccountError);

/// How a final refusal is kept in the idempotency table.
const RECORD_PREFIX: &str = "refused:";

impl AccountError {
    /// The stable reason of a refusal that a retry cannot change by itself
    /// (the account's state or funds decided it), as kept for replays;
    /// `None` for errors worth retrying.
    pub fn record(&self) -> Option<String> {
        use AccountError::*;
        let (reason, account_id) = match self {
            NotFound(id) => ("ACCOUNT_NOT_FOUND", id),
            Frozen { account_id } => ("ACCOUNT_FROZEN", account_id),
            Closed { account_id } => ("ACCOUNT_CLOSED", account_id),
            InsufficientFunds { account_id } => ("INSUFFICIENT_FUNDS", account_id),
            CurrencyMismatch { account_id, .. } => ("CURRENCY_MISMATCH", account_id),
            BalanceLimit { account_id } => ("BALANCE_LIMIT", account_id),
            SettlementAccount { account_id } => ("SETTLEMENT_ACCOUNT", account_id),
            Recorded {
                reason, account_id, ..
            } => (reason.as_str(), account_id),
            _ => return None,
        };
        Some(format!("{RECORD_PREFIX}{reason}|{account_id}|{self}"))
    }

    /// The refusal kept by [`AccountError::record`], if `stored` is one.
    pub fn from_record(stored: &str) -> Option<Self> {
        let mut parts = stored.strip_prefix(RECORD_PREFIX)?.splitn(3, '|');
        Some(Self::Recorded {
            reason: parts.next()?.to_owned(),
            account_id: parts.next()?.to_owned(),
            message: parts.next()?.to_owned(),
        })
    }
}

impl From<AccountError> for Status {
    fn from(error: AccountError) -> Self {
        use AccountError::*;
        let resource = |id: &str| format!("accounts/{id}");
        match &error {
            Common(common) => common.status(),
            NotFound(id) => errors::not_found("account", &resource(id)),
            Frozen { account_id } => errors::failed_precondition(
                "ACCOUNT_FROZEN",
                &resource(account_id),
                &error.to_string(),
            ),
            Closed { account_id } => errors::failed_precondition(
                "ACCOUNT_CLOSED",
                &resource(account_id),
                &error.to_string(),
            ),
            AlreadyFrozen { account_id } => errors::failed_precondition(
                "ACCOUNT_ALREADY_FROZEN",
                &resource(account_id),
                &error.to_string(),
            ),
            NotFrozen { account_id } => errors::failed_precondition(
                "ACCOUNT_NOT_FROZEN",
                &resource(account_id),
                &error.to_string(),
            ),
            BalanceNotZero { account_id } => errors::failed_precondition(
                "BALANCE_NOT_ZERO",
                &resource(account_id),
                &error.to_string(),
            ),
            InsufficientFunds { account_id } => errors::failed_precondition(
                "INSUFFICIENT_FUNDS",
                &resource(account_id),
                &error.to_string(),
            ),
            CurrencyMismatch { account_id, .. } => errors::failed_precondition(
                "CURRENCY_MISMATCH",
                &resource(account_id),
                &error.to_string(),
            ),
            BalanceLimit { account_id } => errors::failed_precondition(
                "BALANCE_LIMIT",
                &resource(account_id),
                &error.to_string(),
            ),
            SettlementAccount { account_id } => errors::failed_precondition(
                "SETTLEMENT_ACCOUNT",
                &resource(account_id),
                &error.to_string(),
            ),
            Recorded {
                reason, account_id, ..
            } if reason == "ACCOUNT_NOT_FOUND" => {
                errors::not_found("account", &resource(account_id))
            }
            Recorded {
                reason,
                account_id,
                message,
            } => errors::failed_precondition(reason, &resource(account_id), message),
            Conflict(_) => errors::aborted("CONCURRENT_UPDATE", &error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_refusals_round_trip_through_their_record() {
        let refused = AccountError::InsufficientFunds {
            account_id: "acc_1".into(),
        };
        let record = refused.record().unwrap();
        let replayed = AccountError::from_record(&record).unwrap();
        assert_eq!(replayed.record().unwrap(), record);
        assert_eq!(replayed.to_string(), refused.to_string());
        let (a, b) = (Status::from(refused), Status::from(replayed));
        assert_eq!((a.code(), a.message()), (b.code(), b.message()));
        assert_eq!(a.details(), b.details());
        assert!(AccountError::Conflict("acc_1".into()).record().is_none());
        assert!(AccountError::from_record("pst_123").is_none());
    }
}
