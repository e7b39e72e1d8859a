//! The list of targets, and how each one starts: a plain `match`, since
//! services only talk over gRPC and need no start-up order among themselves.
//!
//! Adding a service: its contract, its crate, and one arm here (plus its name
//! in [`SERVICES`]).

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use std::time::Duration;

use meshwork_runtime::client::{self, MeshChannel};
use meshwork_runtime::config::RuntimeArgs;
use meshwork_runtime::counters::Counters;
use meshwork_runtime::health::HealthMonitor;
use meshwork_runtime::outbox::{self, Outbox, Relay};
use meshwork_runtime::server::GrpcServer;
use meshwork_runtime::shutdown::Shutdown;
use meshwork_runtime::storage::Storage;
use sqlx::migrate::Migrator;

/// The HTTP edge.
pub const GATEWAY: &str = "gateway";

/// The SANDBOX payment provider (HTTP, its own port).
pub const PAYMENT_SANDBOX: &str = finance_payment::SANDBOX_TARGET;

/// Every gRPC service target.
pub const SERVICES: &[&str] = &[
    finance_account::TARGET,
    finance_audit::TARGET,
    finance_payment::TARGET,
    finance_risk::TARGET,
    finance_transaction::TARGET,
];

/// The finance services.
const FINANCE: &[&str] = &[
    finance_account::TARGET,
    finance_audit::TARGET,
    finance_payment::TARGET,
    finance_risk::TARGET,
    finance_transaction::TARGET,
];

/// Names that stand for several targets (every target stands for itself).
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "all",
        &[
            finance_account::TARGET,
            finance_audit::TARGET,
            finance_payment::TARGET,
            finance_risk::TARGET,
            finance_transaction::TARGET,
            PAYMENT_SANDBOX,
            GATEWAY,
        ],
    ),
    ("finance", FINANCE),
    ("finance.account", &[finance_account::TARGET]),
    ("finance.audit", &[finance_audit::TARGET]),
    ("finance.payment", &[finance_payment::TARGET]),
    ("payment-sandbox", &[PAYMENT_SANDBOX]),
    ("finance.risk", &[finance_risk::TARGET]),
    ("finance.transaction", &[finance_transaction::TARGET]),
    ("gateway", &[GATEWAY]),
];

/// Expands groups and checks names; the result is sorted and free of repeats.
pub fn expand(names: &[String]) -> anyhow::Result<BTreeSet<&'static str>> {
    let mut targets = BTreeSet::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match GROUPS.iter().find(|(group, _)| *group == name) {
            Some((_, members)) => targets.extend(members.iter().copied()),
            None => bail!("unknown target {name:?}; `meshwork targets` lists them"),
        }
    }
    if targets.is_empty() {
        bail!("no target given");
    }
    Ok(targets)
}

/// The target that serves a proto service:
/// `meshwork.finance.account.v1.AccountService` → `finance.account`.
pub fn target_of_service(full_name: &str) -> Option<String> {
    let (package, _service) = full_name.rsplit_once('.')?;
    let (path, _version) = package.rsplit_once('.')?;
    path.strip_prefix("meshwork.").map(str::to_owned)
}

/// The migrations of a target that owns tables.
pub fn migrator(target: &str) -> Option<&'static Migrator> {
    match target {
        finance_account::TARGET => Some(&finance_account::MIGRATOR),
        finance_audit::TARGET => Some(&finance_audit::MIGRATOR),
        finance_payment::TARGET => Some(&finance_payment::MIGRATOR),
        finance_risk::TARGET => Some(&finance_risk::MIGRATOR),
        finance_transaction::TARGET => Some(&finance_transaction::MIGRATOR),
        _ => None,
    }
}

/// What finance.payment starts with: its flags, and the channels' keys
/// (taken by the service when it starts).
pub struct PaymentStart<'a> {
    /// The flags.
    pub args: &'a crate::payment::PaymentArgs,
    /// The keys.
    pub credentials: &'a mut Option<finance_payment::Credentials>,
}

