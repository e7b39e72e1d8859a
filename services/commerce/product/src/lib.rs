//! commerce.product: the catalogue, read through a multi-level cache.
//!
//! Owns `products` (the current state, a deleted product marked) and
//! `product_revisions` (every version written); publishes `ProductChanged`
//! on topic "product". Reads of single products and batches go through the
//! cache (in-process → Redis → database, see `catalog.rs`); lists read the
//! database.
//!
//! It must not: hold stock (commerce.inventory does) or prices of anything
//! but its products; a Redis outage never fails a read.

pub mod api;
pub mod catalog;
pub mod domain;
pub mod error;
pub mod store;

use std::sync::Arc;

use meshwork_proto::meshwork::commerce::product::v1 as pb;
use meshwork_runtime::events::NewEvent;
use meshwork_runtime::service::{BoxFuture, Service, StartContext};
use pb::product_service_server::ProductServiceServer;
use sqlx::migrate::Migrator;

/// The target name: `meshwork serve --target commerce.product`.
pub const TARGET: &str = "commerce.product";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.commerce.product.v1.ProductService";

/// The topic of `ProductChanged` events.
pub const PRODUCT_TOPIC: &str = "product";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's registration.
pub static SERVICE: Service = Service {
    target: TARGET,
    grpc_services: &[SERVICE_NAME],
    migrations: Some(&MIGRATOR),
    calls: &[],
    flags: Some(<ProductArgs as clap::Args>::augment_args),
    start,
};

/// Flags of the product service.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "commerce.product")]
pub struct ProductArgs {
    /// Read products through the multi-level cache (`false`: every read
    /// asks the database, for comparisons and for ruling the cache out).
    #[arg(long, env = "MESHWORK_PRODUCT_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub product_cache: bool,
}

/// Serves the catalogue through its cache.
fn start(ctx: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let flags: ProductArgs = ctx.flags()?;
        // Without Redis the catalogue reads the database: still SERVING.
        ctx.cache_is_optional();
        let storage = ctx.storage().await?;
        let publisher = ctx.event_log().await?;
        let store = store::Store::new(
            storage.db,
            publisher,
            Arc::new(product_changed),
            ctx.clock(),
        );
        // Tests and the benchmark count what reached the database.
        ctx.publish(store.reads());
        let catalog = catalog::Catalog::new(store, storage.cache, flags.product_cache);
        let limits = ctx.limits();
        let service = ProductServiceServer::new(api::ProductApi::new(catalog))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        ctx.grpc().add_service(service);
        Ok(())
    })
}

/// The `ProductChanged` event of a write.
fn product_changed(product: &domain::Product, now: i64) -> NewEvent {
    let event = pb::ProductChanged {
        product: Some(api::product_to_pb(product)),
        deleted: product.deleted,
    };
    NewEvent::new(PRODUCT_TOPIC, &product.sku, &event, now)
}
