//! Running targets: bind, register, serve, shut down in order.
//!
//! SIGTERM/SIGINT → health NOT_SERVING (and /readyz 503) → after the grace,
//! stop accepting and drain in-flight calls → flush telemetry → exit 0.

use std::collections::BTreeSet;

use anyhow::Context;
use std::sync::Arc;

use meshwork_gateway::Readiness;
use meshwork_gateway::config::GatewayArgs;
use meshwork_gateway::edge::Gateway;
use meshwork_runtime::client;
use meshwork_runtime::config::RuntimeArgs;
use meshwork_runtime::health::HealthMonitor;
use meshwork_runtime::server::GrpcServer;
use meshwork_runtime::shutdown::{self, Shutdown};
use meshwork_runtime::telemetry;
use tokio::net::TcpListener;

use crate::payment::PaymentArgs;
use crate::targets::{self, GATEWAY, PAYMENT_SANDBOX};

/// Serves `targets` until a shutdown signal; seeds demo data when asked.
pub async fn run(
    targets: BTreeSet<&'static str>,
    args: RuntimeArgs,
    gateway_args: GatewayArgs,
    payment_args: PaymentArgs,
    seed: bool,
) -> anyhow::Result<()> {
    let names: Vec<&str> = targets.iter().copied().collect();
    let telemetry = telemetry::init(&format!("meshwork/{}", names.join("+")), args.log_format)
        .map_err(|e| anyhow::anyhow!("telemetry: {e}"))?;
    let outcome = serve(&targets, &args, &gateway_args, &payment_args, seed).await;
    telemetry.shutdown().await;
    outcome
}

async fn serve(
    targets: &BTreeSet<&'static str>,
    args: &RuntimeArgs,
    gateway_args: &GatewayArgs,
    payment_args: &PaymentArgs,
    seed: bool,
) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown::cancel_on_signals(shutdown.clone());
    for (key, value) in args.describe() {
        tracing::info!(setting = key, value = %value, "config");
    }

    let services: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| *t != GATEWAY && *t != PAYMENT_SANDBOX)
        .collect();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let mut tasks = tokio::task::JoinSet::new();

    // The payment channels' keys: a channels file, or a pair made with the
    // sandbox provider when it runs here.
    let sandbox_here = targets.contains(PAYMENT_SANDBOX);
    let mut payment_keys = None;
    let mut sandbox_keys = None;
    if targets.contains(finance_payment::TARGET) || sandbox_here {
        let keys = payment_args.keys(sandbox_here)?;
        payment_keys = Some(keys.channels);
        sandbox_keys = keys.sandbox;
    }
    if let Some(keys) = sandbox_keys {
        let listener = bind(
            payment_args.payment_sandbox_addr,
            "the payment sandbox",
            "--payment-sandbox-addr",
        )
        .await?;
        let sandbox = payment_args.sandbox(keys);
        let stop = shutdown.clone();
        tasks.spawn(async move {
            sandbox
                .serve(listener, async move { stop.cancelled().await })
                .await
                .context("payment sandbox")
        });
    }

    if !services.is_empty() {
        let listener = bind(args.grpc_addr, "gRPC", "--grpc-addr").await?;
        let mut grpc = GrpcServer::new(args.limits());
        let mut monitor = HealthMonitor::new(reporter.clone(), args.health_interval);
        for service in &services {
            targets::start(
                service,
                args,
                &mut grpc,
                &mut monitor,
                targets,
                &shutdown,
                targets::PaymentStart {
                    args: payment_args,
                    credentials: &mut payment_keys,
                },
            )
            .await?;
        }
        tasks.spawn(monitor.run(shutdown.clone()).map_ok());
        let stop = shutdown.clone();
        tasks.spawn(async move {
            grpc.serve(listener, health_service, stop)
                .await
                .map_err(|e| anyhow::anyhow!("gRPC server: {e}"))
        });
    }

    let http = bind(args.http_addr, "HTTP", "--http-addr").await?;
    let readiness = if services.is_empty() {
        let upstream = args
            .upstream(GATEWAY)
            .or_else(|| args.upstream(finance_account::TARGET))
            .context("the gateway alone needs --upstream gateway=<grpc url> (or MESHWORK_UPSTREAM_GATEWAY)")?;
        Readiness::Remote(
            client::channel(&upstream, args.client_policy()).map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    } else {
        Readiness::local(reporter)
    };
    let gateway = match targets.contains(GATEWAY) {
        true => Some(Arc::new(gateway(targets, args, gateway_args)?)),
        false => None,
    };
    let stop_http = meshwork_gateway::after_grace(shutdown.clone(), args.shutdown_grace);
    tasks.spawn(async move {
        meshwork_gateway::serve(
            http,
            meshwork_gateway::router(readiness, gateway),
            stop_http,
        )
        .await
        .context("HTTP server")
    });

    announce(targets, args, payment_args);
    if seed && !services.is_empty() {
        let url = format!("http://{}", args.grpc_addr);
        match crate::seed::demo_data(&url, args.client_policy()).await {
            Ok(summary) => println!("{summary}"),
            Err(error) => tracing::warn!(%error, "demo data not loaded"),
        }
    }

    // The first task to fail stops the others; otherwise all end after shutdown.
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(error) = result {
            shutdown.cancel();
            if outcome.is_ok() {
                outcome = Err(error);
            }
        }
    }
    tracing::info!("stopped");
    outcome
}

