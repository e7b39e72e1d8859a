//! finance.audit: the audit trail.
//!
//! Owns the chain of audit records (tables `audit_records`, `chain_head`).
//! Events arrive from the other services' outboxes (RecordEvent, idempotent
//! by event id), are masked at the door (see [`masking`]) and appended with
//! a hash over the previous record's hash and their own fields, so that any
//! later edit, deletion or truncation is found by VerifyChain. Reports are
//! built from the stored, masked records only.
//!
//! It must not: store or return a clear account, card or phone number,
//! e-mail address or ID number; update or delete a record.

pub mod api;
pub mod domain;
pub mod error;
pub mod masking;
pub mod store;

use meshwork_proto::meshwork::finance::audit::v1::audit_service_server::AuditServiceServer;
use meshwork_runtime::health::HealthMonitor;
use meshwork_runtime::server::GrpcServer;
use meshwork_runtime::storage::Storage;
use sqlx::migrate::Migrator;

pub use masking::Masking;

/// The target name: `meshwork serve --target finance.audit`.
pub const TARGET: &str = "finance.audit";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.audit.v1.AuditService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Adds the audit service to `server`, its dependencies to `health`.
pub fn register(
    server: &mut GrpcServer,
    health: &mut HealthMonitor,
    storage: Storage,
    masking: Masking,
) {
    let limits = server.limits();
    health.watch(SERVICE_NAME, storage.probes());
    let api = api::AuditApi::new(store::Store::new(storage.db), masking);
    let service = AuditServiceServer::new(api)
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    server.add_service(service);
}
