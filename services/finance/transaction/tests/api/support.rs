//! Two real services wired as in production: the transaction service calls
//! the ledger through the mesh client, here through a proxy that a test can
//! cut to lose answers on purpose.

use std::time::Duration;

use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::audit::v1 as audit_pb;
use meshwork_proto::meshwork::finance::risk::v1 as risk_pb;
use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::client::{self, ClientPolicy};
use meshwork_runtime::db::DbConfig;
use meshwork_runtime::outbox::{self, Relay};
use meshwork_runtime::shutdown::Shutdown;
use meshwork_runtime::storage::Storage;
use meshwork_testkit::{Backend, TcpProxy, TestServer, target_of, with_host_port};
use tonic::transport::Channel;

pub type Accounts = account_pb::account_service_client::AccountServiceClient<Channel>;
pub type Trail = audit_pb::audit_service_client::AuditServiceClient<Channel>;
pub type Rules = risk_pb::risk_service_client::RiskServiceClient<Channel>;
pub type Transactions = pb::transaction_service_client::TransactionServiceClient<Channel>;

/// The ledger, the transaction service in front of it, and clients.
pub struct Harness {
    /// The servers run as long as the harness lives.
    #[allow(dead_code)]
    pub ledger: TestServer,
    #[allow(dead_code)]
    pub service: TestServer,
    #[allow(dead_code)]
    pub risk: TestServer,
    /// Risk control's API (rules, policy, assessments).
    pub rules: Rules,
    #[allow(dead_code)]
    pub audit: TestServer,
    /// Between both services' outbox relays and the audit trail.
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
    shutdown: Shutdown,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
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
    let ledger_db = backend.fresh_db_config();
    let service_db = backend.fresh_db_config();
    let shutdown = Shutdown::new();
    // The audit trail, behind a proxy a test can cut to take it away.
    let audit_storage = backend.storage(&finance_audit::MIGRATOR).await;
    let audit = TestServer::start(|grpc, health| {
        finance_audit::register(
            grpc,
            health,
            audit_storage,
            finance_audit::Masking::standard(),
        )
    })
    .await;
    let audit_proxy = TcpProxy::start(target_of(&audit.url())).await;
    let audit_channel = || {
        client::channel(
            &with_host_port(&audit.url(), audit_proxy.addr()),
            ClientPolicy::default(),
        )
        .expect("audit channel")
    };
    let ledger_storage = Storage::open(
        &ledger_db,
        &backend.fresh_cache_config(),
        &finance_account::MIGRATOR,
    )
    .await
    .expect("ledger storage");
    let ledger_relay = Relay::new(
        ledger_storage.db.clone(),
        outbox::audit_sink(finance_account::TARGET, audit_channel()),
    );
    let ledger_outbox = ledger_relay.outbox();
    tokio::spawn(ledger_relay.run(shutdown.clone()));
    let ledger = TestServer::start(|grpc, health| {
        finance_account::register(
            grpc,
            health,
            ledger_storage,
            ledger_outbox,
            meshwork_runtime::time::Clock::system(),
        )
    })
    .await;
    let risk_storage = Storage::open(
        &backend.fresh_db_config(),
        &backend.fresh_cache_config(),
        &finance_risk::MIGRATOR,
    )
    .await
    .expect("risk storage");
    let counters = backend.counters().await;
    let risk_ledger = client::channel(&ledger.url(), ClientPolicy::default()).expect("channel");
    let risk = TestServer::start(|grpc, health| {
        finance_risk::register(grpc, health, risk_storage, counters, risk_ledger)
    })
    .await;
    let proxy = TcpProxy::start(target_of(&ledger.url())).await;
    let storage = Storage::open(
        &service_db,
        &backend.fresh_cache_config(),
        &finance_transaction::MIGRATOR,
    )
    .await
    .expect("service storage");
    let deps = finance_transaction::Deps {
        ledger: client::channel(
            &with_host_port(&ledger.url(), proxy.addr()),
            ClientPolicy {
                timeout: Duration::from_secs(5),
                max_attempts: 2,
                base_backoff: Duration::from_millis(20),
            },
        )
        .expect("ledger channel"),
        risk: client::channel(&risk.url(), ClientPolicy::default()).expect("risk channel"),
        audit: Some(audit_channel()),
        call_policy: options.call_policy,
        settle_interval: options.settle_interval,
        settle_after: options.settle_after,
        shutdown: shutdown.clone(),
    };
    let service = TestServer::start(|grpc, health| {
        finance_transaction::register(grpc, health, storage, deps)
    })
    .await;
    let accounts = Accounts::new(ledger.plain_channel().await);
    let rules = Rules::new(risk.plain_channel().await);
    let trail = Trail::new(audit.plain_channel().await);
    let transfers = Transactions::new(service.plain_channel().await);
    Harness {
        audit,
        audit_proxy,
        trail,
        ledger,
        risk,
        rules,
        service,
        proxy,
        accounts,
        transfers,
        ledger_db,
        service_db,
        shutdown,
    }
}

/// A request id nobody used.
pub fn rid() -> String {
    format!("req-{}", uuid::Uuid::now_v7().simple())
}

pub fn eur(amount_minor: i64) -> Option<Money> {
    Some(Money {
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
