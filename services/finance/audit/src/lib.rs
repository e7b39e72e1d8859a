//! finance.audit: the audit trail.
//!
//! Owns the chain of audit records (tables `audit_records`, `chain_head`).
//! Events arrive from the other services' event logs (one work subscription
//! per producer, see [`subscriptions`]; RecordEvent, idempotent by event id,
//! still takes what older releases relay), are masked at the door (see
//! [`masking`]) and appended with
//! a hash over the previous record's hash and their own fields, so that any
//! later edit, deletion or truncation is found by VerifyChain (see
//! [`verify`]). Reports are built from the stored, masked records only
//! (see [`report`]).
//!
//! It must not: store or return a clear account, card or phone number,
//! e-mail address or ID number; update or delete a record.

pub mod api;
pub mod domain;
pub mod error;
pub mod masking;
pub mod report;
pub mod store;
pub mod subscriptions;
pub mod verify;

use std::path::PathBuf;

use anyhow::Context;
use meshwork_proto::meshwork::finance::audit::v1::audit_service_server::AuditServiceServer;
use meshwork_runtime::service::{BoxFuture, Service, StartContext};
use sqlx::migrate::Migrator;

pub use masking::Masking;

/// The target name: `meshwork serve --target finance.audit`.
pub const TARGET: &str = "finance.audit";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.audit.v1.AuditService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's registration.
pub static SERVICE: Service = Service {
    target: TARGET,
    grpc_services: &[SERVICE_NAME],
    migrations: Some(&MIGRATOR),
    calls: subscriptions::PRODUCERS,
    flags: Some(<AuditArgs as clap::Args>::augment_args),
    start,
};

/// finance.audit's flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "finance.audit")]
pub struct AuditArgs {
    /// A JSON file of masking rules (added to the standard ones unless it
    /// says `"standard": false`).
    #[arg(long, env = "MESHWORK_AUDIT_MASKING_FILE")]
    pub audit_masking_file: Option<PathBuf>,
}

impl AuditArgs {
    /// The masking rules these flags ask for.
    pub fn masking(&self) -> anyhow::Result<Masking> {
        match &self.audit_masking_file {
            None => Ok(Masking::standard()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read {}", path.display()))?;
                Masking::from_json(&text).with_context(|| path.display().to_string())
            }
        }
    }
}

/// Serves the audit trail, masking with the rules of its flags.
fn start(ctx: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let masking = ctx.flags::<AuditArgs>()?.masking()?;
        let storage = ctx.storage().await?;
        // The producers' audit events, from their event logs.
        for producer in subscriptions::PRODUCERS {
            ctx.subscribe(subscriptions::subscription(producer, masking.clone()))
                .await?;
        }
        let limits = ctx.limits();
        let service =
            AuditServiceServer::new(api::AuditApi::new(store::Store::new(storage.db), masking))
                .max_decoding_message_size(limits.max_message_bytes)
                .max_encoding_message_size(limits.max_message_bytes);
        ctx.grpc().add_service(service);
        Ok(())
    })
}
