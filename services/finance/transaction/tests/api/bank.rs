//! The bank test: many clients move money at random among a few accounts,
//! with impatient clients (short deadlines, retried with the same request
//! id as a real client would), reversals, snapshot reads during the run and,
//! on PostgreSQL, the services' database sessions killed under them.
//! Afterwards no cent is created or lost, nothing is negative, every journal
//! balances and every transfer is applied exactly as its final state says.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_runtime::db::{Database, DbConfig};
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

const ACCOUNTS: usize = 6;
const OPENING: i64 = 10_000;
const CLIENTS: usize = 6;
const OPERATIONS: usize = 40;
/// Attempts of one request (same request id) before the client gives up
/// without learning the outcome.
const ATTEMPTS: usize = 4;

/// Whether a failed call may have done nothing or something: the client
/// cannot tell, and asks again with the same request id.
fn outcome_unknown(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted
            | Code::Internal
    )
}

/// A call with, sometimes, a deadline too short for it to finish.
fn impatient<T>(message: T, attempt: usize) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if attempt == 0 && fastrand::u8(0..4) == 0 {
        request.set_timeout(Duration::from_millis(fastrand::u64(1..30)));
    }
    request
}

#[derive(Default)]
struct Tally {
    acknowledged: Vec<String>,
    reversed: Vec<String>,
    never_learned: Vec<pb::TransferRequest>,
    reversals_never_learned: Vec<pb::ReverseTransferRequest>,
}

async fn client_run(mut client: Transactions, accounts: Arc<Vec<String>>) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..OPERATIONS {
        if !tally.acknowledged.is_empty() && fastrand::u8(0..10) == 0 {
            let pick = fastrand::usize(0..tally.acknowledged.len());
            let transfer_id = tally.acknowledged.swap_remove(pick);
            let request = pb::ReverseTransferRequest {
                request_id: rid(),
                transfer_id: transfer_id.clone(),
                reason: "bank test".into(),
            };
            let mut learned = false;
            for attempt in 0..ATTEMPTS {
                match client
                    .reverse_transfer(impatient(request.clone(), attempt))
                    .await
                {
                    Ok(_) => {
                        tally.reversed.push(transfer_id.clone());
                        learned = true;
                        break;
                    }
                    Err(status) if outcome_unknown(&status) => {
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(5..40))).await;
                    }
                    Err(_) => {
                        // Refused (the receiver spent it): still posted.
                        tally.acknowledged.push(transfer_id.clone());
                        learned = true;
                        break;
                    }
                }
            }
            if !learned {
                tally.reversals_never_learned.push(request);
            }
            continue;
        }
        let from = fastrand::usize(0..ACCOUNTS);
        let to = (from + fastrand::usize(1..ACCOUNTS)) % ACCOUNTS;
        let request = transfer_request(
            &rid(),
            &accounts[from],
            &accounts[to],
            fastrand::i64(1..4_000),
        );
        let mut learned = false;
        for attempt in 0..ATTEMPTS {
            match client.transfer(impatient(request.clone(), attempt)).await {
                Ok(response) => {
                    let transfer = response.into_inner().transfer.unwrap();
                    assert_eq!(state(&transfer), pb::TransferState::Posted);
                    tally.acknowledged.push(transfer.transfer_id);
                    learned = true;
                    break;
                }
                Err(status) if outcome_unknown(&status) => {
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(5..40))).await;
                }
                Err(status) => {
                    assert!(
                        matches!(status.code(), Code::FailedPrecondition),
                        "unexpected refusal: {status:?}"
                    );
                    learned = true;
                    break;
                }
            }
        }
        if !learned {
            tally.never_learned.push(request);
        }
    }
    tally
}

/// Ends the services' database sessions over and over, until stopped.
async fn kill_sessions(configs: Vec<DbConfig>, stop: Arc<AtomicBool>, killed: Arc<AtomicUsize>) {
    let admin = Database::connect(&DbConfig::new(configs[0].url.clone(), None))
        .await
        .expect("admin connection");
    let names: Vec<String> = configs
        .iter()
        .map(|c| format!("meshwork/{}", c.schema.as_deref().expect("schema")))
        .collect();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
        let victims: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 OR application_name = $2",
        )
        .bind(&names[0])
        .bind(&names[1])
        .fetch_all(admin.pool())
        .await
        .expect("terminate sessions");
        killed.fetch_add(victims.len(), Ordering::Relaxed);
    }
    admin.close().await;
}

