//! finance.account: the ledger.
//!
//! Owns accounts, their balances and the double-entry journal (tables
//! `accounts`, `postings`, `journal_entries`, and the platform tables). Every
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
use meshwork_runtime::service::{BoxFuture, Service, StartContext};
use sqlx::migrate::Migrator;

/// The target name: `meshwork serve --target finance.account`.
pub const TARGET: &str = "finance.account";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.account.v1.AccountService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's registration.
pub static SERVICE: Service = Service {
    target: TARGET,
    grpc_services: &[SERVICE_NAME],
    migrations: Some(&MIGRATOR),
    calls: &["finance.audit"],
    flags: None,
    start,
};

/// Serves the ledger. Account changes, deposits and withdrawals are written
/// to the service's event log with the change, which finance.audit
/// consumes (see [`meshwork_runtime::outbox`]); times come from the
/// context's clock.
fn start(ctx: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let storage = ctx.storage().await?;
        let outbox = ctx.audit_outbox().await?;
        let store = store::Store::new(storage.db, outbox, ctx.clock());
        let balances = balances::Balances::new(store.clone(), storage.cache);
        let limits = ctx.limits();
        let service = AccountServiceServer::new(api::AccountApi::new(store, balances))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        ctx.grpc().add_service(service);
        Ok(())
    })
}
