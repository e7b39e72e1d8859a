//! PostTransfer (the ledger side of finance.transaction) and
//! BatchGetBalances: both legs or none, once per transfer id, refusals that
//! stay refusals, and snapshot reads that always sum up.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

fn transfer_request(id: &str, from: &str, to: &str, amount: i64) -> pb::PostTransferRequest {
    pb::PostTransferRequest {
        transfer_id: id.to_owned(),
        from_account_id: from.to_owned(),
        to_account_id: to.to_owned(),
        amount: money("EUR", amount),
        memo: "rent".to_owned(),
        kind: pb::TransferKind::Transfer as i32,
    }
}

async fn post(
    client: &mut Client,
    request: pb::PostTransferRequest,
) -> Result<pb::PostTransferResponse, tonic::Status> {
    client.post_transfer(request).await.map(|r| r.into_inner())
}

async fn balances(client: &mut Client, ids: &[&str]) -> Result<Vec<i64>, tonic::Status> {
    let response = client
        .batch_get_balances(pb::BatchGetBalancesRequest {
            account_ids: ids.iter().map(|id| id.to_string()).collect(),
        })
        .await?
        .into_inner();
    Ok(response
        .balances
        .iter()
        .map(|b| b.balance.as_ref().unwrap().amount_minor)
        .collect())
}

on_each_backend!(async fn a_transfer_moves_both_legs_once(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "ann", "EUR").await.account_id;
    let b = open(&mut h.client, "bob", "EUR").await.account_id;
    deposit(&mut h.client, &a, "EUR", 1_000).await.unwrap();

    let first = post(&mut h.client, transfer_request("trf_1", &a, &b, 300)).await.unwrap();
    let posting = first.posting.clone().unwrap();
    assert_eq!(posting.kind, "TRANSFER");
    assert_eq!(posting.balance_after.unwrap().amount_minor, 700);
    assert_eq!(first.to_balance_after.as_ref().unwrap().amount_minor, 300);
    assert_eq!(balances(&mut h.client, &[&a, &b]).await.unwrap(), [700, 300]);
    // Cached reads see the new balances too.
    assert_eq!(balance(&mut h.client, &a).await, 700);
    assert_eq!(balance(&mut h.client, &b).await, 300);

    // The same transfer id again: the original answer, no money moved.
    let again = post(&mut h.client, transfer_request("trf_1", &a, &b, 300)).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(balances(&mut h.client, &[&a, &b]).await.unwrap(), [700, 300]);
    // The same id with another amount is refused.
    let reused = post(&mut h.client, transfer_request("trf_1", &a, &b, 301)).await.unwrap_err();
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");

    // One posting, two entries that sum to zero.
    let on_b = journal(&mut h.client, &b).await;
    assert_eq!(on_b.len(), 1);
    assert_eq!(on_b[0].posting_id, posting.posting_id);
    let on_a = journal(&mut h.client, &a).await;
    let leg_a = on_a.iter().find(|e| e.posting_id == posting.posting_id).unwrap();
    assert_eq!(
        leg_a.amount.as_ref().unwrap().amount_minor + on_b[0].amount.as_ref().unwrap().amount_minor,
        0
    );
});

on_each_backend!(async fn refusals_move_nothing_and_stay_refused(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "ann", "EUR").await.account_id;
    let b = open(&mut h.client, "bob", "EUR").await.account_id;
    let usd = open(&mut h.client, "cid", "USD").await.account_id;
    deposit(&mut h.client, &a, "EUR", 100).await.unwrap();

    let poor = post(&mut h.client, transfer_request("trf_poor", &a, &b, 101)).await.unwrap_err();
    assert_eq!((poor.code(), reason(&poor)), (Code::FailedPrecondition, "INSUFFICIENT_FUNDS".into()));
    // Money arriving later does not turn a refused transfer id into a
    // success: a late duplicate of the first attempt must not apply.
    deposit(&mut h.client, &a, "EUR", 100).await.unwrap();
    let replay = post(&mut h.client, transfer_request("trf_poor", &a, &b, 101)).await.unwrap_err();
    assert_eq!((replay.code(), reason(&replay)), (Code::FailedPrecondition, "INSUFFICIENT_FUNDS".into()));
    assert_eq!(replay.message(), poor.message());

    let mismatch = post(&mut h.client, transfer_request("trf_usd", &a, &usd, 10)).await.unwrap_err();
    assert_eq!(reason(&mismatch), "CURRENCY_MISMATCH");
    let missing = post(&mut h.client, transfer_request("trf_nobody", &a, "acc_nobody", 10)).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let replayed_missing = post(&mut h.client, transfer_request("trf_nobody", &a, "acc_nobody", 10)).await.unwrap_err();
    assert_eq!(replayed_missing.code(), Code::NotFound);

    h.client
        .freeze_account(pb::FreezeAccountRequest {
            request_id: rid(),
            account_id: b.clone(),
            reason: "investigation".into(),
        })
        .await
        .unwrap();
    let frozen = post(&mut h.client, transfer_request("trf_frozen", &a, &b, 10)).await.unwrap_err();
    assert_eq!(reason(&frozen), "ACCOUNT_FROZEN");

    let same = post(&mut h.client, transfer_request("trf_self", &a, &a, 10)).await.unwrap_err();
    assert_eq!(same.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&same), ["to_account_id"]);
    let mut unspecified = transfer_request("trf_kind", &a, &b, 10);
    unspecified.kind = 0;
    unspecified.amount = money("EUR", 0);
    let bad = post(&mut h.client, unspecified).await.unwrap_err();
    assert_eq!(violated_fields(&bad), ["amount.amount_minor", "kind"]);

    assert_eq!(balances(&mut h.client, &[&a, &b, &usd]).await.unwrap(), [200, 0, 0]);
    assert_eq!(journal(&mut h.client, &b).await.len(), 0);
});

