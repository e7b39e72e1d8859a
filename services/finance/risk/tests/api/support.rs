//! The risk service and the ledger it asks about account ages.

use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::risk::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::time::Clock;
use meshwork_testkit::{Backend, Mesh};
use tonic::transport::Channel;

pub type Risk = pb::risk_service_client::RiskServiceClient<Channel>;
pub type Accounts = account_pb::account_service_client::AccountServiceClient<Channel>;

pub struct Harness {
    #[allow(dead_code)]
    pub mesh: Mesh,
    pub risk: Risk,
    pub accounts: Accounts,
}

/// Risk control and the ledger it asks about account ages. The clock
/// stands at T0 (10:00 UTC), so accounts opened here are opened in daylight
/// whenever the suite runs.
pub async fn start(backend: &Backend) -> Harness {
    let mesh = Mesh::builder(backend)
        .await
        .clock(Clock::fixed(T0 * 1_000_000))
        .start(&[&finance_account::SERVICE, &finance_risk::SERVICE])
        .await;
    Harness {
        risk: Risk::new(mesh.channel().await),
        accounts: Accounts::new(mesh.channel().await),
        mesh,
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
        amount: Some(PositiveMoney {
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
