//! `meshwork-bench`: load benchmarks, each next to its baseline in the same
//! run, printed as Markdown rows for BENCHMARKS.md (`scripts/bench.sh`).
//!
//! Scenarios on finance.account, through the real gRPC server on loopback:
//! - `balance`: GetBalance of hot accounts through the multi-level cache,
//!   against the same RPC with the cache turned off (every read hits the
//!   database);
//! - `deposit`: Deposit through gRPC (validation, tracing, metrics,
//!   idempotency claim, double-entry posting, cache invalidation), against the
//!   same store call made in-process without gRPC;
//! - `edge`: GET /v1/accounts/{id}/balance through the REST edge (HTTP/1.1
//!   keep-alive), against the same GetBalance over gRPC directly;
//! - `platform`: GetBalance of cached accounts through the full server
//!   stack, against a bare tonic server answering the same RPC with a
//!   constant (see [`platform`]);
//! - `tracing` (`--tracing`): the same with every span exported over OTLP,
//!   against span export off (see [`tracing_cost`]);
//! - `events`: event delivery from the producer's commit to the consumer's
//!   committed effect (see [`events`]);
//! - `transfers` (`--transfers --servers`): Transfer through the finance
//!   services against pgbench running the same SQL (see [`transfers`]);
//! - `products` (`--products`): catalogue reads through the multi-level
//!   cache against a replica with the cache off (see [`products`]).

mod events;
mod platform;
mod products;
mod tracing_cost;
mod transfers;

/// The same allocator as the `meshwork` binary (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use finance_account::domain::{Currency, MoneyMovement, Movement};
use finance_account::store::Store;
use meshwork_gateway::edge::{Gateway, GatewayConfig};
use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::cache::CacheConfig;
use meshwork_runtime::db::DbConfig;
use meshwork_runtime::shutdown::Shutdown;
use meshwork_runtime::storage::Storage;
use meshwork_runtime::telemetry::{self, LogFormat};
use meshwork_testkit::{Backend, Mesh};

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    axum::body::Body,
>;
use pb::account_service_client::AccountServiceClient;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Accounts the load is spread over.
    #[arg(long, default_value_t = 64)]
    accounts: usize,
    /// Use PostgreSQL + Redis from MESHWORK_TEST_DATABASE_URL / MESHWORK_TEST_REDIS_URL.
    #[arg(long)]
    servers: bool,
    /// Run the transfers scenario (PostgreSQL only) instead of the others.
    #[arg(long)]
    transfers: bool,
    /// Run the catalogue scenario instead of the others.
    #[arg(long)]
    products: bool,
    /// Run only the edge scenario (e.g. under `perf record`).
    #[arg(long)]
    edge_only: bool,
    /// Accounts the transfers scenario spreads over.
    #[arg(long, default_value_t = 1000)]
    transfer_accounts: usize,
    /// Run only the tracing-cost scenario (span export off against every
    /// span exported over OTLP to a receiver in this process).
    #[arg(long)]
    tracing: bool,
    /// One measurement of the tracing scenario, in a child process (see
    /// `tracing_cost`): its result on one line of stdout.
    #[arg(long, hide = true)]
    tracing_child: bool,
}

/// What one measurement gave.
struct Measured {
    ops: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[index]
    }
}

/// Runs `op` from `concurrency` tasks for `duration`; `op(task, i)`.
/// Rounds of the edge comparison (see where it runs).
const EDGE_ROUNDS: usize = 3;

/// The round with the median throughput.
fn median_round(mut rounds: Vec<Measured>) -> Measured {
    rounds.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    rounds.swap_remove(rounds.len() / 2)
}

async fn measure<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Measured
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if op(task, i).await {
                        ok += 1;
                        latencies.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                    i += 1;
                }
                (ok, errors, latencies)
            })
        })
        .collect();
    let mut measured = Measured {
        ops: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (ok, errors, latencies) = task.await.expect("load task");
        measured.ops += ok;
        measured.errors += errors;
        measured.latencies.extend(latencies);
    }
    measured.elapsed = started.elapsed();
    measured.latencies.sort_unstable();
    measured
}

