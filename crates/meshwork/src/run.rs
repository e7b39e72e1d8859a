//! Running targets: bind, register, serve, shut down in order.
//!
//! SIGTERM/SIGINT → health NOT_SERVING (and /readyz 503) → after the grace,
//! stop accepting and drain in-flight calls → flush telemetry → exit 0.

use std::collections::BTreeSet;

use anyhow::Context;
use clap::ArgMatches;
use std::sync::Arc;

use meshwork_gateway::Readiness;
use meshwork_gateway::config::GatewayArgs;
use meshwork_gateway::edge::Gateway;
use meshwork_runtime::client;
use meshwork_runtime::config::RuntimeArgs;
use meshwork_runtime::node::{Node, NodeConfig};
use meshwork_runtime::service::Service;
use meshwork_runtime::shutdown::{self, Shutdown};
use meshwork_runtime::telemetry;
use meshwork_runtime::time::Clock;
use tokio::net::TcpListener;

use crate::targets::{self, GATEWAY};

/// Serves `targets` until a shutdown signal; seeds demo data when asked.
/// `flags` holds the services' own flags.
pub async fn run(
    targets: BTreeSet<&'static str>,
    args: RuntimeArgs,
    gateway_args: GatewayArgs,
    flags: ArgMatches,
    seed: bool,
) -> anyhow::Result<()> {
    let names: Vec<&str> = targets.iter().copied().collect();
    // The banner first: what runs where, before any log line.
    announce(&targets, &args);
    let telemetry = telemetry::init(&format!("meshwork/{}", names.join("+")), args.log_format)
        .map_err(|e| anyhow::anyhow!("telemetry: {e}"))?;
    let outcome = serve(&targets, &args, &gateway_args, flags, seed).await;
    telemetry.shutdown().await;
    outcome
}

async fn serve(
    targets: &BTreeSet<&'static str>,
    args: &RuntimeArgs,
    gateway_args: &GatewayArgs,
    flags: ArgMatches,
    seed: bool,
) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown::cancel_on_signals(shutdown.clone());
    for (key, value) in args.describe() {
        tracing::info!(setting = key, value = %value, "config");
    }

    let services: Vec<&'static Service> =
        targets.iter().filter_map(|t| targets::service(t)).collect();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let mut tasks = tokio::task::JoinSet::new();

    let grpc_listener = match services.iter().any(|s| !s.grpc_services.is_empty()) {
        true => Some(bind(args.grpc_addr, "gRPC", "--grpc-addr").await?),
        false => None,
    };
    let served_grpc = grpc_listener.is_some();
    // The HTTP port first: /healthz answers and /readyz says 503 while the
    // services start.
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let http = bind(args.http_addr, "HTTP", "--http-addr").await?;
    let readiness = if !served_grpc {
        let upstream = args
            .upstream(GATEWAY)
            .or_else(|| args.upstream(finance_account::TARGET))
            .context("the gateway alone needs --upstream gateway=<grpc url> (or MESHWORK_UPSTREAM_GATEWAY)")?;
        Readiness::Remote(
            client::channel(&upstream, args.client_policy()).map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    } else {
        Readiness::local(reporter.clone())
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

    let config = NodeConfig {
        placement: Arc::new(args.clone()),
        flags,
        limits: args.limits(),
        client_policy: args.client_policy(),
        http_addr: args.http_addr,
        health_interval: args.health_interval,
        clock: Clock::system(),
        event_retention: args.event_retention,
        startup_timeout: args.startup_timeout,
    };
    // Until every service has started (storage may be waiting for its
    // database), health answers NOT_SERVING on the gRPC port.
    let names: Vec<&str> = services
        .iter()
        .flat_map(|s| s.grpc_services.iter().copied())
        .collect();
    let starting = match &grpc_listener {
        Some(listener) => {
            Some(meshwork_runtime::node::StartingHealth::serve(listener, &names).await?)
        }
        None => None,
    };
    let node = Node::start(
        &services,
        targets.clone(),
        format!("http://{}", args.grpc_addr),
        config,
        reporter.clone(),
        shutdown.clone(),
    )
    .await;
    if let Some(starting) = starting {
        starting.stop().await;
    }
    let node = node?;
    tasks.spawn(node.run(grpc_listener, health_service));

    if seed && served_grpc {
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
        let Some(migrator) = targets::service(target).and_then(|s| s.migrations) else {
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

fn announce(targets: &BTreeSet<&'static str>, args: &RuntimeArgs) {
    let names: Vec<&str> = targets.iter().copied().collect();
    println!(
        "meshwork {} starting: {}",
        env!("CARGO_PKG_VERSION"),
        names.join(", ")
    );
    if targets
        .iter()
        .filter_map(|t| targets::service(t))
        .any(|s| !s.grpc_services.is_empty())
    {
        println!(
            "  gRPC    {}   grpcurl -plaintext {} list",
            args.grpc_addr, args.grpc_addr
        );
    }
    println!(
        "  HTTP    {}    REST /v1/..., /docs, /healthz /readyz /metrics",
        args.http_addr
    );
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
