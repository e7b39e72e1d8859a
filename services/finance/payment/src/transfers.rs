//! Transfers (finance.transaction) as payments need them: settle with the
//! merchant, debit a refund, give it back. The only place in this crate
//! that speaks the transaction service's protobuf.

use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::client::MeshChannel;
use pb::transaction_service_client::TransactionServiceClient;

use crate::upstream::{Failed, failed};

const SERVICE: &str = "finance.transaction";

/// A transfer to ask for.
#[derive(Debug, Clone, Copy)]
pub struct Move<'a> {
    /// Idempotency key.
    pub request_id: &'a str,
    /// From this account.
    pub from_account_id: &'a str,
    /// To this one.
    pub to_account_id: &'a str,
    /// The currency of both.
    pub currency: &'a str,
    /// Positive, minor units.
    pub amount_minor: i64,
    /// Shown on both statements.
    pub memo: &'a str,
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// Posted: the money moved. Its id.
    Posted(String),
    /// Refused (by risk control or the ledger) or failed: why.
    Refused(String),
    /// Posted, then reversed: why it failed, if it says.
    Reversed(String),
    /// Held for review or still in flight (its state's name).
    Pending(String),
}

/// A client of the transaction service.
#[derive(Clone)]
pub struct Transfers {
    client: TransactionServiceClient<MeshChannel>,
}

impl Transfers {
    /// The transaction service behind `channel`.
    pub fn new(channel: MeshChannel) -> Self {
        Self {
            client: TransactionServiceClient::new(channel),
        }
    }

    /// Asks for the transfer (once per `request_id`) and says where it stands.
    pub async fn transfer(&self, m: Move<'_>) -> Result<Transfer, Failed> {
        let request = pb::TransferRequest {
            request_id: m.request_id.to_owned(),
            from_account_id: m.from_account_id.to_owned(),
            to_account_id: m.to_account_id.to_owned(),
            amount: Some(PositiveMoney {
                currency: m.currency.to_owned(),
                amount_minor: m.amount_minor,
            }),
            memo: m.memo.to_owned(),
        };
        let transfer = self
            .client
            .clone()
            .transfer(request)
            .await
            .map_err(|status| failed(SERVICE, &status))?
            .into_inner()
            .transfer
            .unwrap_or_default();
        use pb::TransferState as S;
        let state = S::try_from(transfer.state).unwrap_or(S::Unspecified);
        Ok(match state {
            S::Posted => Transfer::Posted(transfer.transfer_id),
            S::Rejected | S::Failed => Transfer::Refused(transfer.failure_reason),
            S::Reversed => Transfer::Reversed(transfer.failure_reason),
            other => Transfer::Pending(other.as_str_name().to_owned()),
        })
    }
}