/// Connects `target`'s storage and registers it on the server.
pub async fn start(
    target: &str,
    args: &RuntimeArgs,
    grpc: &mut GrpcServer,
    health: &mut HealthMonitor,
    served: &BTreeSet<&'static str>,
    shutdown: &Shutdown,
    payment: PaymentStart<'_>,
) -> anyhow::Result<()> {
    let payment_args = payment.args;
    match target {
        finance_account::TARGET => {
            let storage = open_storage(target, args).await?;
            let outbox = relay_to_audit(target, &storage, args, served, shutdown)?;
            finance_account::register(
                grpc,
                health,
                storage,
                outbox,
                meshwork_runtime::time::Clock::system(),
            );
        }
        finance_audit::TARGET => {
            let storage = open_storage(target, args).await?;
            let masking = match &args.audit_masking_file {
                None => finance_audit::Masking::standard(),
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("{target}: read {}", path.display()))?;
                    finance_audit::Masking::from_json(&text)
                        .with_context(|| format!("{target}: {}", path.display()))?
                }
            };
            finance_audit::register(grpc, health, storage, masking);
        }
        finance_risk::TARGET => {
            let storage = open_storage(target, args).await?;
            let counters =
                Counters::connect(&format!("meshwork:{target}"), args.redis_url.as_deref())
                    .await
                    .map_err(|e| anyhow::anyhow!("{target}: counters: {e}"))?;
            let ledger = upstream(finance_account::TARGET, args, served)?;
            finance_risk::register(grpc, health, storage, counters, ledger);
        }
        finance_transaction::TARGET => {
            let storage = open_storage(target, args).await?;
            let deps = finance_transaction::Deps {
                ledger: upstream(finance_account::TARGET, args, served)?,
                risk: upstream(finance_risk::TARGET, args, served)?,
                audit: optional_upstream(finance_audit::TARGET, args, served)?,
                call_policy: finance_transaction::CallPolicy::default(),
                settle_interval: Duration::from_secs(2),
                settle_after: Duration::from_secs(10),
                shutdown: shutdown.clone(),
            };
            finance_transaction::register(grpc, health, storage, deps);
        }
        finance_payment::TARGET => {
            let credentials = payment
                .credentials
                .take()
                .context("finance.payment: no channel credentials")?;
            let storage = open_storage(target, args).await?;
            let window = payment_args.payment_notify_window.as_secs() as i64;
            let http = meshwork_runtime::http_client::HttpClient::new(args.client_timeout);
            let deps = finance_payment::Deps {
                channels: finance_payment::Channels::new(credentials, http, window),
                ledger: upstream(finance_account::TARGET, args, served)?,
                transfers: upstream(finance_transaction::TARGET, args, served)?,
                audit: optional_upstream(finance_audit::TARGET, args, served)?,
                notify_base_url: payment_args
                    .payment_notify_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", args.http_addr)),
                sync_interval: payment_args.payment_sync_interval,
                sync_after: payment_args.payment_sync_after,
                shutdown: shutdown.clone(),
            };
            // The sync job runs inside; nothing else needs the workflow here.
            let _ = finance_payment::register(grpc, health, storage, deps);
        }
        other => bail!("{other} is not a gRPC service"),
    }
    Ok(())
}

/// A channel to `target`: its configured upstream, or this process's own
/// gRPC port when it runs here (channels connect lazily, so start-up order
/// does not matter).
fn upstream(
    target: &str,
    args: &RuntimeArgs,
    served: &BTreeSet<&'static str>,
) -> anyhow::Result<MeshChannel> {
    let url = match args.upstream(target) {
        Some(url) => url,
        None if served.contains(target) => format!("http://{}", args.grpc_addr),
        None => bail!(
            "{target} does not run in this process: give --upstream {target}=<grpc url> \
             (or MESHWORK_UPSTREAM_{})",
            target.replace('.', "_").to_uppercase()
        ),
    };
    client::channel(&url, args.client_policy())
        .map_err(|e| anyhow::anyhow!("upstream {target} at {url}: {e}"))
}

/// A channel to `target` when it runs here or is configured; `None`
/// otherwise.
fn optional_upstream(
    target: &str,
    args: &RuntimeArgs,
    served: &BTreeSet<&'static str>,
) -> anyhow::Result<Option<MeshChannel>> {
    if served.contains(target) || args.upstream(target).is_some() {
        upstream(target, args, served).map(Some)
    } else {
        Ok(None)
    }
}

/// Starts the relay of `target`'s outbox to finance.audit, when there is
/// one to reach; without, the events wait in the outbox table.
fn relay_to_audit(
    target: &str,
    storage: &Storage,
    args: &RuntimeArgs,
    served: &BTreeSet<&'static str>,
    shutdown: &Shutdown,
) -> anyhow::Result<Outbox> {
    match optional_upstream(finance_audit::TARGET, args, served)? {
        Some(audit) => {
            let relay = Relay::new(storage.db.clone(), outbox::audit_sink(target, audit));
            let outbox = relay.outbox();
            tokio::spawn(relay.run(shutdown.clone()));
            Ok(outbox)
        }
        None => {
            tracing::warn!(
                target,
                "finance.audit is neither served here nor configured (--upstream finance.audit=...): \
                 audit events wait in the outbox"
            );
            Ok(Outbox::detached())
        }
    }
}

async fn open_storage(target: &str, args: &RuntimeArgs) -> anyhow::Result<Storage> {
    let migrator = migrator(target).with_context(|| format!("{target} has no migrations"))?;
    Storage::open(
        &args.db_config(target),
        &args.cache_config(target),
        migrator,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{target}: storage: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_groups_and_refuses_unknown_names() {
        let all = expand(&["all".to_owned()]).unwrap();
        assert!(all.contains(GATEWAY) && all.contains("finance.account"));
        let one = expand(&["finance.account".to_owned(), "finance.account".to_owned()]).unwrap();
        assert_eq!(one.into_iter().collect::<Vec<_>>(), ["finance.account"]);
        let finance = expand(&["finance".to_owned(), "finance.risk".to_owned()]).unwrap();
        assert_eq!(finance.into_iter().collect::<Vec<_>>(), FINANCE);
        assert!(expand(&["finance.acount".to_owned()]).is_err());
        assert!(expand(&[]).is_err());
    }

    #[test]
    fn services_map_to_their_targets() {
        assert_eq!(
            target_of_service("meshwork.finance.account.v1.AccountService").as_deref(),
            Some(finance_account::TARGET)
        );
        assert_eq!(target_of_service("grpc.health.v1.Health"), None);
    }

    #[test]
    fn every_service_is_in_all_and_has_migrations() {
        let all = expand(&["all".to_owned()]).unwrap();
        for service in SERVICES {
            assert!(all.contains(service), "{service} missing from all");
            assert!(migrator(service).is_some(), "{service} has no migrations");
        }
    }
}
