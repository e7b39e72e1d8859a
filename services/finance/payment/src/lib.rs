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
//! and reports every change to finance.audit through its event log.
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
pub mod flags;
pub mod keys;
pub mod ledger;
pub mod notifications;
pub mod provider;
pub mod sandbox;
pub mod store;
pub mod transfers;
pub mod upstream;
pub mod workflow;

use std::sync::{Arc, Mutex};

use anyhow::Context;
use meshwork_proto::meshwork::finance::payment::v1::payment_service_server::PaymentServiceServer;
use meshwork_runtime::http_client::HttpClient;
use meshwork_runtime::jobs::{Job, Next};
use meshwork_runtime::service::{BoxFuture, Service, StartContext};
use sqlx::migrate::Migrator;

pub use credentials::Credentials;
pub use flags::PaymentArgs;
pub use provider::Channels;

/// The target name: `meshwork serve --target finance.payment`.
pub const TARGET: &str = "finance.payment";

/// The sandbox provider's target name.
pub const SANDBOX_TARGET: &str = "payment-sandbox";

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "meshwork.finance.payment.v1.PaymentService";

/// The service's schema migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

const LEDGER: &str = "finance.account";
const TRANSFERS: &str = "finance.transaction";
const AUDIT: &str = "finance.audit";

/// The payment service's registration.
pub static SERVICE: Service = Service {
    target: TARGET,
    grpc_services: &[SERVICE_NAME],
    migrations: Some(&MIGRATOR),
    calls: &[LEDGER, TRANSFERS, AUDIT],
    // The sandbox declares the same flags; they are added once.
    flags: Some(<PaymentArgs as clap::Args>::augment_args),
    start,
};

/// The SANDBOX provider's registration: an HTTP server on its own port
/// that plays Alipay, WeChat Pay and UnionPay (moves no money).
pub static SANDBOX: Service = Service {
    target: SANDBOX_TARGET,
    grpc_services: &[],
    migrations: None,
    calls: &[],
    flags: Some(<PaymentArgs as clap::Args>::augment_args),
    start: start_sandbox,
};

/// The channels' keys of this process, taken by the two targets: the
/// service's side and, when the sandbox runs here, the sandbox's.
#[derive(Clone)]
struct SharedKeys(Arc<Mutex<flags::Keys>>);

fn keys(ctx: &StartContext, flags: &PaymentArgs) -> anyhow::Result<SharedKeys> {
    let sandbox_here = ctx.serves(SANDBOX_TARGET);
    ctx.shared(|| Ok(SharedKeys(Arc::new(Mutex::new(flags.keys(sandbox_here)?)))))
}

/// Serves payments: channels from the channels file, or paired with the
/// sandbox running here; the sync job under the supervisor.
fn start(ctx: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let flags: PaymentArgs = ctx.flags()?;
        let credentials = keys(ctx, &flags)?
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .channels
            .take()
            .context("the channels' credentials were taken already")?;
        let storage = ctx.storage().await?;
        let outbox = ctx.audit_outbox().await?;
        let window = flags.payment_notify_window.as_secs() as i64;
        let http = HttpClient::new(ctx.client_policy().timeout);
        let channels = Arc::new(Channels::new(credentials, http, window));
        // Tests ask the provider what it knows through the same channels.
        ctx.publish(channels.clone());
        let payments = workflow::Payments::new(
            store::Store::new(storage.db, outbox),
            channels,
            ctx.upstream(LEDGER)?,
            ctx.upstream(TRANSFERS)?,
            &flags
                .payment_notify_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", ctx.http_addr())),
        );
        let (after, clock) = (flags.payment_sync_after, ctx.clock());
        let sync = payments.clone();
        ctx.spawn_job(Job::every(
            format!("{TARGET}.sync"),
            flags.payment_sync_interval,
            move || {
                let (sync, now) = (sync.clone(), clock.now_micros());
                async move {
                    sync.sync_once(after, now).await?;
                    Ok(Next::Interval)
                }
            },
        ));
        // Tests drive sync passes at chosen times through this handle.
        ctx.publish(payments.clone());
        let limits = ctx.limits();
        let service = PaymentServiceServer::new(api::PaymentApi::new(payments))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        ctx.grpc().add_service(service);
        Ok(())
    })
}

/// Serves the sandbox provider on `--payment-sandbox-addr` with the keys
/// paired with the payment service of this process.
fn start_sandbox(ctx: &mut StartContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let flags: PaymentArgs = ctx.flags()?;
        let (keys, listener) = {
            let shared = keys(ctx, &flags)?;
            let mut shared = shared.0.lock().unwrap_or_else(|e| e.into_inner());
            let keys = shared
                .sandbox
                .take()
                .context("the sandbox's keys were taken already")?;
            (
                keys,
                shared
                    .sandbox_listener
                    .take()
                    .context("the sandbox's listener was taken")?,
            )
        };
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        // Part of the banner: a newcomer should know no real money moves.
        println!(
            "  payment SANDBOX provider on {addr} (pays after {:?}; moves no money)",
            flags.payment_sandbox_delay
        );
        let sandbox = flags.sandbox(keys);
        ctx.publish(sandbox.clone());
        let stop = ctx.shutdown();
        ctx.spawn_task("payment sandbox", async move {
            sandbox
                .serve(listener, async move { stop.cancelled().await })
                .await
                .context("payment sandbox")
        });
        Ok(())
    })
}
