//! The ledger (finance.account) as risk control needs it: when an account
//! was opened. The only place in this crate that speaks the ledger's
//! protobuf; the engine sees microseconds.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_runtime::client::MeshChannel;
use meshwork_runtime::time::from_timestamp;
use pb::account_service_client::AccountServiceClient;

use crate::error::RiskError;

/// A client of the ledger.
#[derive(Clone)]
pub struct Ledger {
    client: AccountServiceClient<MeshChannel>,
}

impl Ledger {
    /// The ledger behind `channel`.
    pub fn new(channel: MeshChannel) -> Self {
        Self {
            client: AccountServiceClient::new(channel),
        }
    }

    /// When the ledger opened `account_id` (microseconds since the epoch);
    /// `None` when it does not know it (the transfer will be refused by the
    /// ledger anyway).
    pub async fn opened_at(&self, account_id: &str) -> Result<Option<i64>, RiskError> {
        let request = pb::GetAccountRequest {
            account_id: account_id.to_owned(),
        };
        match self.client.clone().get_account(request).await {
            Ok(response) => Ok(response
                .into_inner()
                .account
                .and_then(|a| a.create_time)
                .as_ref()
                .map(from_timestamp)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(RiskError::Ledger(status.message().to_owned())),
        }
    }
}