async fn all_entries(accounts: &mut Accounts, account_id: &str) -> Vec<account_pb::JournalEntry> {
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = accounts
            .list_journal_entries(account_pb::ListJournalEntriesRequest {
                account_id: account_id.to_owned(),
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("journal")
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        page_token = page.next_page_token;
    }
}

on_each_backend!(async fn no_money_is_created_or_lost(backend) {
    let mut h = start(&backend).await;
    let mut ids = Vec::new();
    for i in 0..ACCOUNTS {
        ids.push(funded(&mut h.accounts, &format!("customer-{i}"), OPENING).await);
    }
    let ids = Arc::new(ids);
    let total = OPENING * ACCOUNTS as i64;

    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicUsize::new(0));
    let killer = backend.is_servers().then(|| {
        tokio::spawn(kill_sessions(
            vec![h.ledger_db.clone(), h.service_db.clone()],
            stop.clone(),
            killed.clone(),
        ))
    });
    let reader = tokio::spawn({
        let mut accounts = h.accounts.clone();
        let ids = ids.clone();
        let stop = stop.clone();
        async move {
            let mut snapshots = 0;
            while !stop.load(Ordering::Relaxed) || snapshots == 0 {
                let request = account_pb::BatchGetBalancesRequest { account_ids: ids.to_vec() };
                match accounts.batch_get_balances(request).await {
                    Ok(response) => {
                        let amounts: Vec<i64> = response
                            .into_inner()
                            .balances
                            .iter()
                            .map(|b| b.balance.as_ref().unwrap().amount_minor)
                            .collect();
                        assert_eq!(amounts.iter().sum::<i64>(), total, "snapshot {amounts:?}");
                        assert!(amounts.iter().all(|a| *a >= 0), "snapshot {amounts:?}");
                        snapshots += 1;
                    }
                    // Its session killed under it: try again.
                    Err(status) if outcome_unknown(&status) => {}
                    Err(status) => panic!("snapshot read failed: {status:?}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            snapshots
        }
    });

    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        clients.spawn(client_run(h.transfers.clone(), ids.clone()));
    }
    let mut tallies = Vec::new();
    while let Some(tally) = clients.join_next().await {
        tallies.push(tally.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(killer) = killer {
        killer.await.unwrap();
    }
    let snapshots = reader.await.unwrap();

    // Clients that never learned an outcome ask once more, patiently, as a
    // real client would after an outage: each transfer gets one final state.
    for tally in &tallies {
        // Reversals too: the same request id until it is known.
        for request in &tally.reversals_never_learned {
            let mut answer = h.transfers.reverse_transfer(request.clone()).await;
            for _ in 0..20 {
                match &answer {
                    Err(status) if outcome_unknown(status) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        answer = h.transfers.reverse_transfer(request.clone()).await;
                    }
                    _ => break,
                }
            }
            assert!(
                answer.is_ok() || answer.as_ref().unwrap_err().code() == Code::FailedPrecondition,
                "{answer:?}"
            );
        }
        for request in &tally.never_learned {
            let mut answer = transfer(&mut h.transfers, request.clone()).await;
            for _ in 0..20 {
                match &answer {
                    Err(status) if outcome_unknown(status) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        answer = transfer(&mut h.transfers, request.clone()).await;
                    }
                    _ => break,
                }
            }
            assert!(answer.is_ok() || answer.as_ref().unwrap_err().code() == Code::FailedPrecondition, "{answer:?}");
        }
    }

    // Every transfer is final, and the balances are exactly what the final
    // states say: each posted transfer applied once, each reversed one
    // compensated once, nothing else.
    let transfers = all_transfers(&mut h.transfers).await;
    let mut expected: HashMap<&str, i64> = ids.iter().map(|id| (id.as_str(), OPENING)).collect();
    let mut posted = 0;
    for t in &transfers {
        let amount = t.amount.as_ref().unwrap().amount_minor;
        match state(t) {
            pb::TransferState::Posted => {
                *expected.get_mut(t.from_account_id.as_str()).unwrap() -= amount;
                *expected.get_mut(t.to_account_id.as_str()).unwrap() += amount;
                posted += 1;
            }
            pb::TransferState::Reversed | pb::TransferState::Failed => {}
            other => panic!("transfer {} left {other:?}", t.transfer_id),
        }
    }
    let actual = balances(&mut h.accounts, &ids).await;
    for (id, balance) in ids.iter().zip(&actual) {
        assert_eq!(*balance, expected[id.as_str()], "balance of {id}");
        assert!(*balance >= 0);
    }
    assert_eq!(actual.iter().sum::<i64>(), total);

    // What clients were told survived.
    let by_id: HashMap<&str, &pb::Transfer> = transfers.iter().map(|t| (t.transfer_id.as_str(), t)).collect();
    for tally in &tallies {
        for id in &tally.acknowledged {
            assert_eq!(state(by_id[id.as_str()]), pb::TransferState::Posted, "acknowledged {id}");
        }
        for id in &tally.reversed {
            assert_eq!(state(by_id[id.as_str()]), pb::TransferState::Reversed, "reversed {id}");
        }
    }

    // Every journal balances: each account's entries sum to its balance,
    // each posting's entries sum to zero.
    let mut postings: HashMap<String, i64> = HashMap::new();
    for (id, balance) in ids.iter().zip(&actual) {
        let entries = all_entries(&mut h.accounts, id).await;
        let sum: i64 = entries.iter().map(|e| e.amount.as_ref().unwrap().amount_minor).sum();
        assert_eq!(sum, *balance, "journal of {id}");
        for entry in entries.iter().filter(|e| e.kind != "DEPOSIT") {
            *postings.entry(entry.posting_id.clone()).or_default() += entry.amount.as_ref().unwrap().amount_minor;
        }
    }
    assert!(postings.values().all(|sum| *sum == 0), "a transfer posting is unbalanced");
    let reversals = transfers.iter().filter(|t| state(t) == pb::TransferState::Reversed).count();
    assert_eq!(postings.len(), posted + 2 * reversals, "one posting per posted transfer, two per reversed");

    eprintln!(
        "bank: {} transfers ({posted} posted, {reversals} reversed), {snapshots} snapshots, {} sessions killed",
        transfers.len(),
        killed.load(Ordering::Relaxed)
    );
    assert!(snapshots > 0);
});
