//! The gRPC face of the ledger: protobuf ↔ domain conversion, nothing
//! else. A request's own rules are in its contract and checked before a
//! handler runs; handlers check what a contract cannot say (two fields
//! compared), call the store and convert.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::{Money, PositiveMoney};
use meshwork_runtime::time::to_timestamp;
use meshwork_runtime::validate::{self as checked, Invalid, next_page_token};
use pb::account_service_server::AccountService;
use tonic::{Request, Response, Status};

use crate::balances::Balances;
use crate::domain::{
    Account, AccountNumber, AccountState, AccountType, Balance, Checks, JournalEntry,
    MoneyMovement, Movement, NewAccount, Posting, StateChange, TransferKind, TransferPosting,
};
use crate::error::AccountError;
use crate::store::{Applied, Store};

/// Implements `meshwork.finance.account.v1.AccountService`.
pub struct AccountApi {
    store: Store,
    balances: Balances,
}

impl AccountApi {
    /// The service over its store and balance cache.
    pub fn new(store: Store, balances: Balances) -> Self {
        Self { store, balances }
    }

    async fn change_state(
        &self,
        request_id: &str,
        account_id: &str,
        change: StateChange,
    ) -> Result<pb::Account, Status> {
        let (account, applied) = self
            .store
            .change_state(request_id, account_id, &change)
            .await?;
        match applied {
            Applied::Now => {
                tracing::info!(account = %account.id, change = change.name(), "account state changed")
            }
            Applied::Earlier => {
                tracing::info!(account = %account.id, change = change.name(), "request replayed")
            }
        }
        Ok(account_to_pb(&account))
    }

