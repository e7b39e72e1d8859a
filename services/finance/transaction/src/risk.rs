//! Risk control (finance.risk) as this service needs it: one decision per
//! transfer. Assess is idempotent by transfer id, so asking again after a
//! lost answer returns the first decision, never a second opinion.

use meshwork_proto::meshwork::finance::risk::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::client::MeshChannel;
use pb::risk_service_client::RiskServiceClient;

use crate::domain::{Risk, RiskDecision, Transfer};

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
}

impl RiskControl {
    /// Risk control behind `channel` (its policy says how hard to try).
    pub fn new(channel: MeshChannel) -> Self {
        Self {
            client: RiskServiceClient::new(channel),
        }
    }

    /// Risk control's decision on `transfer`.
    pub async fn assess(&self, transfer: &Transfer) -> Assessed {
        let details = &transfer.details;
        let request = pb::AssessRequest {
            transfer_id: transfer.id.clone(),
            from_account_id: details.from_account_id.clone(),
            to_account_id: details.to_account_id.clone(),
            amount: Some(PositiveMoney {
                currency: details.currency.to_string(),
                amount_minor: details.amount_minor,
            }),
            occur_time: Some(meshwork_runtime::time::to_timestamp(transfer.created_at)),
        };
        match self.client.clone().assess(request).await {
            Ok(response) => decided(response.into_inner()),
            Err(status) => {
                tracing::warn!(transfer = %transfer.id, code = ?status.code(), message = status.message(), "no decision yet");
                Assessed::Unknown(format!("{:?}: {}", status.code(), status.message()))
            }
        }
    }
}

/// Risk control's answer in this service's terms.
fn decided(response: pb::AssessResponse) -> Assessed {
    let assessment = response.assessment.unwrap_or_default();
    let decision = match pb::Decision::try_from(assessment.decision) {
        Ok(pb::Decision::Approve) => RiskDecision::Approve,
        Ok(pb::Decision::Review) => RiskDecision::Review,
        Ok(pb::Decision::Reject) => RiskDecision::Reject,
        _ => return Assessed::Unknown("risk control gave no decision".into()),
    };
    Assessed::Decided(Risk {
        decision,
        score: assessment.score,
        reasons: assessment
            .hits
            .iter()
            .map(|hit| format!("{}: {}", hit.name, hit.reason))
            .collect(),
    })
}
