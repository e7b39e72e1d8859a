//! Risk control (finance.risk) as this service needs it: one decision per
//! transfer. Assess is idempotent by transfer id, so asking again after a
//! lost answer returns the first decision, never a second opinion.

use std::time::Instant;

use meshwork_proto::meshwork::finance::risk::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::client::MeshChannel;
use meshwork_runtime::deadline;
use pb::risk_service_client::RiskServiceClient;

use crate::domain::{Risk, RiskDecision, Transfer};
use crate::ledger::CallPolicy;

/// What risk control said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessed {
    /// A decision.
    Decided(Risk),
    /// No answer could be had; why.
    Unknown(String),
}

/// A client of risk control.
#[derive(Clone)]
pub struct RiskControl {
    client: RiskServiceClient<MeshChannel>,
    policy: CallPolicy,
}

impl RiskControl {
    /// Risk control behind `channel`.
    pub fn new(channel: MeshChannel, policy: CallPolicy) -> Self {
        Self {
            client: RiskServiceClient::new(channel),
            policy,
        }
    }

    /// Risk control's decision on `transfer`.
    pub async fn assess(&self, transfer: &Transfer) -> Assessed {
        let details = &transfer.details;
        let request = pb::AssessRequest {
            transfer_id: transfer.id.clone(),
            from_account_id: details.from_account_id.clone(),
            to_account_id: details.to_account_id.clone(),
            amount: Some(Money {
                currency: details.currency.to_string(),
                amount_minor: details.amount_minor,
            }),
            occur_time: Some(meshwork_runtime::time::to_timestamp(transfer.created_at)),
        };
        let caller_deadline = deadline::current();
        let mut last = String::from("no attempt made");
        for attempt in 0..self.policy.attempts.max(1) {
            let attempt_deadline = Instant::now() + self.policy.attempt_timeout;
            let bound = match caller_deadline {
                Some(caller) if caller <= Instant::now() => break,
                Some(caller) => caller.min(attempt_deadline),
                None => attempt_deadline,
            };
            let mut client = self.client.clone();
            match deadline::scope(Some(bound), client.assess(request.clone())).await {
                Ok(response) => {
                    let assessment = response.into_inner().assessment.unwrap_or_default();
                    let decision = match pb::Decision::try_from(assessment.decision) {
                        Ok(pb::Decision::Approve) => RiskDecision::Approve,
                        Ok(pb::Decision::Review) => RiskDecision::Review,
                        Ok(pb::Decision::Reject) => RiskDecision::Reject,
                        _ => return Assessed::Unknown("risk control gave no decision".into()),
                    };
                    return Assessed::Decided(Risk {
                        decision,
                        score: assessment.score,
                        reasons: assessment
                            .hits
                            .iter()
                            .map(|hit| format!("{}: {}", hit.name, hit.reason))
                            .collect(),
                    });
                }
                Err(status) => {
                    tracing::warn!(transfer = %transfer.id, attempt, code = ?status.code(), message = status.message(), "risk decision not known yet");
                    last = format!("{:?}: {}", status.code(), status.message());
                }
            }
            let pause = self.policy.backoff * 2u32.saturating_pow(attempt);
            tokio::time::sleep(pause.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
        }
        Assessed::Unknown(last)
    }
}
