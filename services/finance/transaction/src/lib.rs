//! finance.transaction: transfers between accounts.
//!
//! Owns each transfer's life (tables `transfers`, `idempotency_keys`): it
//! validates a transfer, asks risk control (finance.risk: APPROVE, REVIEW
//! holds it for ApproveTransfer/DeclineTransfer, REJECT stops it), posts both
//! legs through the ledger
//! (finance.account's PostTransfer, idempotent by transfer id) and records
//! the ledger's answer. A posting whose answer got lost is asked for again
//! under the same id until the outcome is known, by the caller's retry or by
//! the background settler, so a transfer is applied at most once and never
//! left half-done. Reversals are compensating postings, at most one per
//! transfer.
//!
//! Every outcome (posted, failed, held, approved, declined, rejected,
//! reversed) is written to the service's event log in the transaction that
//! records it; finance.audit consumes the log.
//!
//! It must not: hold or compute balances (the ledger does), touch the
//! ledger's tables, or move money outside a PostTransfer call.

pub mod api;
pub mod domain;
pub mod error;
pub mod ledger;
pub mod risk;
pub mod store;
pub mod workflow;

use std::time::Duration;

use meshwork_proto::meshwork::finance::transaction::v1::transaction_service_server::TransactionServiceServer;
use meshwork_runtime::caller;
use meshwork_runtime::config::parse_duration;
use meshwork_runtime::jobs::{Job, Next};
use meshwork_runtime::service::{BoxFuture, Service, StartContext};
use sqlx::migrate::Migrator;

pub use ledger::CallPolicy;

/// The target name: `meshwork serve --target finance.transaction`.
pub const TARGET: &str = "finance.transaction";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.transaction.v1.TransactionService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

const LEDGER: &str = "finance.account";
const RISK: &str = "finance.risk";
const AUDIT: &str = "finance.audit";

/// The service's registration.
pub static SERVICE: Service = Service {
    target: TARGET,
    grpc_services: &[SERVICE_NAME],
    migrations: Some(&MIGRATOR),
    calls: &[LEDGER, RISK, AUDIT],
    flags: Some(<TransactionArgs as clap::Args>::augment_args),
    start,
};

/// finance.transaction's flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "finance.transaction")]
pub struct TransactionArgs {
    /// How often the settler looks for transfers left in flight.
    #[arg(long, env = "MESHWORK_TRANSACTION_SETTLE_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub transaction_settle_interval: Duration,
    /// How long a transfer must have been in flight before the settler takes
    /// it (longer than any call that may still be driving it).
    #[arg(long, env = "MESHWORK_TRANSACTION_SETTLE_AFTER", default_value = "10s", value_parser = parse_duration)]
    pub transaction_settle_after: Duration,
    /// Deadline of one attempt to learn a decision or a posting's outcome.
    #[arg(long, env = "MESHWORK_TRANSACTION_ATTEMPT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub transaction_attempt_timeout: Duration,
    /// Attempts to learn a decision or a posting's outcome within one call.
    #[arg(long, env = "MESHWORK_TRANSACTION_ATTEMPTS", default_value_t = 4)]
    pub transaction_attempts: u32,
    /// First pause between those attempts (doubling, with jitter).
    #[arg(long, env = "MESHWORK_TRANSACTION_BACKOFF", default_value = "50ms", value_parser = parse_duration)]
    pub transaction_backoff: Duration,
}

impl TransactionArgs {
    /// How hard a decision or posting outcome is chased within one call.
    pub fn call_policy(&self) -> CallPolicy {
        CallPolicy {
            attempt_timeout: self.transaction_attempt_timeout,
            attempts: self.transaction_attempts,
            backoff: self.transaction_backoff,
        }
    }
}

/// Serves transfers; the settler runs as a supervised job.
fn start(ctx: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let flags: TransactionArgs = ctx.flags()?;
        let storage = ctx.storage().await?;
        let outbox = ctx.audit_outbox().await?;
        let store = store::Store::new(storage.db, outbox);
        // How hard to try for a posting or a decision is the channels'
        // policy: one retry loop, in the mesh client.
        let policy = flags.call_policy().client_policy(ctx.client_policy());
        let ledger = ledger::Ledger::new(ctx.upstream_with(LEDGER, policy)?, ctx.upstream(LEDGER)?);
        let risk = risk::RiskControl::new(ctx.upstream_with(RISK, policy)?);
        let transfers = workflow::Transfers::new(store, risk, ledger);
        let settler = transfers.clone();
        let after = flags.transaction_settle_after;
        ctx.spawn_job(Job::every(
            format!("{TARGET}.settler"),
            flags.transaction_settle_interval,
            move || {
                let settler = settler.clone();
                async move {
                    // Work the settler picks up is done on nobody's behalf in
                    // particular; the audit trail names it.
                    let round = caller::scope(
                        Some("meshwork:settler".to_owned()),
                        settler.settle_in_flight(after),
                    );
                    match round.await? {
                        0 => {}
                        count => tracing::info!(count, "settled transfers left in flight"),
                    }
                    Ok(Next::Interval)
                }
            },
        ));
        let limits = ctx.limits();
        let service = TransactionServiceServer::new(api::TransactionApi::new(transfers))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        ctx.grpc().add_service(service);
        Ok(())
    })
}
