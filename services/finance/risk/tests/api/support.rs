//! The risk service and the ledger it asks about account ages.

use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::risk::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::client::{self, ClientPolicy};
use meshwork_testkit::{Backend, TestServer};
use tonic::transport::Channel;

pub type Risk = pb::risk_service_client::RiskServiceClient<Channel>;
pub type Accounts = account_pb::account_service_client::AccountServiceClient<Channel>;

pub struct Harness {
    #[allow(dead_code)]
    pub ledger: TestServer,
    #[allow(dead_code)]
    pub server: TestServer,
    pub risk: Risk,
    pub accounts: Accounts,
}

pub async fn start(backend: &Backend) -> Harness {
    let ledger_storage = backend.storage(&finance_account::MIGRATOR).await;
    let ledger = TestServer::start(|grpc, health| {
        finance_account::register(
            grpc,
            health,
            ledger_storage,
            meshwork_runtime::outbox::Outbox::detached(),
            // The ledger's clock stands at T0 (10:00 UTC), so accounts opened
            // here are opened in daylight whenever the suite runs.
            meshwork_runtime::time::Clock::fixed(T0 * 1_000_000),
        )
    })
    .await;
    let storage = backend.storage(&finance_risk::MIGRATOR).await;
    let counters = backend.counters().await;
    let channel = client::channel(&ledger.url(), ClientPolicy::default()).unwrap();
    let server = TestServer::start(|grpc, health| {
        finance_risk::register(grpc, health, storage, counters, channel)
    })
    .await;
    Harness {
        risk: Risk::new(server.plain_channel().await),
        accounts: Accounts::new(ledger.plain_channel().await),
        ledger,
        server,
    }
}

pub fn rid() -> String {
    format!("req-{}", uuid::Uuid::now_v7().simple())
}

pub fn rule(name: &str, score: i32, condition: pb::rule::Condition) -> pb::Rule {
    pb::Rule {
        name: name.to_owned(),
        score,
        condition: Some(condition),
        ..Default::default()
    }
}

pub async fn create(risk: &mut Risk, rule: pb::Rule) -> pb::Rule {
    risk.create_rule(pb::CreateRuleRequest {
        request_id: rid(),
        rule: Some(rule),
    })
    .await
    .expect("create rule")
    .into_inner()
    .rule
    .expect("rule")
}

/// 2026-11-25T10:00:00Z in seconds: a whole second, 10:00 UTC.
pub const T0: i64 = 1_795_600_800;

pub fn at(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

pub fn assess_request(
    transfer_id: &str,
    from: &str,
    amount_minor: i64,
    occur_time: Option<prost_types::Timestamp>,
) -> pb::AssessRequest {
    pb::AssessRequest {
        transfer_id: transfer_id.to_owned(),
        from_account_id: from.to_owned(),
        to_account_id: "acc_receiver".to_owned(),
        amount: Some(Money {
            currency: "EUR".to_owned(),
            amount_minor,
        }),
        occur_time,
    }
}

/// The decision and the names of the rules that fired.
pub async fn assess(risk: &mut Risk, request: pb::AssessRequest) -> (pb::Decision, Vec<String>) {
    let assessment = risk
        .assess(request)
        .await
        .expect("assess")
        .into_inner()
        .assessment
        .expect("assessment");
    (
        pb::Decision::try_from(assessment.decision).unwrap(),
        assessment.hits.into_iter().map(|h| h.name).collect(),
    )
}

pub use meshwork_testkit::{reason, violated_fields};
