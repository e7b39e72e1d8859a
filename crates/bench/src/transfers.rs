//! The `transfers` scenario: Transfer through the gRPC API of the finance
//! services on PostgreSQL (transaction → risk → account, and the outbox to
//! audit), next to pgbench running the same SQL on the same server in the
//! same run (`scripts/pgbench-transfer.sh` writes that script), spread over
//! many accounts and with one hot account.

use std::time::Duration;

use anyhow::Context;
use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::db::{Database, DbConfig};
use meshwork_testkit::{Backend, Mesh};
use tonic::transport::Channel;

use crate::{Measured, measure};

type Accounts = account_pb::account_service_client::AccountServiceClient<Channel>;
type Transfers = pb::transaction_service_client::TransactionServiceClient<Channel>;

/// The four finance services in one process, as `meshwork up` runs them.
struct Finance {
    services: Mesh,
    accounts: Accounts,
    transfers: Transfers,
    ledger: DbConfig,
    transactions: DbConfig,
    audit: DbConfig,
    schemas: [String; 4],
}

/// How long after `measured` ended the audit trail had every transfer's
/// event (the trail consumes the event log behind the requests): the rate
/// with it counted is the one to compare with pgbench, whose script appends
/// to the chain inside each transaction.
async fn until_audited(transactions: &DbConfig, audit: &DbConfig) -> anyhow::Result<Duration> {
    let started = std::time::Instant::now();
    let producer = Database::connect(transactions).await?;
    let consumer = Database::connect(audit).await?;
    loop {
        let unnumbered: i64 =
            sqlx::query_scalar("SELECT count(*) FROM event_log WHERE sequence = 0")
                .fetch_one(producer.pool())
                .await?;
        let head: i64 = sqlx::query_scalar("SELECT last FROM event_sequencer WHERE id = 1")
            .fetch_one(producer.pool())
            .await?;
        let position: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM event_cursors WHERE subscription = 'finance.audit<-finance.transaction'",
        )
        .fetch_optional(consumer.pool())
        .await?;
        if unnumbered == 0 && position.unwrap_or(0) >= head {
            producer.close().await;
            consumer.close().await;
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_mesh(backend: &Backend) -> anyhow::Result<Finance> {
    let mesh = Mesh::builder(backend)
        .await
        .own_telemetry()
        .try_start(&[
            &finance_account::SERVICE,
            &finance_audit::SERVICE,
            &finance_risk::SERVICE,
            &finance_transaction::SERVICE,
        ])
        .await?;
    let plain = mesh.channel().await;
    let schema = |target: &str| mesh.db_config(target).schema.unwrap_or_default();
    Ok(Finance {
        accounts: Accounts::new(plain.clone()),
        transfers: Transfers::new(plain),
        schemas: [
            schema(finance_account::TARGET),
            schema(finance_transaction::TARGET),
            schema(finance_risk::TARGET),
            schema(finance_audit::TARGET),
        ],
        ledger: mesh.db_config(finance_account::TARGET),
        transactions: mesh.db_config(finance_transaction::TARGET),
        audit: mesh.db_config(finance_audit::TARGET),
        services: mesh,
    })
}

fn eur(amount_minor: i64) -> Option<PositiveMoney> {
    Some(PositiveMoney {
        currency: "EUR".into(),
        amount_minor,
    })
}

async fn funded_accounts(accounts: &mut Accounts, n: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let account = accounts
            .create_account(account_pb::CreateAccountRequest {
                request_id: format!("bench-open-{}", uuid::Uuid::now_v7().simple()),
                owner_id: format!("bench-{i}"),
                currency: "EUR".into(),
                r#type: account_pb::AccountType::Checking as i32,
            })
            .await?
            .into_inner()
            .account
            .context("account")?;
        accounts
            .deposit(account_pb::DepositRequest {
                request_id: format!("bench-fund-{}", uuid::Uuid::now_v7().simple()),
                account_id: account.account_id.clone(),
                amount: eur(1_000_000_000),
                memo: String::new(),
            })
            .await?;
        ids.push(account.account_id);
    }
    Ok(ids)
}

/// Transfers of 1 cent from `from(task, i)` to `to(task, i)`.
async fn transfers(
    client: &Transfers,
    concurrency: usize,
    duration: Duration,
    ids: Vec<String>,
    hot: Option<String>,
) -> Measured {
    let client = client.clone();
    measure(concurrency, duration, move |_task, _i| {
        let mut client = client.clone();
        let a = fastrand::usize(..ids.len());
        let (from, to) = match &hot {
            Some(hot) => (ids[a].clone(), hot.clone()),
            None => {
                let b = (a + fastrand::usize(1..ids.len())) % ids.len();
                (ids[a].clone(), ids[b].clone())
            }
        };
        async move {
            client
                .transfer(pb::TransferRequest {
                    request_id: format!("bench-{}", uuid::Uuid::now_v7().simple()),
                    from_account_id: from,
                    to_account_id: to,
                    amount: eur(1),
                    memo: String::new(),
                })
                .await
                .is_ok()
        }
    })
    .await
}

/// What pgbench measured.
struct Pgbench {
    tps: f64,
    latency_ms: f64,
    failed: u64,
}

/// Runs pgbench with the generated script for `mode`.
fn pgbench(
    mode: &str,
    mesh: &Finance,
    url: &str,
    accounts: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Pgbench> {
    let [ledger, tx, risk, audit] = &mesh.schemas;
    let script = std::process::Command::new("bash")
        .args(["scripts/pgbench-transfer.sh", mode, ledger, tx, risk, audit])
        .output()
        .context("run scripts/pgbench-transfer.sh (from the repository root)")?;
    anyhow::ensure!(script.status.success(), "pgbench-transfer.sh failed");
    let path = std::env::temp_dir().join(format!("meshwork-pgbench-{mode}.sql"));
    std::fs::write(&path, &script.stdout)?;
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-f"])
        .arg(&path)
        .args(["-D", &format!("accounts={accounts}")])
        .args(["-c", &concurrency.to_string(), "-j", "2"])
        .args(["-T", &duration.as_secs().to_string()])
        .arg(url)
        .output()
        .context("run pgbench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let number = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    Ok(Pgbench {
        tps: number("tps = ").context("pgbench printed no tps")?,
        latency_ms: number("latency average = ").unwrap_or(0.0),
        failed: number("number of failed transactions: ").unwrap_or(0.0) as u64,
    })
}

/// The rows of the scenario.
pub async fn run(
    backend: &Backend,
    concurrency: usize,
    duration: Duration,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let Backend::Servers { database_url, .. } = backend else {
        anyhow::bail!("the transfers scenario runs on PostgreSQL (--servers)");
    };
    let mut mesh = start_mesh(backend).await?;
    let ids = funded_accounts(&mut mesh.accounts, n).await?;
    let hot = funded_accounts(&mut mesh.accounts, 1).await?.remove(0);

    let spread = transfers(&mesh.transfers, concurrency, duration, ids.clone(), None).await;
    let spread_drain = until_audited(&mesh.transactions, &mesh.audit).await?;
    let hot_run = transfers(&mesh.transfers, concurrency, duration, ids, Some(hot)).await;
    let hot_drain = until_audited(&mesh.transactions, &mesh.audit).await?;

    // The services stop before pgbench starts: their relays would otherwise
    // pick up pgbench's outbox rows. pgbench's own accounts, pgb_0 (the hot
    // one) to pgb_n, go into the same table.
    mesh.services.begin_shutdown();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = Database::connect(&mesh.ledger).await?;
    sqlx::query(
        "INSERT INTO accounts (account_id, account_number, owner_id, currency, account_type, state, \
         balance_minor, created_at, updated_at) \
         SELECT 'pgb_' || i, '7' || lpad(i::text, 15, '0'), 'pgbench', 'EUR', 'CHECKING', 'ACTIVE', \
         1000000000, 0, 0 FROM generate_series(0, $1) AS i",
    )
    .bind(n as i64)
    .execute(db.pool())
    .await?;
    db.close().await;
    let sql_spread = pgbench("spread", &mesh, database_url, n, concurrency, duration)?;
    let sql_hot = pgbench("hot", &mesh, database_url, n, concurrency, duration)?;

    let label = "PostgreSQL + Redis";
    let base = |name: &str, p: &Pgbench| {
        format!(
            "| {name} | {label} | {:.0} | {:.2} (avg) | | {} | baseline |",
            p.tps, p.latency_ms, p.failed
        )
    };
    let versus = |name: &str, m: &Measured, drain: Duration, p: &Pgbench| {
        // Counted until the audit trail caught up: the same work pgbench does.
        let audited = m.ops as f64 / (m.elapsed + drain).as_secs_f64();
        format!(
            "| {name} | {label} | {audited:.0} | {:.2} | {:.2} | {} | {:.2}× |",
            m.percentile(0.50).as_secs_f64() * 1e3,
            m.percentile(0.99).as_secs_f64() * 1e3,
            m.errors,
            audited / p.tps
        )
    };
    Ok(vec![
        base(
            &format!("pgbench, the same SQL, spread over {n} accounts (baseline)"),
            &sql_spread,
        ),
        versus(
            &format!("Transfer through gRPC, spread over {n} accounts"),
            &spread,
            spread_drain,
            &sql_spread,
        ),
        base(
            "pgbench, the same SQL, one hot account (baseline)",
            &sql_hot,
        ),
        versus(
            "Transfer through gRPC, one hot account",
            &hot_run,
            hot_drain,
            &sql_hot,
        ),
    ])
}