    async fn move_money(
        &self,
        movement: Movement,
        request_id: &str,
        account_id: &str,
        amount: Option<&PositiveMoney>,
        memo: &str,
    ) -> Result<Posting, Status> {
        let (currency, amount_minor) = checked::amount("amount", amount)?;
        let movement = MoneyMovement {
            movement,
            account_id: account_id.to_owned(),
            currency,
            amount_minor,
            memo: memo.to_owned(),
        };
        let posted = self.store.post(request_id, &movement).await?;
        match posted.applied {
            Applied::Now => {
                for balance in &posted.balances {
                    self.balances.changed(balance).await;
                }
            }
            Applied::Earlier => {
                // The first call may have died between its commit and its
                // cache update: drop both balances, the next read reloads.
                self.balances.invalidate(account_id).await;
                self.balances.invalidate(&posted.settlement_id).await;
                tracing::info!(posting = %posted.posting.id, "request replayed");
            }
        }
        let posting = posted.posting;
        Ok(posting)
    }
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        let request = request.into_inner();
        let currency = checked::currency("currency", &request.currency)?;
        let account_type = match pb::AccountType::try_from(request.r#type) {
            Ok(pb::AccountType::Checking) => AccountType::Checking,
            Ok(pb::AccountType::Savings) => AccountType::Savings,
            Ok(pb::AccountType::Merchant) => AccountType::Merchant,
            _ => Err(Invalid::field(
                "type",
                "must be CHECKING, SAVINGS or MERCHANT",
            ))?,
        };
        let new = NewAccount {
            owner_id: request.owner_id,
            currency,
            account_type,
        };
        let (account, applied) = self.store.create_account(&request.request_id, &new).await?;
        match applied {
            Applied::Now => {
                tracing::info!(account = %account.id, number = %account.number, "account opened")
            }
            Applied::Earlier => tracing::info!(account = %account.id, "request replayed"),
        }
        Ok(Response::new(pb::CreateAccountResponse {
            account: Some(account_to_pb(&account)),
        }))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let request = request.into_inner();
        let account = self.store.account(&request.account_id).await?;
        Ok(Response::new(pb::GetAccountResponse {
            account: Some(account_to_pb(&account)),
        }))
    }

    async fn lookup_account(
        &self,
        request: Request<pb::LookupAccountRequest>,
    ) -> Result<Response<pb::LookupAccountResponse>, Status> {
        let request = request.into_inner();
        let number = AccountNumber::parse(&request.account_number).map_err(|reason| {
            AccountError::from(meshwork_runtime::validate::Invalid(vec![
                meshwork_runtime::errors::Violation::new("account_number", reason),
            ]))
        })?;
        let account = self
            .store
            .account_by_number(&number)
            .await?
            .ok_or_else(|| AccountError::NotFound(number.masked()))?;
        Ok(Response::new(pb::LookupAccountResponse {
            account: Some(account_to_pb(&account)),
        }))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let request = request.into_inner();
        let page_size = checked::page_size(request.page_size);
        let after = checked::page_token(&request.page_token);
        let mut accounts = self
            .store
            .list_accounts(&request.owner_id, after.as_deref(), page_size + 1)
            .await?;
        let next_page_token = next_page_token(&mut accounts, page_size, |a| a.id.clone());
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.iter().map(account_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn close_account(
        &self,
        request: Request<pb::CloseAccountRequest>,
    ) -> Result<Response<pb::CloseAccountResponse>, Status> {
        let request = request.into_inner();
        let account = self
            .change_state(&request.request_id, &request.account_id, StateChange::Close)
            .await?;
        Ok(Response::new(pb::CloseAccountResponse {
            account: Some(account),
        }))
    }

    async fn freeze_account(
        &self,
        request: Request<pb::FreezeAccountRequest>,
    ) -> Result<Response<pb::FreezeAccountResponse>, Status> {
        let request = request.into_inner();
        let change = StateChange::Freeze {
            reason: request.reason,
        };
        let account = self
            .change_state(&request.request_id, &request.account_id, change)
            .await?;
        Ok(Response::new(pb::FreezeAccountResponse {
            account: Some(account),
        }))
    }

    async fn unfreeze_account(
        &self,
        request: Request<pb::UnfreezeAccountRequest>,
    ) -> Result<Response<pb::UnfreezeAccountResponse>, Status> {
        let request = request.into_inner();
        let change = StateChange::Unfreeze {
            reason: request.reason,
        };
        let account = self
            .change_state(&request.request_id, &request.account_id, change)
            .await?;
        Ok(Response::new(pb::UnfreezeAccountResponse {
            account: Some(account),
        }))
    }

    async fn deposit(
        &self,
        request: Request<pb::DepositRequest>,
    ) -> Result<Response<pb::DepositResponse>, Status> {
        let r = request.into_inner();
        let posting = self
            .move_money(
                Movement::Deposit,
                &r.request_id,
                &r.account_id,
                r.amount.as_ref(),
                &r.memo,
            )
            .await?;
        Ok(Response::new(pb::DepositResponse {
            posting: Some(posting_to_pb(&posting)),
        }))
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::WithdrawResponse>, Status> {
        let r = request.into_inner();
        let posting = self
            .move_money(
                Movement::Withdrawal,
                &r.request_id,
                &r.account_id,
                r.amount.as_ref(),
                &r.memo,
            )
            .await?;
        Ok(Response::new(pb::WithdrawResponse {
            posting: Some(posting_to_pb(&posting)),
        }))
    }

    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::GetBalanceResponse>, Status> {
        let request = request.into_inner();
        let balance = self.balances.get(&request.account_id).await?;
        Ok(Response::new(pb::GetBalanceResponse {
            balance: Some(balance_to_pb(&balance)),
        }))
    }

    async fn batch_get_balances(
        &self,
        request: Request<pb::BatchGetBalancesRequest>,
    ) -> Result<Response<pb::BatchGetBalancesResponse>, Status> {
        // One to a thousand ids: the contract's rule.
        let request = request.into_inner();
        let balances = self.store.balances(&request.account_ids).await?;
        Ok(Response::new(pb::BatchGetBalancesResponse {
            balances: balances.iter().map(balance_to_pb).collect(),
        }))
    }

    async fn post_transfer(
        &self,
        request: Request<pb::PostTransferRequest>,
    ) -> Result<Response<pb::PostTransferResponse>, Status> {
        let r = request.into_inner();
        let mut checks = Checks::new();
        if r.from_account_id == r.to_account_id {
            checks.fail("to_account_id", "must differ from from_account_id");
        }
        checks.finish()?;
        let kind = match pb::TransferKind::try_from(r.kind) {
            Ok(pb::TransferKind::Transfer) => TransferKind::Transfer,
            Ok(pb::TransferKind::Reversal) => TransferKind::Reversal,
            _ => Err(Invalid::field("kind", "must be TRANSFER or REVERSAL"))?,
        };
        let (currency, amount_minor) = checked::amount("amount", r.amount.as_ref())?;
        let transfer = TransferPosting {
            transfer_id: r.transfer_id,
            kind,
            from_account_id: r.from_account_id,
            to_account_id: r.to_account_id,
            currency,
            amount_minor,
            memo: r.memo,
        };
        let posted = self.store.transfer(&transfer).await?;
        match posted.applied {
            Applied::Now => {
                for balance in &posted.balances {
                    self.balances.changed(balance).await;
                }
            }
            Applied::Earlier => {
                // As for deposits: the first call may have died before its
                // cache update.
                self.balances.invalidate(&transfer.from_account_id).await;
                self.balances.invalidate(&transfer.to_account_id).await;
                tracing::info!(posting = %posted.posting.id, "transfer replayed");
            }
        }
        let posting = posted.posting;
        Ok(Response::new(pb::PostTransferResponse {
            to_balance_after: money(&posting.currency, posting.counterparty_balance_after_minor),
            posting: Some(posting_to_pb(&posting)),
        }))
    }

    async fn list_journal_entries(
        &self,
        request: Request<pb::ListJournalEntriesRequest>,
    ) -> Result<Response<pb::ListJournalEntriesResponse>, Status> {
        let request = request.into_inner();
        let page_size = checked::page_size(request.page_size);
        let before = checked::page_token(&request.page_token);
        let mut checks = Checks::new();
        let period = checks.period(
            ("start_time", request.start_time.as_ref()),
            ("end_time", request.end_time.as_ref()),
            false,
        );
        checks.finish()?;
        let mut entries = self
            .store
            .journal(
                &request.account_id,
                period,
                before.as_deref(),
                page_size + 1,
            )
            .await?;
        let next_page_token = next_page_token(&mut entries, page_size, |e| e.id.clone());
        Ok(Response::new(pb::ListJournalEntriesResponse {
            entries: entries.iter().map(entry_to_pb).collect(),
            next_page_token,
        }))
    }
}

fn account_to_pb(account: &Account) -> pb::Account {
    pb::Account {
        account_id: account.id.clone(),
        account_number: account.number.expose().to_owned(),
        masked_account_number: account.number.masked(),
        owner_id: account.owner_id.clone(),
        currency: account.currency.to_string(),
        r#type: match account.account_type {
            AccountType::Checking => pb::AccountType::Checking,
            AccountType::Savings => pb::AccountType::Savings,
            AccountType::Merchant => pb::AccountType::Merchant,
            AccountType::Settlement => pb::AccountType::Settlement,
        } as i32,
        state: match account.state {
            AccountState::Active => pb::AccountState::Active,
            AccountState::Frozen => pb::AccountState::Frozen,
            AccountState::Closed => pb::AccountState::Closed,
        } as i32,
        freeze_reason: account.freeze_reason.clone(),
        create_time: Some(to_timestamp(account.created_at)),
        update_time: Some(to_timestamp(account.updated_at)),
    }
}

fn money(currency: &crate::domain::Currency, amount_minor: i64) -> Option<Money> {
    Some(Money {
        currency: currency.to_string(),
        amount_minor,
    })
}

fn posting_to_pb(posting: &Posting) -> pb::Posting {
    pb::Posting {
        posting_id: posting.id.clone(),
        kind: posting.kind.clone(),
        amount: money(&posting.currency, posting.amount_minor),
        memo: posting.memo.clone(),
        balance_after: money(&posting.currency, posting.balance_after_minor),
        create_time: Some(to_timestamp(posting.created_at)),
    }
}

fn balance_to_pb(balance: &Balance) -> pb::Balance {
    pb::Balance {
        account_id: balance.account_id.clone(),
        balance: money(&balance.currency, balance.balance_minor),
        version: balance.version,
    }
}

fn entry_to_pb(entry: &JournalEntry) -> pb::JournalEntry {
    pb::JournalEntry {
        entry_id: entry.id.clone(),
        posting_id: entry.posting_id.clone(),
        account_id: entry.account_id.clone(),
        amount: money(&entry.currency, entry.amount_minor),
        kind: entry.kind.clone(),
        create_time: Some(to_timestamp(entry.created_at)),
        balance_after: money(&entry.currency, entry.balance_after_minor),
    }
}
