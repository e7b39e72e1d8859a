//! grpc.health.v1 follows the database, and goes NOT_SERVING on shutdown.

use finance_account::{SERVICE, SERVICE_NAME, TARGET};
use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_testkit::{Backend, Mesh, TcpProxy, on_each_backend, target_of, with_host_port};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::*;

async fn status(server: &Mesh, service: &str) -> ServingStatus {
    let mut health = HealthClient::new(server.channel().await);
    match health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
    {
        Ok(response) => response.into_inner().status(),
        Err(_) => ServingStatus::Unknown,
    }
}

on_each_backend!(async fn serving_until_shutdown_starts(backend) {
    let h = start(&backend).await;
    let mut health = HealthClient::new(h.server.channel().await);
    let check = |service: &'static str| {
        let mut health = health.clone();
        async move { health.check(HealthCheckRequest { service: service.into() }).await.map(|r| r.into_inner().status()).ok() }
    };
    assert!(eventually(|| async { check(SERVICE_NAME).await == Some(ServingStatus::Serving) }).await);
    assert!(eventually(|| async { check("").await == Some(ServingStatus::Serving) }).await);

    h.server.begin_shutdown();
    // Within the shutdown grace the server still answers, and says NOT_SERVING.
    let not_serving = eventually(|| async { check(SERVICE_NAME).await == Some(ServingStatus::NotServing) }).await;
    assert!(not_serving);
    let overall = health.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(overall.status(), ServingStatus::NotServing);
});

/// Cuts the service off from PostgreSQL through a proxy and gives it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_serving_while_the_database_is_unreachable() {
    let Some(backend) = Backend::servers() else {
        return;
    };
    let mut db = backend.fresh_db_config();
    let proxy = TcpProxy::start(target_of(&db.url)).await;
    db.url = with_host_port(&db.url, proxy.addr());
    db.acquire_timeout = std::time::Duration::from_millis(500);
    let server = Mesh::builder(&backend)
        .await
        .db(TARGET, db)
        .start(&[&SERVICE])
        .await;

    assert!(
        eventually(|| async { status(&server, SERVICE_NAME).await == ServingStatus::Serving })
            .await
    );
    proxy.cut();
    assert!(
        eventually(|| async { status(&server, SERVICE_NAME).await == ServingStatus::NotServing })
            .await,
        "still SERVING without a database"
    );
    assert_eq!(status(&server, "").await, ServingStatus::NotServing);
    proxy.restore();
    assert!(
        eventually(|| async { status(&server, SERVICE_NAME).await == ServingStatus::Serving })
            .await,
        "not SERVING again after the database came back"
    );
}

/// Started while PostgreSQL is out of reach, the service waits for it (the
/// port answers health NOT_SERVING meanwhile) and serves once it is back,
/// instead of exiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_started_before_its_database_waits_for_it() {
    let Some(backend) = Backend::servers() else {
        return;
    };
    let mut db = backend.fresh_db_config();
    let proxy = TcpProxy::start(target_of(&db.url)).await;
    db.url = with_host_port(&db.url, proxy.addr());
    db.acquire_timeout = std::time::Duration::from_millis(300);
    proxy.cut();
    let builder = Mesh::builder(&backend).await.db(TARGET, db);
    let url = builder.url();
    let starting = tokio::spawn(async move { builder.start(&[&SERVICE]).await });
    let check = |service: &'static str| {
        let url = url.clone();
        async move {
            let Ok(channel) = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect()
                .await
            else {
                return ServingStatus::Unknown;
            };
            match HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
            {
                Ok(response) => response.into_inner().status(),
                Err(_) => ServingStatus::Unknown,
            }
        }
    };
    assert!(
        eventually(|| async { check(SERVICE_NAME).await == ServingStatus::NotServing }).await,
        "no NOT_SERVING answer while waiting for the database"
    );
    assert_eq!(check("").await, ServingStatus::NotServing);
    // The service's own methods say "not yet" in a way callers retry.
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let early = pb::account_service_client::AccountServiceClient::new(channel)
        .get_account(pb::GetAccountRequest {
            account_id: "acc_x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::Unavailable, "{early:?}");
    assert!(!starting.is_finished(), "it gave up instead of waiting");
    proxy.restore();
    let server = starting.await.unwrap();
    assert!(
        eventually(|| async { status(&server, SERVICE_NAME).await == ServingStatus::Serving })
            .await
    );
}
