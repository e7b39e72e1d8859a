//! The `platform` rows: what Meshwork's server stack costs. GetBalance of
//! cached accounts through the full stack (trace layer, metrics, limits,
//! health, reflection, the cache) against a bare tonic server answering
//! the same RPC with a constant: no layers, no storage, same client.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use pb::account_service_client::AccountServiceClient;
use pb::account_service_server::{AccountService, AccountServiceServer};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Answers GetBalance with a constant; every other method is
/// UNIMPLEMENTED (tonic's default stubs).
struct Bare;

#[tonic::async_trait]
impl AccountService for Bare {
    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::GetBalanceResponse>, Status> {
        Ok(Response::new(pb::GetBalanceResponse {
            balance: Some(pb::Balance {
                account_id: request.into_inner().account_id,
                balance: Some(Money {
                    currency: "EUR".into(),
                    amount_minor: 1_000_000,
                }),
                ..Default::default()
            }),
        }))
    }
}

/// A bare tonic server on port 0 and a client of it.
pub async fn bare_server() -> anyhow::Result<AccountServiceClient<Channel>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AccountServiceServer::new(Bare))
            .serve_with_incoming(incoming),
    );
    let channel = tonic::transport::Endpoint::from_shared(url)?
        .connect()
        .await?;
    Ok(AccountServiceClient::new(channel))
}
