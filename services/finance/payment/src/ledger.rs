//! The ledger (finance.account) as payments need it: check a merchant's
//! account, open a channel's clearing account, move money into and out of
//! it. The only place in this crate that speaks the ledger's protobuf.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::client::MeshChannel;
use pb::account_service_client::AccountServiceClient;
use tonic::Code;

use crate::error::PaymentError;
use crate::upstream::{Failed, failed, unanswered};

const SERVICE: &str = "finance.account";

/// What payments need to know of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFacts {
    /// Its currency.
    pub currency: String,
    /// Active (neither frozen nor closed).
    pub active: bool,
    /// A settlement account (the ledger's own counter-account).
    pub settlement: bool,
}

/// A movement into or out of an account.
#[derive(Debug, Clone, Copy)]
pub struct Movement<'a> {
    /// Idempotency key.
    pub request_id: &'a str,
    /// The account.
    pub account_id: &'a str,
    /// Its currency.
    pub currency: &'a str,
    /// Positive, minor units.
    pub amount_minor: i64,
    /// Shown on the statement.
    pub memo: &'a str,
}

/// A client of the ledger.
#[derive(Clone)]
pub struct Ledger {
    client: AccountServiceClient<MeshChannel>,
}

impl Ledger {
    /// The ledger behind `channel`.
    pub fn new(channel: MeshChannel) -> Self {
        Self {
            client: AccountServiceClient::new(channel),
        }
    }

    /// The facts of `account_id`; `None` when the ledger does not know it.
    pub async fn account(&self, account_id: &str) -> Result<Option<AccountFacts>, PaymentError> {
        let request = pb::GetAccountRequest {
            account_id: account_id.to_owned(),
        };
        match self.client.clone().get_account(request).await {
            Ok(answer) => {
                let account = answer.into_inner().account.unwrap_or_default();
                Ok(Some(AccountFacts {
                    active: account.state == pb::AccountState::Active as i32,
                    settlement: account.r#type == pb::AccountType::Settlement as i32,
                    currency: account.currency,
                }))
            }
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(unanswered(SERVICE, &status)),
        }
    }

    /// Opens (once per `request_id`) a checking account of `owner_id` in
    /// `currency`; its id.
    pub async fn open_account(
        &self,
        request_id: &str,
        owner_id: &str,
        currency: &str,
    ) -> Result<String, PaymentError> {
        let request = pb::CreateAccountRequest {
            request_id: request_id.to_owned(),
            owner_id: owner_id.to_owned(),
            currency: currency.to_owned(),
            r#type: pb::AccountType::Checking as i32,
        };
        let created = self
            .client
            .clone()
            .create_account(request)
            .await
            .map_err(|status| unanswered(SERVICE, &status))?;
        created
            .into_inner()
            .account
            .map(|a| a.account_id)
            .ok_or_else(|| PaymentError::internal("CreateAccount answered no account"))
    }

    /// Money entering the system into an account.
    pub async fn deposit(&self, movement: Movement<'_>) -> Result<(), Failed> {
        let request = pb::DepositRequest {
            request_id: movement.request_id.to_owned(),
            account_id: movement.account_id.to_owned(),
            amount: amount(&movement),
            memo: movement.memo.to_owned(),
        };
        self.client
            .clone()
            .deposit(request)
            .await
            .map(drop)
            .map_err(|status| failed(SERVICE, &status))
    }

    /// Money leaving the system from an account.
    pub async fn withdraw(&self, movement: Movement<'_>) -> Result<(), Failed> {
        let request = pb::WithdrawRequest {
            request_id: movement.request_id.to_owned(),
            account_id: movement.account_id.to_owned(),
            amount: amount(&movement),
            memo: movement.memo.to_owned(),
        };
        self.client
            .clone()
            .withdraw(request)
            .await
            .map(drop)
            .map_err(|status| failed(SERVICE, &status))
    }
}

fn amount(movement: &Movement<'_>) -> Option<PositiveMoney> {
    Some(PositiveMoney {
        currency: movement.currency.to_owned(),
        amount_minor: movement.amount_minor,
    })
}
