//! Two real services wired as in production: the transaction service calls
//! the ledger through the mesh client, here through a proxy that a test can
//! cut to lose answers on purpose.

use std::time::Duration;

use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::audit::v1 as audit_pb;
use meshwork_proto::meshwork::finance::risk::v1 as risk_pb;
use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::client::ClientPolicy;
use meshwork_runtime::db::DbConfig;
use meshwork_testkit::{Backend, Mesh, TcpProxy, with_host_port};
use tonic::transport::Channel;

pub type Accounts = account_pb::account_service_client::AccountServiceClient<Channel>;
pub type Trail = audit_pb::audit_service_client::AuditServiceClient<Channel>;
pub type Rules = risk_pb::risk_service_client::RiskServiceClient<Channel>;
pub type Transactions = pb::transaction_service_client::TransactionServiceClient<Channel>;

/// The ledger, risk control, the audit trail and the transaction service,
/// started as `meshwork up` starts them, and clients.
pub struct Harness {
    /// The services run as long as the harness lives.
    #[allow(dead_code)]
    pub mesh: Mesh,
    /// Risk control's API (rules, policy, assessments).
    pub rules: Rules,
    /// Between the audit trail and both services' event logs.
    pub audit_proxy: TcpProxy,
    /// The audit trail's API.
    pub trail: Trail,
    /// Between the transaction service and the ledger.
    pub proxy: TcpProxy,
    pub accounts: Accounts,
    pub transfers: Transactions,
    /// The databases of both, to reach behind the services' backs.
    pub ledger_db: DbConfig,
    pub service_db: DbConfig,
}

/// How the harness is set up.
pub struct Options {
    pub call_policy: finance_transaction::CallPolicy,
    pub settle_interval: Duration,
    pub settle_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            call_policy: finance_transaction::CallPolicy::default(),
            // Long enough that tests not about the settler never meet it.
            settle_interval: Duration::from_secs(3600),
            settle_after: Duration::from_secs(3600),
        }
    }
}

pub async fn start(backend: &Backend) -> Harness {
    start_with(backend, Options::default()).await
}

pub async fn start_with(backend: &Backend, options: Options) -> Harness {
    let builder = Mesh::builder(backend).await;
    let url = builder.url();
    // The audit trail and the ledger, each behind a proxy a test can cut.
    let audit_proxy = TcpProxy::start(builder.addr()).await;
    let proxy = TcpProxy::start(builder.addr()).await;
    let millis = |d: Duration| format!("{}ms", d.as_millis());
    let policy = options.call_policy;
    let mesh = builder
        // The audit trail reads the producers' event logs through its proxy.
        .upstream_for(
            finance_audit::TARGET,
            finance_account::TARGET,
            with_host_port(&url, audit_proxy.addr()),
        )
        .upstream_for(
            finance_audit::TARGET,
            finance_transaction::TARGET,
            with_host_port(&url, audit_proxy.addr()),
        )
        // Only the transaction service's calls to the ledger cross this one.
        .upstream_for(
            finance_transaction::TARGET,
            finance_account::TARGET,
            with_host_port(&url, proxy.addr()),
        )
        .client_policy(ClientPolicy {
            timeout: Duration::from_secs(5),
            max_attempts: 2,
            base_backoff: Duration::from_millis(20),
            attempt_timeout: None,
        })
        .flag(format!(
            "--transaction-settle-interval={}",
            millis(options.settle_interval)
        ))
        .flag(format!(
            "--transaction-settle-after={}",
            millis(options.settle_after)
        ))
        .flag(format!(
            "--transaction-attempt-timeout={}",
            millis(policy.attempt_timeout)
        ))
        .flag(format!("--transaction-attempts={}", policy.attempts))
        .flag(format!("--transaction-backoff={}", millis(policy.backoff)))
        .start(&[
            &finance_account::SERVICE,
            &finance_audit::SERVICE,
            &finance_risk::SERVICE,
            &finance_transaction::SERVICE,
        ])
        .await;
    Harness {
        accounts: Accounts::new(mesh.channel().await),
        rules: Rules::new(mesh.channel().await),
        trail: Trail::new(mesh.channel().await),
        transfers: Transactions::new(mesh.channel().await),
        ledger_db: mesh.db_config(finance_account::TARGET),
        service_db: mesh.db_config(finance_transaction::TARGET),
        mesh,
        audit_proxy,
        proxy,
    }
}

