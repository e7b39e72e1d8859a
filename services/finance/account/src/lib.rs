//! finance.account: the ledger.
//!
//! Owns accounts, their balances and the double-entry journal (tables
//! `accounts`, `postings`, `journal_entries`, `idempotency_keys`, `outbox`). Every
//! balance change is a posting whose journal entries sum to zero against the
//! currency's settlement account, so every cent has a source. Balances are
//! read through the multi-level cache and invalidated after every change.
//!
//! It must not: call other services' tables, log or trace an account number
//! in full (see [`domain::AccountNumber`]), or represent money as a float.

pub mod api;
pub mod balances;
pub mod domain;
pub mod error;
pub mod store;

use meshwork_proto::meshwork::finance::account::v1::account_service_server::AccountServiceServer;
use meshwork_runtime::health::HealthMonitor;
use meshwork_runtime::outbox::Outbox;
use meshwork_runtime::server::GrpcServer;
use meshwork_runtime::storage::Storage;
use meshwork_runtime::time::Clock;
use sqlx::migrate::Migrator;

/// The target name: `meshwork serve --target finance.account`.
pub const TARGET: &str = "finance.account";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.account.v1.AccountService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Adds the account service to `server`, its dependencies to `health`.
/// Account changes, deposits and withdrawals are written to the outbox with
/// the change; `outbox` wakes the relay that delivers them (see
/// [`meshwork_runtime::outbox`]). Creation and posting times come from
/// `clock`.
pub fn register(
    server: &mut GrpcServer,
    health: &mut HealthMonitor,
    storage: Storage,
    outbox: Outbox,
    clock: Clock,
) {
    let limits = server.limits();
    health.watch(SERVICE_NAME, storage.probes());
    let store = store::Store::new(storage.db, outbox, clock);
    let balances = balances::Balances::new(store.clone(), storage.cache);
    let service = AccountServiceServer::new(api::AccountApi::new(store, balances))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    server.add_service(service);
}
