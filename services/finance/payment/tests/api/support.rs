//! Every service a payment touches, each on its own port and storage.

use std::time::Duration;

use bytes::Bytes;
use finance_payment::sandbox::{Behaviour, Sandbox};
use meshwork_gateway::edge::GatewayConfig;
use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::audit::v1 as audit_pb;
use meshwork_proto::meshwork::finance::payment::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::http_client::{Answer, HttpClient};
use meshwork_testkit::{Backend, Mesh};
use tonic::transport::Channel;

pub type Accounts = account_pb::account_service_client::AccountServiceClient<Channel>;
pub type Trail = audit_pb::audit_service_client::AuditServiceClient<Channel>;
pub type PaymentsClient = pb::payment_service_client::PaymentServiceClient<Channel>;

/// The services, the sandbox, the edge, and clients.
pub struct Harness {
    _mesh: Mesh,
    pub sandbox: Sandbox,
    /// The channels as the service sees them (to ask the provider).
    pub channels: std::sync::Arc<finance_payment::Channels>,
    /// The service's workflow (to run a sync pass at a chosen time).
    pub workflow: finance_payment::workflow::Payments,
    /// `http://127.0.0.1:<port>` of the REST edge.
    pub edge: String,
    pub accounts: Accounts,
    pub trail: Trail,
    pub payments: PaymentsClient,
    /// A merchant account (CNY) that payments credit.
    pub merchant: String,
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

pub fn cny(amount_minor: i64) -> Option<PositiveMoney> {
    Some(PositiveMoney {
        currency: "CNY".into(),
        amount_minor,
    })
}

pub async fn start(backend: &Backend, options: Options) -> Harness {
    let millis = |d: Duration| format!("{}ms", d.as_millis());
    let behaviour = &options.behaviour;
    let mesh = Mesh::builder(backend)
        .await
        .edge(GatewayConfig::default())
        .flag("--transaction-settle-interval=1s")
        .flag("--transaction-settle-after=2s")
        .flag("--payment-sandbox-addr=127.0.0.1:0")
        .flag(format!(
            "--payment-sandbox-delay={}",
            millis(behaviour.delay)
        ))
        .flag(format!(
            "--payment-sandbox-decline-rate={}",
            behaviour.decline_rate
        ))
        .flag(format!(
            "--payment-sandbox-lost-rate={}",
            behaviour.lost_rate
        ))
        .flag(format!("--payment-sandbox-copies={}", behaviour.copies))
        .flag(format!(
            "--payment-sync-interval={}",
            millis(options.sync_interval)
        ))
        .flag(format!(
            "--payment-sync-after={}",
            millis(options.sync_after)
        ))
        .start(&[
            &finance_account::SERVICE,
            &finance_audit::SERVICE,
            &finance_risk::SERVICE,
            &finance_transaction::SERVICE,
            &finance_payment::SERVICE,
            &finance_payment::SANDBOX,
        ])
        .await;
    let edge = mesh.edge_url().expect("the edge runs");

    let mut accounts = Accounts::new(mesh.channel().await);
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
    Harness {
        sandbox: mesh.get(),
        workflow: mesh.get(),
        channels: mesh.get(),
        edge,
        accounts,
        trail: Trail::new(mesh.channel().await),
        payments: PaymentsClient::new(mesh.channel().await),
        merchant,
        _mesh: mesh,
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