fn row(scenario: &str, backend: &str, m: &Measured, baseline: Option<&Measured>) -> String {
    let ratio = baseline
        .map(|b| format!("{:.2}×", m.rate() / b.rate()))
        .unwrap_or_else(|| "baseline".into());
    format!(
        "| {scenario} | {backend} | {:.0} | {:.2} | {:.2} | {} | {ratio} |",
        m.rate(),
        m.percentile(0.50).as_secs_f64() * 1e3,
        m.percentile(0.99).as_secs_f64() * 1e3,
        m.errors,
    )
}

/// The service as production runs it (same layers, telemetry without an
/// exporter), on a port of its own, over `db` with `cache`.
async fn start(
    backend: &Backend,
    db: &DbConfig,
    cache: &CacheConfig,
) -> anyhow::Result<(AccountServiceClient<Channel>, String, Mesh)> {
    let mesh = Mesh::builder(backend)
        .await
        .own_telemetry()
        .db(finance_account::TARGET, db.clone())
        .cache(finance_account::TARGET, cache.clone())
        .try_start(&[&finance_account::SERVICE])
        .await?;
    Ok((
        AccountServiceClient::new(mesh.channel().await),
        mesh.url(),
        mesh,
    ))
}

async fn open_accounts(
    client: &mut AccountServiceClient<Channel>,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let account = client
            .create_account(pb::CreateAccountRequest {
                request_id: format!("bench-open-{}", uuid::Uuid::now_v7().simple()),
                owner_id: format!("bench-{i}"),
                currency: "EUR".into(),
                r#type: pb::AccountType::Checking as i32,
            })
            .await?
            .into_inner()
            .account
            .context("account")?;
        ids.push(account.account_id);
    }
    Ok(ids)
}