/// The REST edge, each service reached in this process or at its upstream.
fn gateway(
    targets: &BTreeSet<&'static str>,
    args: &RuntimeArgs,
    gateway_args: &GatewayArgs,
) -> anyhow::Result<Gateway> {
    let config = gateway_args.config(args.client_timeout)?;
    if !config.auth.enabled() {
        tracing::warn!(
            "REST edge: authentication is off (no JWT key configured); every route is public"
        );
    }
    let own = format!("http://{}", args.grpc_addr);
    let mut failure = None;
    let gateway = Gateway::new(
        |service| {
            let target = targets::target_of_service(service).unwrap_or_default();
            let url = args
                .upstream(&target)
                .or_else(|| {
                    (!targets.contains(target.as_str()))
                        .then(|| args.upstream(GATEWAY))
                        .flatten()
                })
                .unwrap_or_else(|| own.clone());
            client::channel(&url, args.client_policy()).unwrap_or_else(|error| {
                failure = Some(format!("upstream of {service}: {error}"));
                client::channel(&own, args.client_policy()).expect("own address is a valid URL")
            })
        },
        config,
    )
    .context("REST routes")?;
    match failure {
        Some(failure) => anyhow::bail!(failure),
        None => Ok(gateway),
    }
}

/// Applies the migrations of `targets` and exits.
pub async fn migrate(targets: BTreeSet<&'static str>, args: RuntimeArgs) -> anyhow::Result<()> {
    for target in targets {
        let Some(migrator) = targets::migrator(target) else {
            continue;
        };
        let db = meshwork_runtime::db::Database::connect(&args.db_config(target))
            .await
            .with_context(|| format!("{target}: connect"))?;
        db.migrate(migrator)
            .await
            .with_context(|| format!("{target}: migrate"))?;
        println!("{target}: migrations applied");
        db.close().await;
    }
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen for {what} on {addr} (already in use? choose another with {flag})")
    })
}

fn announce(targets: &BTreeSet<&'static str>, args: &RuntimeArgs, payment_args: &PaymentArgs) {
    let names: Vec<&str> = targets.iter().copied().collect();
    println!(
        "meshwork {} running: {}",
        env!("CARGO_PKG_VERSION"),
        names.join(", ")
    );
    if targets
        .iter()
        .any(|t| *t != GATEWAY && *t != PAYMENT_SANDBOX)
    {
        println!(
            "  gRPC    {}   grpcurl -plaintext {} list",
            args.grpc_addr, args.grpc_addr
        );
    }
    println!(
        "  HTTP    {}    REST /v1/..., /healthz /readyz /metrics",
        args.http_addr
    );
    if targets.contains(PAYMENT_SANDBOX) {
        println!(
            "  payment SANDBOX provider on {} (pays after {:?}; moves no money)",
            payment_args.payment_sandbox_addr, payment_args.payment_sandbox_delay
        );
    }
    match &args.database_url {
        Some(url) => println!("  storage {}", meshwork_runtime::config::redact_url(url)),
        None => println!("  storage SQLite files in {}", args.data_dir.display()),
    }
    println!(
        "  cache   {}",
        args.redis_url
            .as_deref()
            .map(meshwork_runtime::config::redact_url)
            .unwrap_or_else(|| "in-process".into())
    );
}

/// `Future<Output = ()>` → `Future<Output = anyhow::Result<()>>`.
trait MapOk: std::future::Future<Output = ()> + Sized {
    fn map_ok(self) -> impl std::future::Future<Output = anyhow::Result<()>> {
        async move {
            self.await;
            Ok(())
        }
    }
}

impl<F: std::future::Future<Output = ()>> MapOk for F {}
