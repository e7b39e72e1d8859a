//! Balances read through the cache are never stale after a change.

use meshwork_proto::meshwork::finance::account::v1::account_service_client::AccountServiceClient;
use meshwork_testkit::{Backend, Mesh, on_each_backend};

use crate::support::*;

on_each_backend!(async fn a_change_is_visible_at_once_through_the_cached_path(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "lena", "EUR").await.account_id;
    assert_eq!(balance(&mut h.client, &a).await, 0, "warms the cache");
    assert_eq!(balance(&mut h.client, &a).await, 0, "served from the cache");
    deposit(&mut h.client, &a, "EUR", 4_200).await.unwrap();
    assert_eq!(balance(&mut h.client, &a).await, 4_200);
    withdraw(&mut h.client, &a, "EUR", 200).await.unwrap();
    assert_eq!(balance(&mut h.client, &a).await, 4_000);
    // The settlement account's cached balance moves with every posting too.
    assert_eq!(balance(&mut h.client, "stl_EUR").await, -4_000);
    deposit(&mut h.client, &a, "EUR", 1).await.unwrap();
    assert_eq!(balance(&mut h.client, "stl_EUR").await, -4_001);
});

/// Two replicas over one database and one Redis: a change made through one
/// evicts the other's in-process copy (Redis pub/sub), so neither serves a
/// stale balance. Needs Redis: embedded mode is one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_through_one_replica_is_seen_by_the_other() {
    let Some(backend) = Backend::servers() else {
        return;
    };
    let db = backend.fresh_db_config();
    // In-process entries would outlive the whole test: only the Redis
    // broadcast can make replica two see the change in time.
    let mut cache = backend.fresh_cache_config();
    cache.local_ttl = std::time::Duration::from_secs(600);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let server = Mesh::builder(&backend)
            .await
            .db(finance_account::TARGET, db.clone())
            .cache(finance_account::TARGET, cache.clone())
            .start(&[&finance_account::SERVICE])
            .await;
        let client = AccountServiceClient::new(server.channel().await);
        replicas.push((server, client));
    }
    let (mut one, mut two) = (replicas[0].1.clone(), replicas[1].1.clone());
    let a = open(&mut one, "mia", "EUR").await.account_id;
    assert_eq!(
        balance(&mut two, &a).await,
        0,
        "replica two caches the balance"
    );
    deposit(&mut one, &a, "EUR", 990).await.unwrap();
    let seen = eventually(|| {
        let mut two = two.clone();
        let a = a.clone();
        async move { balance(&mut two, &a).await == 990 }
    })
    .await;
    assert!(seen, "replica two kept serving a stale balance");
}