fn deposit(id: &str, amount_minor: i64) -> pb::DepositRequest {
    pb::DepositRequest {
        request_id: format!("bench-{}", uuid::Uuid::now_v7().simple()),
        account_id: id.to_owned(),
        amount: Some(PositiveMoney {
            currency: "EUR".into(),
            amount_minor,
        }),
        memo: String::new(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let telemetry =
        telemetry::init("meshwork-bench", LogFormat::Pretty).map_err(|e| anyhow::anyhow!("{e}"))?;
    let shutdown = Shutdown::new();
    let backend = if args.servers {
        Backend::servers().context("set MESHWORK_TEST_DATABASE_URL and MESHWORK_TEST_REDIS_URL")?
    } else {
        Backend::Embedded
    };
    let label = if args.servers {
        "PostgreSQL + Redis"
    } else {
        "SQLite + in-process"
    };
    let duration = Duration::from_secs(args.seconds);
    if args.tracing {
        let rows = tracing_cost::run(args.concurrency, args.seconds).await?;
        println!("| scenario | storage | ops/s | p50 ms | p99 ms | errors | vs baseline |");
        println!("|---|---|---:|---:|---:|---:|---:|");
        for row in rows {
            println!("{row}");
        }
        telemetry.shutdown().await;
        return Ok(());
    }
    if args.tracing_child {
        let cache = backend.fresh_cache_config();
        let db = backend.fresh_db_config();
        let (mut client, _, _mesh) = start(&backend, &db, &cache).await?;
        let ids = open_accounts(&mut client, args.accounts).await?;
        for id in &ids {
            client.deposit(deposit(id, 1_000_000)).await?;
            client
                .get_balance(pb::GetBalanceRequest {
                    account_id: id.clone(),
                })
                .await?;
        }
        let read = client.clone();
        let m = measure(args.concurrency, duration, move |task, i| {
            let mut client = read.clone();
            let id = ids[(task + i as usize) % ids.len()].clone();
            async move {
                client
                    .get_balance(pb::GetBalanceRequest { account_id: id })
                    .await
                    .is_ok()
            }
        })
        .await;
        println!(
            "{} {:.1} {:.3} {:.3} {} {}",
            tracing_cost::RESULT_PREFIX,
            m.rate(),
            m.percentile(0.50).as_secs_f64() * 1e3,
            m.percentile(0.99).as_secs_f64() * 1e3,
            m.errors,
            m.ops
        );
        // Flushes the exporter, so that every span reached the receiver
        // before the parent counts them.
        telemetry.shutdown().await;
        return Ok(());
    }
    if args.products {
        let rows = products::run(&backend, label, args.concurrency, duration).await?;
        println!("| scenario | storage | ops/s | p50 ms | p99 ms | errors | vs baseline |");
        println!("|---|---|---:|---:|---:|---:|---:|");
        for row in rows {
            println!("{row}");
        }
        telemetry.shutdown().await;
        return Ok(());
    }
    if args.transfers {
        let rows =
            transfers::run(&backend, args.concurrency, duration, args.transfer_accounts).await?;
        println!("| scenario | storage | ops/s | p50 ms | p99 ms | errors | vs baseline |");
        println!("|---|---|---:|---:|---:|---:|---:|");
        for row in rows {
            println!("{row}");
        }
        telemetry.shutdown().await;
        return Ok(());
    }
    let migrator = &finance_account::MIGRATOR;
    let db = backend.fresh_db_config();

    // Two replicas of the service over one database: one with the cache,
    // one with it turned off (nothing kept in-process, no Redis).
    let cached_config = backend.fresh_cache_config();
    let cached = Storage::open(&db, &cached_config, migrator)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut uncached_config = CacheConfig::new("bench-off", None);
    uncached_config.local_capacity = 0;
    let store = Store::new(
        cached.db.clone(),
        meshwork_runtime::outbox::Outbox::detached(),
        meshwork_runtime::time::Clock::system(),
    );
    let (mut cached_client, cached_url, _cached_mesh) =
        start(&backend, &db, &cached_config).await?;
    let (uncached_client, _, _uncached_mesh) = start(&backend, &db, &uncached_config).await?;

    let ids = open_accounts(&mut cached_client, args.accounts).await?;
    for id in &ids {
        cached_client.deposit(deposit(id, 1_000_000)).await?;
    }

    let read = |client: AccountServiceClient<Channel>, ids: Vec<String>| {
        move |task: usize, i: u64| {
            let mut client = client.clone();
            let id = ids[(task + i as usize) % ids.len()].clone();
            async move {
                client
                    .get_balance(pb::GetBalanceRequest { account_id: id })
                    .await
                    .is_ok()
            }
        }
    };
    // `--edge-only` skips to the edge rows (zero-length runs elsewhere).
    let duration_other = if args.edge_only {
        Duration::ZERO
    } else {
        duration
    };
    let balance_base = measure(
        args.concurrency,
        duration_other,
        read(uncached_client, ids.clone()),
    )
    .await;
    let balance = measure(
        args.concurrency,
        duration_other,
        read(cached_client.clone(), ids.clone()),
    )
    .await;

    let deposit_base = measure(args.concurrency, duration_other, {
        let (store, ids) = (store.clone(), ids.clone());
        move |task: usize, i: u64| {
            let store = store.clone();
            let movement = MoneyMovement {
                movement: Movement::Deposit,
                account_id: ids[(task + i as usize) % ids.len()].clone(),
                currency: Currency::parse("EUR").expect("EUR"),
                amount_minor: 1,
                memo: String::new(),
            };
            async move {
                store
                    .post(
                        &format!("bench-{}", uuid::Uuid::now_v7().simple()),
                        &movement,
                    )
                    .await
                    .is_ok()
            }
        }
    })
    .await;
    let deposits = measure(args.concurrency, duration_other, {
        let (client, ids) = (cached_client.clone(), ids.clone());
        move |task: usize, i: u64| {
            let mut client = client.clone();
            let request = deposit(&ids[(task + i as usize) % ids.len()], 1);
            async move { client.deposit(request).await.is_ok() }
        }
    })
    .await;

    // The REST edge in front of the cached replica, against direct gRPC.
    let gateway = Gateway::new(
        |_| meshwork_runtime::client::channel(&cached_url, Default::default()).expect("channel"),
        GatewayConfig::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (reporter, _) = tonic_health::server::health_reporter();
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http_addr = http_listener.local_addr()?;
    let router = meshwork_gateway::router(
        meshwork_gateway::Readiness::local(reporter),
        Some(Arc::new(gateway)),
    );
    tokio::spawn(meshwork_gateway::serve(
        http_listener,
        router,
        shutdown.clone().cancelled_owned(),
    ));
    let http_client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    // The two sides alternate for three rounds and each reports its median
    // round: on two shared cores a single round of either swings by tens of
    // percent, and alternating keeps slow spells from landing on one side.
    let rest_op = {
        let ids = ids.clone();
        move |task: usize, i: u64| {
            let client = http_client.clone();
            let uri: http::Uri = format!(
                "http://{http_addr}/v1/accounts/{}/balance",
                ids[(task + i as usize) % ids.len()]
            )
            .parse()
            .expect("uri");
            async move {
                match client.get(uri).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        // Read the body so the connection goes back to the pool.
                        ok && http_body_util::BodyExt::collect(response.into_body())
                            .await
                            .is_ok()
                    }
                    Err(_) => false,
                }
            }
        }
    };
    let (mut directs, mut rests) = (Vec::new(), Vec::new());
    for _ in 0..EDGE_ROUNDS {
        directs.push(
            measure(
                args.concurrency,
                duration,
                read(cached_client.clone(), ids.clone()),
            )
            .await,
        );
        rests.push(measure(args.concurrency, duration, rest_op.clone()).await);
    }
    let direct = median_round(directs);
    let rest = median_round(rests);

    // The platform's own cost: the same alternation against a bare server.
    let bare = platform::bare_server().await?;
    let (mut bares, mut fulls) = (Vec::new(), Vec::new());
    for _ in 0..EDGE_ROUNDS {
        bares.push(
            measure(
                args.concurrency,
                duration_other,
                read(bare.clone(), ids.clone()),
            )
            .await,
        );
        fulls.push(
            measure(
                args.concurrency,
                duration_other,
                read(cached_client.clone(), ids.clone()),
            )
            .await,
        );
    }
    let bare = median_round(bares);
    let full = median_round(fulls);

    // Event delivery, commit to committed effect.
    // Once at saturation (every client writing as fast as it can), once
    // with one writer offering about 100 events/s: the latency of an event
    // when nothing queues.
    let delivered = if args.edge_only {
        None
    } else {
        Some((
            events::run(&backend, args.concurrency, duration, None).await?,
            events::run(&backend, 1, duration, Some(Duration::from_millis(10))).await?,
        ))
    };

    println!("| scenario | storage | ops/s | p50 ms | p99 ms | errors | vs baseline |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    println!(
        "{}",
        row(
            "GetBalance, cache off (baseline)",
            label,
            &balance_base,
            None
        )
    );
    println!(
        "{}",
        row(
            "GetBalance, multi-level cache",
            label,
            &balance,
            Some(&balance_base)
        )
    );
    println!(
        "{}",
        row(
            "Deposit, store call in-process (baseline)",
            label,
            &deposit_base,
            None
        )
    );
    println!(
        "{}",
        row(
            "Deposit through gRPC",
            label,
            &deposits,
            Some(&deposit_base)
        )
    );
    println!(
        "{}",
        row(
            "GetBalance over gRPC, direct (baseline)",
            label,
            &direct,
            None
        )
    );
    println!(
        "{}",
        row(
            "GET /v1/accounts/{id}/balance through the REST edge",
            label,
            &rest,
            Some(&direct)
        )
    );
    println!(
        "| p50 added by the edge | {label} | | {:.3} | | | |",
        (rest.percentile(0.5).as_secs_f64() - direct.percentile(0.5).as_secs_f64()) * 1e3
    );
    if !args.edge_only {
        println!(
            "{}",
            row(
                "GetBalance, bare tonic server with a constant (baseline)",
                label,
                &bare,
                None
            )
        );
        println!(
            "{}",
            row(
                "GetBalance through the full server stack (cached)",
                label,
                &full,
                Some(&bare)
            )
        );
    }
    if let Some((saturated, single)) = &delivered {
        println!(
            "{}",
            row(
                "Event delivery, every client writing flat out (p50/p99: commit to committed effect, queueing included)",
                label,
                saturated,
                None
            )
        );
        println!(
            "{}",
            row(
                "Event delivery, ~100 events/s offered (p50/p99: commit to committed effect)",
                label,
                single,
                None
            )
        );
    }
    shutdown.cancel();
    telemetry.shutdown().await;
    Ok(())
}
