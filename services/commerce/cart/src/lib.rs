//! commerce.cart: shopping carts, a quantity per SKU, in Redis (in-process
//! in embedded mode), priced from the catalogue on every read.
//!
//! Owns the carts in its Redis namespace (a hash per cart, scoped by the
//! verified subject; their request ids; merge markers; see `store.rs`); no
//! tables. Asks commerce.product for prices.
//!
//! It must not: store prices (a cart is repriced when read), or reserve
//! stock (commerce.inventory does, at checkout).

pub mod api;
pub mod catalogue;
pub mod domain;
pub mod error;
pub mod store;

use std::time::Duration;

use anyhow::Context;
use meshwork_proto::meshwork::commerce::cart::v1::cart_service_server::CartServiceServer;
use meshwork_runtime::config::parse_duration;
use meshwork_runtime::service::{BoxFuture, Service, StartContext};

/// The target name: `meshwork serve --target commerce.cart`.
pub const TARGET: &str = "commerce.cart";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.commerce.cart.v1.CartService";

/// The catalogue, asked for prices.
const CATALOGUE: &str = "commerce.product";

/// The service's registration.
pub static SERVICE: Service = Service {
    target: TARGET,
    grpc_services: &[SERVICE_NAME],
    migrations: None,
    calls: &[CATALOGUE],
    flags: Some(<CartArgs as clap::Args>::augment_args),
    start,
};

/// Flags of the cart service.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "commerce.cart")]
pub struct CartArgs {
    /// How long a cart lives after its last write.
    #[arg(long, env = "MESHWORK_CART_TTL", default_value = "60m", value_parser = parse_duration)]
    pub cart_ttl: Duration,
}

/// Serves the carts.
fn start(ctx: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let flags: CartArgs = ctx.flags()?;
        let cache = ctx.cache_config();
        let store = store::Store::connect(&cache.namespace, cache.redis_url.as_deref())
            .await
            .context("commerce.cart: the cart store")?;
        if let Some(probe) = store.probe() {
            ctx.probe(probe);
        }
        let catalogue = catalogue::Catalogue::new(ctx.upstream(CATALOGUE)?);
        // At most a year: far beyond any idle cart, far from overflowing.
        let ttl = i64::try_from(flags.cart_ttl.as_micros())
            .unwrap_or(i64::MAX)
            .min(365 * 86_400 * 1_000_000);
        let api = api::CartApi::new(store, catalogue, ctx.clock(), ttl);
        let limits = ctx.limits();
        let service = CartServiceServer::new(api)
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        ctx.grpc().add_service(service);
        Ok(())
    })
}
