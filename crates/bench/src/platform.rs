//! The `platform` rows: what Meshwork's server stack costs. GetBalance of
//! cached accounts through the full stack (trace layer, metrics, limits,
//! health, reflection, the cache) against a bare tonic server answering
//! the same RPC with a constant: no layers, no storage, same client.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use pb::account_service_client::AccountServiceClient;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Answers GetBalance with a constant.
#[derive(Clone)]
struct Bare;

impl tonic::server::UnaryService<pb::GetBalanceRequest> for Bare {
    type Response = pb::GetBalanceResponse;
    type Future = std::future::Ready<Result<Response<pb::GetBalanceResponse>, Status>>;

    fn call(&mut self, request: Request<pb::GetBalanceRequest>) -> Self::Future {
        std::future::ready(Ok(Response::new(pb::GetBalanceResponse {
            balance: Some(pb::Balance {
                account_id: request.into_inner().account_id,
                balance: Some(Money {
                    currency: "EUR".into(),
                    amount_minor: 1_000_000,
                }),
                ..Default::default()
            }),
        })))
    }
}

/// The bare server's one route, written out as tonic's generated code does
/// but with prost's own codec: the generated servers validate requests
/// (see `meshwork_proto::validate`), and the baseline is tonic with nothing
/// of Meshwork's.
#[derive(Clone)]
struct BareRoute;

impl tonic::server::NamedService for BareRoute {
    const NAME: &'static str = "meshwork.finance.account.v1.AccountService";
}

impl Service<http::Request<tonic::body::Body>> for BareRoute {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() == "/meshwork.finance.account.v1.AccountService/GetBalance" {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(Bare, request).await)
            } else {
                Ok(Status::unimplemented("only GetBalance").into_http())
            }
        })
    }
}

/// A bare tonic server on port 0 and a client of it.
pub async fn bare_server() -> anyhow::Result<AccountServiceClient<Channel>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BareRoute)
            .serve_with_incoming(incoming),
    );
    let channel = tonic::transport::Endpoint::from_shared(url)?
        .connect()
        .await?;
    Ok(AccountServiceClient::new(channel))
}
