//! finance.risk: a rule engine with anti-fraud scoring.
//!
//! Owns the rules, the score policy and one assessment per transfer (tables
//! `rules`, `policy`, `assessments`, `idempotency_keys`), plus velocity
//! counters per rule and account in the shared counters (Redis, or
//! in-process in embedded mode). Asks finance.account when an account was
//! opened, and only when a new-account rule is enabled.
//!
//! It must not: move money, or decide anything but APPROVE / REVIEW /
//! REJECT (what follows is finance.transaction's business).

pub mod api;
pub mod domain;
pub mod engine;
pub mod error;
pub mod ledger;
pub mod store;

use meshwork_proto::meshwork::finance::risk::v1::risk_service_server::RiskServiceServer;
use meshwork_runtime::service::{BoxFuture, Service, StartContext};
use sqlx::migrate::Migrator;

/// The target name: `meshwork serve --target finance.risk`.
pub const TARGET: &str = "finance.risk";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.risk.v1.RiskService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The ledger, asked when accounts were opened.
const LEDGER: &str = "finance.account";

/// The service's registration.
pub static SERVICE: Service = Service {
    target: TARGET,
    grpc_services: &[SERVICE_NAME],
    migrations: Some(&MIGRATOR),
    calls: &[LEDGER],
    flags: None,
    start,
};

/// Serves risk control, with its velocity counters in the shared counters.
fn start(ctx: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let storage = ctx.storage().await?;
        let counters = ctx.counters().await?;
        let ledger = ctx.upstream(LEDGER)?;
        let engine = engine::Engine::new(store::Store::new(storage.db), counters, ledger);
        let limits = ctx.limits();
        let service = RiskServiceServer::new(api::RiskApi::new(engine))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        ctx.grpc().add_service(service);
        Ok(())
    })
}