on_each_backend!(async fn crossing_transfers_never_deadlock_or_overdraw(backend) {
    let h = start(&backend).await;
    let mut client = h.client.clone();
    let a = open(&mut client, "ann", "EUR").await.account_id;
    let b = open(&mut client, "bob", "EUR").await.account_id;
    deposit(&mut client, &a, "EUR", 500).await.unwrap();
    deposit(&mut client, &b, "EUR", 500).await.unwrap();

    // Opposite directions at once: with rows locked in id order both
    // finish; the guards keep both balances at or above zero.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let mut client = h.client.clone();
        let (from, to) = if i % 2 == 0 { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
        tasks.spawn(async move {
            post(&mut client, transfer_request(&format!("trf_x{i}"), &from, &to, 70)).await
        });
    }
    let mut refused = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(_) => {}
            Err(status) if reason(&status) == "INSUFFICIENT_FUNDS" => refused += 1,
            Err(status) => panic!("unexpected refusal: {status:?}"),
        }
    }
    let both = balances(&mut client, &[&a, &b]).await.unwrap();
    assert!(both.iter().all(|b| *b >= 0), "{both:?}");
    assert_eq!(both[0] + both[1], 1_000, "{refused} refused");
});

on_each_backend!(async fn batch_balances_need_known_ids(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "ann", "EUR").await.account_id;
    deposit(&mut h.client, &a, "EUR", 42).await.unwrap();
    assert_eq!(balances(&mut h.client, &[&a, "stl_EUR", &a]).await.unwrap(), [42, -42, 42]);
    let missing = balances(&mut h.client, &[&a, "acc_nobody"]).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("acc_nobody"));
    let empty = balances(&mut h.client, &[]).await.unwrap_err();
    assert_eq!(violated_fields(&empty), ["account_ids"]);
});

on_each_backend!(async fn a_refusal_names_the_account_at_fault(backend) {
    let mut h = start(&backend).await;
    // The sender's id sorts first, so its leg is applied before the
    // receiver's guard fails: the reason must still be the receiver's.
    let sender = open(&mut h.client, "ann", "EUR").await.account_id;
    let frozen = open(&mut h.client, "bob", "EUR").await.account_id;
    assert!(sender < frozen);
    deposit(&mut h.client, &sender, "EUR", 100).await.unwrap();
    h.client
        .freeze_account(pb::FreezeAccountRequest { request_id: rid(), account_id: frozen.clone(), reason: "hold".into() })
        .await
        .unwrap();
    let refused = post(&mut h.client, transfer_request("trf_all", &sender, &frozen, 100)).await.unwrap_err();
    assert_eq!(reason(&refused), "ACCOUNT_FROZEN");
    assert_eq!(balances(&mut h.client, &[&sender, &frozen]).await.unwrap(), [100, 0]);
});

on_each_backend!(async fn request_ids_cannot_take_a_transfer_key(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "ann", "EUR").await.account_id;
    let b = open(&mut h.client, "bob", "EUR").await.account_id;
    // A client's request id shaped like the ledger's key of a transfer.
    h.client
        .deposit(pb::DepositRequest {
            request_id: "transfer:trf_taken".into(),
            account_id: a.clone(),
            amount: money("EUR", 500),
            memo: String::new(),
        })
        .await
        .unwrap();
    post(&mut h.client, transfer_request("trf_taken", &a, &b, 200)).await.unwrap();
    assert_eq!(balances(&mut h.client, &[&a, &b]).await.unwrap(), [300, 200]);
});

on_each_backend!(async fn freezing_while_money_moves_is_never_a_conflict(backend) {
    let h = start(&backend).await;
    let mut client = h.client.clone();
    let account = open(&mut client, "busy", "EUR").await.account_id;
    deposit(&mut client, &account, "EUR", 10).await.unwrap();
    // Deposits keep the account's version moving while it is frozen and
    // unfrozen; every state change must still apply (a lost race is tried
    // again), and deposits are either posted or refused as frozen.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut movers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (mut client, account, stop) = (h.client.clone(), account.clone(), stop.clone());
        movers.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match deposit(&mut client, &account, "EUR", 1).await {
                    Ok(_) => {}
                    Err(status) => assert_eq!(reason(&status), "ACCOUNT_FROZEN", "{status:?}"),
                }
            }
        });
    }
    for _ in 0..15 {
        client
            .freeze_account(pb::FreezeAccountRequest {
                request_id: rid(),
                account_id: account.clone(),
                reason: "check".into(),
            })
            .await
            .expect("freeze while money moves");
        client
            .unfreeze_account(pb::UnfreezeAccountRequest {
                request_id: rid(),
                account_id: account.clone(),
                reason: "cleared".into(),
            })
            .await
            .expect("unfreeze while money moves");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while let Some(done) = movers.join_next().await {
        done.unwrap();
    }
});
