//! Deposits and withdrawals: double entry, refusals that move nothing, and
//! concurrency that never takes a balance below zero.

use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

on_each_backend!(async fn every_posting_is_balanced_against_settlement(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "erin", "EUR").await.account_id;
    let b = open(&mut h.client, "frank", "EUR").await.account_id;
    let posting = deposit(&mut h.client, &a, "EUR", 1_000).await.unwrap();
    assert_eq!(posting.kind, "DEPOSIT");
    assert_eq!(posting.balance_after.unwrap().amount_minor, 1_000);
    deposit(&mut h.client, &b, "EUR", 250).await.unwrap();
    let posting = withdraw(&mut h.client, &a, "EUR", 300).await.unwrap();
    assert_eq!(posting.balance_after.unwrap().amount_minor, 700);

    assert_eq!(balance(&mut h.client, &a).await, 700);
    assert_eq!(balance(&mut h.client, &b).await, 250);
    // The settlement account mirrors the money held by everyone else.
    assert_eq!(balance(&mut h.client, "stl_EUR").await, -950);

    let entries = journal(&mut h.client, &a).await;
    let amounts: Vec<i64> = entries.iter().map(|e| e.amount.as_ref().unwrap().amount_minor).collect();
    assert_eq!(amounts, [-300, 1_000], "newest first");
    // Each posting's entries (customer + settlement) sum to zero.
    let settlement = journal(&mut h.client, "stl_EUR").await;
    for entry in &entries {
        let mirror: i64 = settlement
            .iter()
            .filter(|s| s.posting_id == entry.posting_id)
            .map(|s| s.amount.as_ref().unwrap().amount_minor)
            .sum();
        assert_eq!(mirror + entry.amount.as_ref().unwrap().amount_minor, 0);
    }
});

on_each_backend!(async fn refused_movements_change_nothing(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "gina", "EUR").await.account_id;
    deposit(&mut h.client, &a, "EUR", 700).await.unwrap();

    let over = withdraw(&mut h.client, &a, "EUR", 701).await.unwrap_err();
    assert_eq!((over.code(), reason(&over).as_str()), (Code::FailedPrecondition, "INSUFFICIENT_FUNDS"));
    let wrong = deposit(&mut h.client, &a, "USD", 5).await.unwrap_err();
    assert_eq!((wrong.code(), reason(&wrong).as_str()), (Code::FailedPrecondition, "CURRENCY_MISMATCH"));
    let missing = deposit(&mut h.client, "acc_nobody", "EUR", 5).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let negative = deposit(&mut h.client, &a, "EUR", -5).await.unwrap_err();
    assert_eq!(violated_fields(&negative), ["amount.amount_minor"]);
    let settlement = withdraw(&mut h.client, "stl_EUR", "EUR", 1).await.unwrap_err();
    assert_eq!(reason(&settlement), "SETTLEMENT_ACCOUNT");

    assert_eq!(balance(&mut h.client, &a).await, 700);
    assert_eq!(journal(&mut h.client, &a).await.len(), 1);
    assert_eq!(balance(&mut h.client, "stl_EUR").await, -700);
});

on_each_backend!(async fn concurrent_withdrawals_never_overdraw(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "hank", "EUR").await.account_id;
    deposit(&mut h.client, &a, "EUR", 1_000).await.unwrap();

    let attempts: Vec<_> = (0..40)
        .map(|_| {
            let mut client = h.client.clone();
            let a = a.clone();
            tokio::spawn(async move { withdraw(&mut client, &a, "EUR", 100).await })
        })
        .collect();
    let mut succeeded = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => succeeded += 1,
            Err(status) => assert_eq!(reason(&status), "INSUFFICIENT_FUNDS", "{status:?}"),
        }
    }
    assert_eq!(succeeded, 10);
    assert_eq!(balance(&mut h.client, &a).await, 0);
    assert_eq!(balance(&mut h.client, "stl_EUR").await, 0);
    assert_eq!(journal(&mut h.client, &a).await.len(), 11);
});

on_each_backend!(async fn first_deposits_in_a_new_currency_may_race(backend) {
    let mut h = start(&backend).await;
    let mut accounts = Vec::new();
    for i in 0..8 {
        accounts.push(open(&mut h.client, &format!("yuki-{i}"), "JPY").await.account_id);
    }
    let deposits: Vec<_> = accounts
        .iter()
        .map(|a| {
            let mut client = h.client.clone();
            let a = a.clone();
            tokio::spawn(async move { deposit(&mut client, &a, "JPY", 1_000).await })
        })
        .collect();
    for d in deposits {
        d.await.unwrap().expect("every first deposit succeeds");
    }
    assert_eq!(balance(&mut h.client, "stl_JPY").await, -8_000);
});

on_each_backend!(async fn amounts_beyond_the_limit_are_refused(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "zed", "EUR").await.account_id;
    let status = deposit(&mut h.client, &a, "EUR", 1_000_000_000_000_001).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["amount.amount_minor"]);
    // The largest allowed amount works, and balances stay exact.
    deposit(&mut h.client, &a, "EUR", 1_000_000_000_000_000).await.unwrap();
    assert_eq!(balance(&mut h.client, &a).await, 1_000_000_000_000_000);
});
