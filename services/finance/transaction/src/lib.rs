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
//! reversed) is written to the outbox in the transaction that records it
//! and relayed to finance.audit until acknowledged.
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
use meshwork_runtime::client::MeshChannel;
use meshwork_runtime::health::HealthMonitor;
use meshwork_runtime::outbox::{self, Outbox, Relay};
use meshwork_runtime::server::GrpcServer;
use meshwork_runtime::shutdown::Shutdown;
use meshwork_runtime::storage::Storage;
use sqlx::migrate::Migrator;

pub use ledger::CallPolicy;

/// The target name: `meshwork serve --target finance.transaction`.
pub const TARGET: &str = "finance.transaction";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.transaction.v1.TransactionService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What the service needs besides its storage.
#[derive(Clone)]
pub struct Deps {
    /// The ledger (finance.account), through the mesh client.
    pub ledger: MeshChannel,
    /// Risk control (finance.risk), through the mesh client.
    pub risk: MeshChannel,
    /// The audit trail (finance.audit), where the outbox relay delivers
    /// events; `None` leaves them in the outbox table.
    pub audit: Option<MeshChannel>,
    /// How hard a decision or posting outcome is chased within one call.
    pub call_policy: CallPolicy,
    /// How often the settler looks for transfers left in flight.
    pub settle_interval: Duration,
    /// How long a transfer must have been in flight before the settler
    /// takes it (longer than any call that may still be driving it).
    pub settle_after: Duration,
    /// Stops the settler.
    pub shutdown: Shutdown,
}

/// Adds the transaction service to `server`, its dependencies to `health`,
/// and starts its settler.
pub fn register(server: &mut GrpcServer, health: &mut HealthMonitor, storage: Storage, deps: Deps) {
    let limits = server.limits();
    health.watch(SERVICE_NAME, storage.probes());
    let outbox = match deps.audit {
        Some(audit) => {
            let relay = Relay::new(storage.db.clone(), outbox::audit_sink(TARGET, audit));
            let outbox = relay.outbox();
            tokio::spawn(relay.run(deps.shutdown.clone()));
            outbox
        }
        None => Outbox::detached(),
    };
    let store = store::Store::new(storage.db, outbox);
    let ledger = ledger::Ledger::new(deps.ledger, deps.call_policy);
    let risk = risk::RiskControl::new(deps.risk, deps.call_policy);
    let transfers = workflow::Transfers::new(store, risk, ledger);
    tokio::spawn(transfers.clone().run_settler(
        deps.settle_interval,
        deps.settle_after,
        deps.shutdown,
    ));
    let service = TransactionServiceServer::new(api::TransactionApi::new(transfers))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    server.add_service(service);
}