/// A request id nobody used.
pub fn rid() -> String {
    format!("req-{}", uuid::Uuid::now_v7().simple())
}

pub fn eur(amount_minor: i64) -> Option<PositiveMoney> {
    Some(PositiveMoney {
        currency: "EUR".to_owned(),
        amount_minor,
    })
}

/// Opens an EUR account with `opening` deposited; returns its id.
pub async fn funded(accounts: &mut Accounts, owner: &str, opening: i64) -> String {
    let account = accounts
        .create_account(account_pb::CreateAccountRequest {
            request_id: rid(),
            owner_id: owner.to_owned(),
            currency: "EUR".to_owned(),
            r#type: account_pb::AccountType::Checking as i32,
        })
        .await
        .expect("create account")
        .into_inner()
        .account
        .expect("account");
    if opening > 0 {
        accounts
            .deposit(account_pb::DepositRequest {
                request_id: rid(),
                account_id: account.account_id.clone(),
                amount: eur(opening),
                memo: "opening".to_owned(),
            })
            .await
            .expect("deposit");
    }
    account.account_id
}

pub fn transfer_request(
    request_id: &str,
    from: &str,
    to: &str,
    amount: i64,
) -> pb::TransferRequest {
    pb::TransferRequest {
        request_id: request_id.to_owned(),
        from_account_id: from.to_owned(),
        to_account_id: to.to_owned(),
        amount: eur(amount),
        memo: "test".to_owned(),
    }
}

pub async fn transfer(
    client: &mut Transactions,
    request: pb::TransferRequest,
) -> Result<pb::Transfer, tonic::Status> {
    client
        .transfer(request)
        .await
        .map(|r| r.into_inner().transfer.expect("transfer"))
}

pub async fn get(client: &mut Transactions, transfer_id: &str) -> pb::Transfer {
    client
        .get_transfer(pb::GetTransferRequest {
            transfer_id: transfer_id.to_owned(),
        })
        .await
        .expect("get transfer")
        .into_inner()
        .transfer
        .expect("transfer")
}

pub async fn reverse(
    client: &mut Transactions,
    request_id: &str,
    transfer_id: &str,
) -> Result<pb::Transfer, tonic::Status> {
    client
        .reverse_transfer(pb::ReverseTransferRequest {
            request_id: request_id.to_owned(),
            transfer_id: transfer_id.to_owned(),
            reason: "customer dispute".to_owned(),
        })
        .await
        .map(|r| r.into_inner().transfer.expect("transfer"))
}

/// Balances of `ids` from one snapshot read.
pub async fn balances(accounts: &mut Accounts, ids: &[String]) -> Vec<i64> {
    accounts
        .batch_get_balances(account_pb::BatchGetBalancesRequest {
            account_ids: ids.to_vec(),
        })
        .await
        .expect("balances")
        .into_inner()
        .balances
        .iter()
        .map(|b| b.balance.as_ref().expect("money").amount_minor)
        .collect()
}

/// Every transfer the service knows, oldest first.
pub async fn all_transfers(client: &mut Transactions) -> Vec<pb::Transfer> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_transfers(pb::ListTransfersRequest {
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("list transfers")
            .into_inner();
        all.extend(page.transfers);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

pub fn state(transfer: &pb::Transfer) -> pb::TransferState {
    pb::TransferState::try_from(transfer.state).expect("known state")
}

pub use meshwork_testkit::{eventually, reason, violated_fields};
