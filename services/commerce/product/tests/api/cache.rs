//! The catalogue's cache as its users meet it: one database read for a
//! crowd, one round trip for a batch, absences cached, changes visible on
//! every replica, and reads that keep working without Redis.

use meshwork_proto::meshwork::commerce::product::v1 as pb;
use meshwork_testkit::{Backend, Mesh, TcpProxy, on_each_backend, target_of, with_host_port};
use tonic::Code;

use crate::support::*;

on_each_backend!(async fn five_hundred_cold_reads_of_one_product_are_one_database_read(backend) {
    let mut h = start(&backend).await;
    h.create(product("HOT-1", "kitchen", 1000)).await;
    // The write put the product in the cache: a crowd after a deploy meets
    // a cold one.
    let fresh = started(restart(&h, &backend).await).await;
    let before = fresh.reads();
    let crowd = (0..500).map(|_| {
        let mut products = fresh.products.clone();
        async move { products.get_product(pb::GetProductRequest { sku: "HOT-1".into() }).await.unwrap().into_inner().product.unwrap() }
    });
    let answers = futures::future::join_all(crowd).await;
    assert!(answers.iter().all(|p| *p == answers[0]), "500 identical answers");
    assert_eq!(answers[0].sku, "HOT-1");
    assert_eq!(fresh.reads() - before, 1, "one database read for 500 callers");
});

on_each_backend!(async fn a_batch_is_one_query_keeps_order_and_caches_what_is_missing(backend) {
    let mut h = start(&backend).await;
    let skus: Vec<String> = (0..1000).map(|i| format!("SKU-{i:04}")).collect();
    for sku in ["SKU-0001", "SKU-0500", "SKU-0999"] {
        h.create(product(sku, "kitchen", 100)).await;
    }
    let fresh = started(restart(&h, &backend).await).await;
    let mut products = fresh.products.clone();
    let before = fresh.reads();
    // Backwards, so that order is not the database's.
    let asked: Vec<String> = skus.iter().rev().cloned().collect();
    let answer = products.batch_get_products(pb::BatchGetProductsRequest { skus: asked.clone() }).await.unwrap().into_inner().products;
    assert_eq!(answer.iter().map(|p| p.sku.clone()).collect::<Vec<_>>(), asked, "in the order asked");
    let found: Vec<&str> = answer.iter().filter(|p| p.found).map(|p| p.sku.as_str()).collect();
    assert_eq!(found, ["SKU-0999", "SKU-0500", "SKU-0001"]);
    assert!(answer.iter().filter(|p| !p.found).all(|p| p.product.is_none()));
    assert_eq!(fresh.reads() - before, 1, "1000 SKUs, one query");
    // Again: everything is cached, the absences too.
    let again = products.batch_get_products(pb::BatchGetProductsRequest { skus: asked }).await.unwrap().into_inner().products;
    assert_eq!(again, answer);
    assert_eq!(fresh.reads() - before, 1, "no query for cached products or cached absences");
    let missing = products.get_product(pb::GetProductRequest { sku: "SKU-0002".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(fresh.reads() - before, 1, "a single read of a cached absence asks nobody");
});

on_each_backend!(async fn a_product_created_after_a_miss_is_found_at_once(backend) {
    let mut h = start(&backend).await;
    let before = h.reads();
    for _ in 0..3 {
        assert_eq!(h.get("LATE-1").await.unwrap_err().code(), Code::NotFound);
    }
    assert_eq!(h.reads() - before, 1, "the absence is cached");
    let created = h.create(product("LATE-1", "kitchen", 100)).await;
    assert_eq!(h.get("LATE-1").await.unwrap(), created, "the write replaced the cached absence");
    let mut batch = h.products.clone();
    let found = batch.batch_get_products(pb::BatchGetProductsRequest { skus: vec!["LATE-1".into()] }).await.unwrap().into_inner().products;
    assert!(found[0].found);
});

/// Two replicas over one database and one Redis: a change through one is
/// seen by the other, which held the old product in-process (Redis pub/sub
/// drops it). Needs Redis: embedded mode is one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_through_one_replica_is_seen_by_the_other() {
    let Some(backend) = Backend::servers() else {
        return;
    };
    let db = backend.fresh_db_config();
    let mut cache = backend.fresh_cache_config();
    // In-process entries would outlive the test: only the broadcast can
    // make replica two see the change.
    cache.local_ttl = std::time::Duration::from_secs(600);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mesh = Mesh::builder(&backend)
            .await
            .db(commerce_product::TARGET, db.clone())
            .cache(commerce_product::TARGET, cache.clone())
            .start(&[&commerce_product::SERVICE])
            .await;
        replicas.push(started(mesh).await);
    }
    let [mut one, mut two] = <[Harness; 2]>::try_from(replicas).ok().unwrap();
    one.create(product("P1", "kitchen", 1000)).await;
    assert_eq!(
        two.get("P1").await.unwrap().price.unwrap().amount_minor,
        1000,
        "replica two holds it"
    );
    let reads = two.reads();
    assert_eq!(
        two.get("P1").await.unwrap().price.unwrap().amount_minor,
        1000
    );
    assert_eq!(two.reads(), reads, "from its own memory");

    one.products
        .update_product(update_req(rid(), 1, product("P1", "kitchen", 1250)))
        .await
        .unwrap();
    let products = two.products.clone();
    let seen = eventually(|| {
        let mut products = products.clone();
        async move {
            let p = products
                .get_product(pb::GetProductRequest { sku: "P1".into() })
                .await
                .unwrap()
                .into_inner()
                .product
                .unwrap();
            p.price.unwrap().amount_minor == 1250
        }
    })
    .await;
    assert!(seen, "replica two sees the new price");
    one.products
        .delete_product(pb::DeleteProductRequest {
            request_id: rid(),
            sku: "P1".into(),
        })
        .await
        .unwrap();
    let products = two.products.clone();
    let gone = eventually(|| {
        let mut products = products.clone();
        async move {
            products
                .get_product(pb::GetProductRequest { sku: "P1".into() })
                .await
                .is_err()
        }
    })
    .await;
    assert!(gone, "and that it was deleted");
}

