//! What the tests share: a started service and a client, and short helpers.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_testkit::{Backend, Mesh};
use pb::account_service_client::AccountServiceClient;
use tonic::transport::Channel;

pub type Client = AccountServiceClient<Channel>;

/// One running account service and a client of it.
pub struct Harness {
    pub server: Mesh,
    pub client: Client,
}

/// Starts the account service on fresh storage of `backend`.
pub async fn start(backend: &Backend) -> Harness {
    let server = Mesh::start(backend, &[&finance_account::SERVICE]).await;
    let client = AccountServiceClient::new(server.channel().await);
    Harness { server, client }
}

/// A request id nobody used.
pub fn rid() -> String {
    format!("req-{}", uuid::Uuid::now_v7().simple())
}

pub fn money(currency: &str, amount_minor: i64) -> Option<PositiveMoney> {
    Some(PositiveMoney {
        currency: currency.to_owned(),
        amount_minor,
    })
}

/// Opens a checking account of `owner` in `currency`.
pub async fn open(client: &mut Client, owner: &str, currency: &str) -> pb::Account {
    client
        .create_account(pb::CreateAccountRequest {
            request_id: rid(),
            owner_id: owner.to_owned(),
            currency: currency.to_owned(),
            r#type: pb::AccountType::Checking as i32,
        })
        .await
        .expect("create account")
        .into_inner()
        .account
        .expect("account in response")
}

pub async fn deposit(
    client: &mut Client,
    account_id: &str,
    currency: &str,
    amount: i64,
) -> Result<pb::Posting, tonic::Status> {
    client
        .deposit(pb::DepositRequest {
            request_id: rid(),
            account_id: account_id.to_owned(),
            amount: money(currency, amount),
            memo: "test deposit".to_owned(),
        })
        .await
        .map(|r| r.into_inner().posting.expect("posting"))
}

pub async fn withdraw(
    client: &mut Client,
    account_id: &str,
    currency: &str,
    amount: i64,
) -> Result<pb::Posting, tonic::Status> {
    client
        .withdraw(pb::WithdrawRequest {
            request_id: rid(),
            account_id: account_id.to_owned(),
            amount: money(currency, amount),
            memo: String::new(),
        })
        .await
        .map(|r| r.into_inner().posting.expect("posting"))
}

pub async fn balance(client: &mut Client, account_id: &str) -> i64 {
    client
        .get_balance(pb::GetBalanceRequest {
            account_id: account_id.to_owned(),
        })
        .await
        .expect("get balance")
        .into_inner()
        .balance
        .and_then(|b| b.balance)
        .expect("balance")
        .amount_minor
}

pub async fn journal(client: &mut Client, account_id: &str) -> Vec<pb::JournalEntry> {
    client
        .list_journal_entries(pb::ListJournalEntriesRequest {
            account_id: account_id.to_owned(),
            page_size: 500,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .expect("journal")
        .into_inner()
        .entries
}

pub use meshwork_testkit::{eventually, reason, violated_fields};
