//! Catalogue reads: GetProduct and BatchGetProducts through the
//! multi-level cache, against the same RPCs on a replica started with
//! `--product-cache=false` (every read a database query), over the same
//! database and products, in the same run.

use std::time::Duration;

use meshwork_proto::meshwork::commerce::product::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_testkit::{Backend, Mesh};
use pb::product_service_client::ProductServiceClient;
use tonic::transport::Channel;

use crate::{measure, row};

/// Products the reads are spread over.
const PRODUCTS: usize = 1000;
/// SKUs per batch read.
const BATCH: usize = 100;

async fn replica(
    backend: &Backend,
    db: &meshwork_runtime::db::DbConfig,
    cached: bool,
) -> anyhow::Result<(ProductServiceClient<Channel>, Mesh)> {
    let mesh = Mesh::builder(backend)
        .await
        .own_telemetry()
        .db(commerce_product::TARGET, db.clone())
        .flag(format!("--product-cache={cached}"))
        .try_start(&[&commerce_product::SERVICE])
        .await?;
    Ok((ProductServiceClient::new(mesh.channel().await), mesh))
}

/// The rows of the catalogue scenario.
pub async fn run(
    backend: &Backend,
    label: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Vec<String>> {
    let db = backend.fresh_db_config();
    let (mut cached, _cached_mesh) = replica(backend, &db, true).await?;
    let (uncached, _uncached_mesh) = replica(backend, &db, false).await?;
    let skus: Vec<String> = (0..PRODUCTS).map(|i| format!("BENCH-{i:05}")).collect();
    for sku in &skus {
        cached
            .create_product(pb::CreateProductRequest {
                request_id: format!("bench-{sku}"),
                sku: sku.clone(),
                product: Some(pb::Product {
                    name: format!("Bench product {sku}"),
                    description: "A product of the catalogue benchmark.".into(),
                    brand: "Bench".into(),
                    category: "bench/things".into(),
                    price: Some(PositiveMoney {
                        currency: "EUR".into(),
                        amount_minor: 1999,
                    }),
                    weight_grams: 500,
                    attributes: [("colour".to_owned(), "grey".to_owned())].into(),
                    ..Default::default()
                }),
            })
            .await?;
    }
    let get = |client: ProductServiceClient<Channel>, skus: Vec<String>| {
        move |task: usize, i: u64| {
            let mut client = client.clone();
            let sku = skus[(task * 7919 + i as usize * 31) % skus.len()].clone();
            async move {
                client
                    .get_product(pb::GetProductRequest { sku })
                    .await
                    .is_ok()
            }
        }
    };
    let batch = |client: ProductServiceClient<Channel>, skus: Vec<String>| {
        move |task: usize, i: u64| {
            let mut client = client.clone();
            let start = (task * 7919 + i as usize * BATCH) % (skus.len() - BATCH);
            let wanted = skus[start..start + BATCH].to_vec();
            async move {
                client
                    .batch_get_products(pb::BatchGetProductsRequest { skus: wanted })
                    .await
                    .is_ok_and(|r| r.get_ref().products.iter().all(|p| p.found))
            }
        }
    };
    let get_base = measure(concurrency, duration, get(uncached.clone(), skus.clone())).await;
    let get_cached = measure(concurrency, duration, get(cached.clone(), skus.clone())).await;
    let batch_base = measure(concurrency, duration, batch(uncached, skus.clone())).await;
    let batch_cached = measure(concurrency, duration, batch(cached, skus)).await;
    Ok(vec![
        row("GetProduct, cache off (baseline)", label, &get_base, None),
        row(
            "GetProduct, multi-level cache",
            label,
            &get_cached,
            Some(&get_base),
        ),
        row(
            &format!("BatchGetProducts of {BATCH}, cache off (baseline)"),
            label,
            &batch_base,
            None,
        ),
        row(
            &format!("BatchGetProducts of {BATCH}, multi-level cache"),
            label,
            &batch_cached,
            Some(&batch_base),
        ),
    ])
}