/// Redis goes away (its connections cut, new ones refused): every read,
/// in memory or not, single or batch, still answers (from memory or the
/// database); a write still commits, and once Redis is back no replica
/// reads the old version from it; the service stays SERVING throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_keep_answering_when_redis_dies() {
    let Some(backend) = Backend::servers() else {
        return;
    };
    let mut cache = backend.fresh_cache_config();
    // Short in-process lifetimes, so that reads during the outage are not
    // all served from memory.
    cache.local_ttl = std::time::Duration::from_millis(50);
    let redis_url = cache.redis_url.clone().unwrap();
    let proxy = TcpProxy::start(target_of(&redis_url)).await;
    cache.redis_url = Some(with_host_port(&redis_url, proxy.addr()));
    let mesh = Mesh::builder(&backend)
        .await
        .cache(commerce_product::TARGET, cache)
        .start(&[&commerce_product::SERVICE])
        .await;
    let mut h = started(mesh).await;
    for i in 0..20 {
        h.create(product(&format!("R-{i}"), "kitchen", 100 + i))
            .await;
    }
    assert_eq!(
        h.get("R-0").await.unwrap().price.unwrap().amount_minor,
        100,
        "in Redis now"
    );
    proxy.cut();
    let reads_before = h.reads();
    let mut errors = 0;
    for round in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await; // memory expires
        for i in 0..20 {
            if h.get(&format!("R-{i}")).await.is_err() {
                errors += 1;
            }
        }
        let skus: Vec<String> = (0..25).map(|i| format!("R-{i}")).collect();
        match h
            .products
            .batch_get_products(pb::BatchGetProductsRequest { skus })
            .await
        {
            Ok(found) => assert_eq!(
                found
                    .into_inner()
                    .products
                    .iter()
                    .filter(|p| p.found)
                    .count(),
                20,
                "round {round}"
            ),
            Err(_) => errors += 1,
        }
        if h.get("NEVER-THERE").await.unwrap_err().code() != Code::NotFound {
            errors += 1;
        }
    }
    assert_eq!(errors, 0, "no read failed while Redis was gone");
    assert!(h.reads() > reads_before, "the reads went to the database");
    // A write while Redis is away: committed, and read back.
    h.products
        .update_product(update_req(rid(), 1, product("R-0", "kitchen", 777)))
        .await
        .unwrap();
    assert_eq!(h.get("R-0").await.unwrap().price.unwrap().amount_minor, 777);
    // Several health probe rounds pass without Redis: still SERVING.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(h.mesh.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: commerce_product::SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Redis is back: it held the old R-0 (v1) all along, and nobody may
    // read that from it.
    proxy.restore();
    let products = h.products.clone();
    let settled = eventually(|| {
        let mut products = products.clone();
        async move {
            let p = products
                .get_product(pb::GetProductRequest { sku: "R-0".into() })
                .await
                .unwrap()
                .into_inner()
                .product
                .unwrap();
            p.price.unwrap().amount_minor == 777
        }
    })
    .await;
    assert!(settled);
    // Fresh memory (a second replica over the same Redis) reads the new one.
    let mut after = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(60)).await; // memory expires again
        after.push(h.get("R-0").await.unwrap().price.unwrap().amount_minor);
    }
    assert!(
        after.iter().all(|p| *p == 777),
        "the old version never came back from Redis: {after:?}"
    );
}

/// The same database under a new process with a cold cache (a fresh Redis
/// namespace too): what a crowd meets after a deploy or a cache flush.
async fn restart(h: &Harness, backend: &Backend) -> Mesh {
    Mesh::builder(backend)
        .await
        .db(
            commerce_product::TARGET,
            h.mesh.db_config(commerce_product::TARGET),
        )
        .start(&[&commerce_product::SERVICE])
        .await
}
