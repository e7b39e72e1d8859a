//! Every service a payment touches, each on its own port and storage.

use std::time::Duration;

use bytes::Bytes;
use finance_payment::credentials::{self, Credentials};
use finance_payment::sandbox::{Behaviour, Sandbox};
use meshwork_gateway::edge::{Gateway, GatewayConfig};
use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::audit::v1 as audit_pb;
use meshwork_proto::meshwork::finance::payment::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::client::{self, ClientPolicy};
use meshwork_runtime::http_client::{Answer, HttpClient};
use meshwork_runtime::outbox::{self, Relay};
use meshwork_runtime::shutdown::Shutdown;
use meshwork_testkit::{Backend, TestServer};
use tonic::transport::Channel;

pub type Accounts = account_pb::account_service_client::AccountServiceClient<Channel>;
pub type Trail = audit_pb::audit_service_client::AuditServiceClient<Channel>;
pub type PaymentsClient = pb::payment_service_client::PaymentServiceClient<Channel>;

/// The services, the sandbox, the edge, and clients.
pub struct Harness {
    _servers: Vec<TestServer>,
    pub sandbox: Sandbox,
    /// The channels as the service sees them (to ask the provider).
    pub channels: finance_payment::Channels,
    /// The service's workflow (to run a sync pass at a chosen time).
    pub workflow: finance_payment::workflow::Payments,
    /// `http://127.0.0.1:<port>` of the REST edge.
    pub edge: String,
    pub accounts: Accounts,
    pub trail: Trail,
    pub payments: PaymentsClient,
    /// A merchant account (CNY) that payments credit.
    pub merchant: String,
    shutdown: Shutdown,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// How a test sets the world up.
pub struct Options {
    pub behaviour: Behaviour,
    pub sync_interval: Duration,
    pub sync_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            behaviour: Behaviour {
                delay: Duration::from_millis(50),
                ..Behaviour::default()
            },
            // Long enough that tests not about the sync job never meet it.
            sync_interval: Duration::from_secs(3600),
            sync_after: Duration::from_secs(3600),
        }
    }
}

pub fn rid() -> String {
    format!("req-{}", uuid::Uuid::now_v7())
}

pub fn cny(amount_minor: i64) -> Option<Money> {
    Some(Money {
        currency: "CNY".into(),
        amount_minor,
    })
}

