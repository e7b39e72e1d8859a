//! commerce.inventory: stock per SKU and warehouse, the reservations that
//! hold it for orders, and the movement ledger.
//!
//! Owns `stock_levels` (on_hand / reserved / committed per SKU and
//! warehouse), `reservations` with their lines, and the append-only
//! `movements`; publishes `StockChanged` on topic "stock". A sweeper job
//! expires reservations nobody committed in time.
//!
//! It must not: know about orders, payments or prices (an order id is an
//! opaque label here), or let any counter change without its movement.

pub mod api;
pub mod domain;
pub mod error;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use meshwork_proto::meshwork::commerce::inventory::v1 as pb;
use meshwork_runtime::config::parse_duration;
use meshwork_runtime::events::NewEvent;
use meshwork_runtime::jobs::{Job, Next};
use meshwork_runtime::service::{BoxFuture, Service, StartContext};
use pb::inventory_service_server::InventoryServiceServer;
use sqlx::migrate::Migrator;

/// The target name: `meshwork serve --target commerce.inventory`.
pub const TARGET: &str = "commerce.inventory";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.commerce.inventory.v1.InventoryService";

/// The topic of `StockChanged` events.
pub const STOCK_TOPIC: &str = "stock";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's registration.
pub static SERVICE: Service = Service {
    target: TARGET,
    grpc_services: &[SERVICE_NAME],
    migrations: Some(&MIGRATOR),
    calls: &[],
    flags: Some(<InventoryArgs as clap::Args>::augment_args),
    start,
};

/// Flags of the inventory service.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "commerce.inventory")]
pub struct InventoryArgs {
    /// How long a reservation holds its units when the caller gives no TTL.
    #[arg(long, env = "MESHWORK_INVENTORY_RESERVATION_TTL", default_value = "15m", value_parser = parse_duration)]
    pub inventory_reservation_ttl: Duration,
    /// How often the sweeper expires reservations that are due.
    #[arg(long, env = "MESHWORK_INVENTORY_SWEEP_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub inventory_sweep_interval: Duration,
}

/// Reservations the sweeper expires per transaction batch.
const SWEEP_BATCH: i64 = 200;

/// Serves the inventory, with its sweeper.
fn start(ctx: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let flags: InventoryArgs = ctx.flags()?;
        let storage = ctx.storage().await?;
        let publisher = ctx.event_log().await?;
        let store = store::Store::new(storage.db, publisher, Arc::new(stock_changed), ctx.clock());
        let sweeper = store.clone();
        ctx.spawn_job(Job::every(
            format!("{TARGET}.sweeper"),
            flags.inventory_sweep_interval,
            move || {
                let sweeper = sweeper.clone();
                async move {
                    let expired = sweeper.expire_due(SWEEP_BATCH).await?;
                    // A full batch: more are due, go on at once.
                    Ok(if expired as i64 == SWEEP_BATCH {
                        Next::After(Duration::ZERO)
                    } else {
                        Next::Interval
                    })
                }
            },
        ));
        let limits = ctx.limits();
        let service = InventoryServiceServer::new(api::InventoryApi::new(
            store,
            flags.inventory_reservation_ttl,
        ))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
        ctx.grpc().add_service(service);
        Ok(())
    })
}

/// The `StockChanged` event of a level after a movement.
fn stock_changed(level: &domain::Level, kind: &'static str, now: i64) -> NewEvent {
    let event = pb::StockChanged {
        level: Some(api::level_to_pb(level)),
        kind: kind.to_owned(),
    };
    NewEvent::new(STOCK_TOPIC, &level.sku, &event, now)
}
