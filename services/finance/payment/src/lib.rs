//! finance.payment: the payment gateway.
//!
//! Collects money from payers through three channels (Alipay, WeChat Pay,
//! UnionPay), each in its provider's own protocol ([`channels`], on the
//! SHA256withRSA of [`keys`]); learns outcomes from the providers' signed
//! notifications ([`notifications`], through the REST edge's public
//! callback routes) or, when they do not come, from the providers' query
//! APIs (the sync job of [`workflow`]); keeps each payment's forward-only
//! life ([`domain`], tables in [`store`]); credits the merchant through
//! finance.transaction when a payment succeeds and debits it for refunds;
//! and reports every change to finance.audit through the outbox.
//!
//! [`sandbox`] is a stand-in provider for development and tests.
//!
//! It must not: move money other than through finance.account and
//! finance.transaction, trust a notification it has not verified, or log
//! key material.

pub mod api;
pub mod channels;
pub mod clock;
pub mod credentials;
pub mod domain;
pub mod error;
pub mod keys;
pub mod notifications;
pub mod provider;
pub mod sandbox;
pub mod store;
pub mod workflow;

use std::sync::Arc;
use std::time::Duration;

use meshwork_proto::meshwork::finance::payment::v1::payment_service_server::PaymentServiceServer;
use meshwork_runtime::client::MeshChannel;
use meshwork_runtime::health::HealthMonitor;
use meshwork_runtime::outbox::{self, Outbox, Relay};
use meshwork_runtime::server::GrpcServer;
use meshwork_runtime::shutdown::Shutdown;
use meshwork_runtime::storage::Storage;
use sqlx::migrate::Migrator;

pub use credentials::Credentials;
pub use provider::Channels;

/// The target name: `meshwork serve --target finance.payment`.
pub const TARGET: &str = "finance.payment";

/// The sandbox provider's target name.
pub const SANDBOX_TARGET: &str = "payment-sandbox";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.payment.v1.PaymentService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What the service needs besides its storage.
pub struct Deps {
    /// The channels, with our credentials.
    pub channels: Channels,
    /// finance.account (clearing accounts, deposits, payouts).
    pub ledger: MeshChannel,
    /// finance.transaction (credits and debits of merchants).
    pub transfers: MeshChannel,
    /// finance.audit, where the outbox relay delivers; `None` leaves events
    /// in the outbox table.
    pub audit: Option<MeshChannel>,
    /// Base URL of the REST edge the channels call back
    /// (`<base>/v1/payment-notifications/<channel>`).
    pub notify_base_url: String,
    /// How often the sync job runs.
    pub sync_interval: Duration,
    /// How long a payment waits for its notification before the sync job
    /// asks the channel.
    pub sync_after: Duration,
    /// Stops the sync job.
    pub shutdown: Shutdown,
}

/// Adds the payment service to `server`, its dependencies to `health`, and
/// starts its sync job; the workflow, for what runs beside the RPCs.
pub fn register(
    server: &mut GrpcServer,
    health: &mut HealthMonitor,
    storage: Storage,
    deps: Deps,
) -> workflow::Payments {
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
    let payments = workflow::Payments::new(
        store,
        Arc::new(deps.channels),
        deps.ledger,
        deps.transfers,
        &deps.notify_base_url,
    );
    tokio::spawn(
        payments
            .clone()
            .run_sync(deps.sync_interval, deps.sync_after, deps.shutdown),
    );
    let service = PaymentServiceServer::new(api::PaymentApi::new(payments.clone()))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    server.add_service(service);
    payments
}
