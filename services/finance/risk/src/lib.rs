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
pub mod store;

use meshwork_proto::meshwork::finance::risk::v1::risk_service_server::RiskServiceServer;
use meshwork_runtime::client::MeshChannel;
use meshwork_runtime::counters::Counters;
use meshwork_runtime::health::HealthMonitor;
use meshwork_runtime::server::GrpcServer;
use meshwork_runtime::storage::Storage;
use sqlx::migrate::Migrator;

/// The target name: `meshwork serve --target finance.risk`.
pub const TARGET: &str = "finance.risk";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.risk.v1.RiskService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Adds the risk service to `server`, its dependencies to `health`.
pub fn register(
    server: &mut GrpcServer,
    health: &mut HealthMonitor,
    storage: Storage,
    counters: Counters,
    ledger: MeshChannel,
) {
    let limits = server.limits();
    health.watch(SERVICE_NAME, storage.probes());
    let engine = engine::Engine::new(store::Store::new(storage.db), counters, ledger);
    let service = RiskServiceServer::new(api::RiskApi::new(engine))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    server.add_service(service);
}