pub async fn start(backend: &Backend, options: Options) -> Harness {
    let shutdown = Shutdown::new();
    let mut servers = Vec::new();
    let channel = |server: &TestServer| {
        client::channel(&server.url(), ClientPolicy::default()).expect("channel")
    };

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

    let ledger_storage = backend.storage(&finance_account::MIGRATOR).await;
    let relay = Relay::new(
        ledger_storage.db.clone(),
        outbox::audit_sink(finance_account::TARGET, channel(&audit)),
    );
    let ledger_outbox = relay.outbox();
    tokio::spawn(relay.run(shutdown.clone()));
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

    let risk_storage = backend.storage(&finance_risk::MIGRATOR).await;
    let counters = backend.counters().await;
    let risk_ledger = channel(&ledger);
    let risk = TestServer::start(|grpc, health| {
        finance_risk::register(grpc, health, risk_storage, counters, risk_ledger)
    })
    .await;

    let transaction_storage = backend.storage(&finance_transaction::MIGRATOR).await;
    let deps = finance_transaction::Deps {
        ledger: channel(&ledger),
        risk: channel(&risk),
        audit: Some(channel(&audit)),
        call_policy: finance_transaction::CallPolicy::default(),
        settle_interval: Duration::from_secs(1),
        settle_after: Duration::from_secs(2),
        shutdown: shutdown.clone(),
    };
    let transactions = TestServer::start(|grpc, health| {
        finance_transaction::register(grpc, health, transaction_storage, deps)
    })
    .await;

    // The sandbox and the edge need their addresses before the payment
    // service (which calls the one and is called back through the other).
    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr().unwrap());
    let (file, keys) = credentials::pair_with_sandbox(&sandbox_url);
    let sandbox = Sandbox::new(keys, options.behaviour);
    let stop = shutdown.clone();
    tokio::spawn(
        sandbox
            .clone()
            .serve(sandbox_listener, async move { stop.cancelled().await }),
    );
    let edge_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = format!("http://{}", edge_listener.local_addr().unwrap());

    let payment_storage = backend.storage(&finance_payment::MIGRATOR).await;
    let deps = finance_payment::Deps {
        channels: finance_payment::Channels::new(
            Credentials::from_file(&file).unwrap(),
            HttpClient::new(Duration::from_secs(5)),
            300,
        ),
        ledger: channel(&ledger),
        transfers: channel(&transactions),
        audit: Some(channel(&audit)),
        notify_base_url: edge.clone(),
        sync_interval: options.sync_interval,
        sync_after: options.sync_after,
        shutdown: shutdown.clone(),
    };
    let mut workflow = None;
    let payment = TestServer::start(|grpc, health| {
        workflow = Some(finance_payment::register(
            grpc,
            health,
            payment_storage,
            deps,
        ));
    })
    .await;

    let payment_url = payment.url();
    let gateway = Gateway::new(
        |_| client::channel(&payment_url, ClientPolicy::default()).expect("channel"),
        GatewayConfig::default(),
    )
    .expect("routes");
    let (reporter, _) = tonic_health::server::health_reporter();
    let router = meshwork_gateway::router(
        meshwork_gateway::Readiness::local(reporter),
        Some(std::sync::Arc::new(gateway)),
    );
    let stop = shutdown.clone();
    tokio::spawn(meshwork_gateway::serve(edge_listener, router, async move {
        stop.cancelled().await
    }));

    let mut accounts = Accounts::new(ledger.plain_channel().await);
    let merchant = accounts
        .create_account(account_pb::CreateAccountRequest {
            request_id: rid(),
            owner_id: "merchant-1".into(),
            currency: "CNY".into(),
            r#type: account_pb::AccountType::Merchant as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap()
        .account_id;
    let trail = Trail::new(audit.plain_channel().await);
    let payments = PaymentsClient::new(payment.plain_channel().await);
    servers.extend([audit, ledger, risk, transactions, payment]);
    Harness {
        _servers: servers,
        sandbox,
        workflow: workflow.expect("registered"),
        channels: finance_payment::Channels::new(
            Credentials::from_file(&file).unwrap(),
            HttpClient::new(Duration::from_secs(5)),
            300,
        ),
        edge,
        accounts,
        trail,
        payments,
        merchant,
        shutdown,
    }
}

impl Harness {
    pub async fn create(&mut self, channel: pb::Channel, amount_minor: i64) -> pb::Payment {
        self.payments
            .create_payment(pb::CreatePaymentRequest {
                request_id: rid(),
                merchant_account_id: self.merchant.clone(),
                merchant_order_ref: format!("order-{}", uuid::Uuid::now_v7()),
                amount: cny(amount_minor),
                channel: channel as i32,
                ..Default::default()
            })
            .await
            .expect("create payment")
            .into_inner()
            .payment
            .unwrap()
    }

    pub async fn get(&mut self, payment_id: &str) -> pb::Payment {
        self.payments
            .get_payment(pb::GetPaymentRequest {
                payment_id: payment_id.into(),
            })
            .await
            .expect("get payment")
            .into_inner()
            .payment
            .unwrap()
    }

    /// Waits until `done` holds for the payment (at most 20 s).
    pub async fn wait_for(
        &mut self,
        payment_id: &str,
        what: &str,
        done: impl Fn(&pb::Payment) -> bool,
    ) -> pb::Payment {
        for _ in 0..400 {
            let payment = self.get(payment_id).await;
            if done(&payment) {
                return payment;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "payment {payment_id} never became {what}: {:?}",
            self.get(payment_id).await
        );
    }

    /// Waits until the merchant is credited for the payment.
    pub async fn settled(&mut self, payment_id: &str) -> pb::Payment {
        self.wait_for(payment_id, "settled", |p| {
            p.settlement_state == pb::SettlementState::Settled as i32
        })
        .await
    }

    pub async fn balance(&mut self, account_id: &str) -> i64 {
        self.accounts
            .get_balance(account_pb::GetBalanceRequest {
                account_id: account_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .balance
            .unwrap()
            .balance
            .unwrap()
            .amount_minor
    }

    /// The audit trail's actions about `payment_id`.
    pub async fn audited(&mut self, resource: &str) -> Vec<(String, String)> {
        let records = self
            .trail
            .query_audit_log(audit_pb::QueryAuditLogRequest {
                source: finance_payment::TARGET.into(),
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        records
            .into_iter()
            .filter_map(|r| r.event)
            .filter(|e| e.resource == resource)
            .map(|e| (e.action, e.outcome))
            .collect()
    }

    /// POSTs a notification to the REST edge, as a provider would.
    pub async fn post_notification(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(String, String)],
        body: String,
    ) -> Answer {
        let mut pairs = vec![(http::header::CONTENT_TYPE, content_type.to_owned())];
        for (name, value) in headers {
            pairs.push((
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.clone(),
            ));
        }
        HttpClient::new(Duration::from_secs(10))
            .send(
                "test notification",
                http::Method::POST,
                &format!("{}/v1/payment-notifications/{path}", self.edge),
                &pairs,
                Bytes::from(body),
            )
            .await
            .expect("the edge answers")
    }
}
