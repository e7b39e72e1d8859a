//! Transfers and reversals, one at a time and with duplicates racing.

use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

on_each_backend!(async fn a_transfer_is_posted_once_per_request_id(backend) {
    let mut h = start(&backend).await;
    let a = funded(&mut h.accounts, "ann", 1_000).await;
    let b = funded(&mut h.accounts, "bob", 0).await;

    let id = rid();
    let first = transfer(&mut h.transfers, transfer_request(&id, &a, &b, 250)).await.unwrap();
    assert_eq!(state(&first), pb::TransferState::Posted);
    assert!(first.posting_id.starts_with("pst_"));
    assert_eq!(balances(&mut h.accounts, &[a.clone(), b.clone()]).await, [750, 250]);

    let again = transfer(&mut h.transfers, transfer_request(&id, &a, &b, 250)).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(balances(&mut h.accounts, &[a.clone(), b.clone()]).await, [750, 250]);
    let reused = transfer(&mut h.transfers, transfer_request(&id, &a, &b, 251)).await.unwrap_err();
    assert_eq!((reused.code(), reason(&reused)), (Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED".into()));

    assert_eq!(get(&mut h.transfers, &first.transfer_id).await, first);
    let missing = h.transfers.get_transfer(pb::GetTransferRequest { transfer_id: "trf_nope".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
});

on_each_backend!(async fn refusals_are_recorded_and_replayed_as_given(backend) {
    let mut h = start(&backend).await;
    let a = funded(&mut h.accounts, "ann", 100).await;
    let b = funded(&mut h.accounts, "bob", 0).await;

    let poor = rid();
    let refused = transfer(&mut h.transfers, transfer_request(&poor, &a, &b, 101)).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused)), (Code::FailedPrecondition, "INSUFFICIENT_FUNDS".into()));
    // Money arriving later does not change what this request was told.
    h.accounts
        .deposit(meshwork_proto::meshwork::finance::account::v1::DepositRequest {
            request_id: rid(),
            account_id: a.clone(),
            amount: eur(500),
            memo: String::new(),
        })
        .await
        .unwrap();
    let replay = transfer(&mut h.transfers, transfer_request(&poor, &a, &b, 101)).await.unwrap_err();
    assert_eq!((replay.code(), reason(&replay), replay.message()), (refused.code(), reason(&refused), refused.message()));
    let recorded = all_transfers(&mut h.transfers).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(state(&recorded[0]), pb::TransferState::Failed);
    assert_eq!(recorded[0].failure_reason, "INSUFFICIENT_FUNDS");

    let unknown = transfer(&mut h.transfers, transfer_request(&rid(), &a, "acc_nobody", 1)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let mut usd = transfer_request(&rid(), &a, &b, 1);
    usd.amount.as_mut().unwrap().currency = "USD".into();
    let mismatch = transfer(&mut h.transfers, usd).await.unwrap_err();
    assert_eq!(reason(&mismatch), "CURRENCY_MISMATCH");
    h.accounts
        .freeze_account(meshwork_proto::meshwork::finance::account::v1::FreezeAccountRequest {
            request_id: rid(),
            account_id: b.clone(),
            reason: "investigation".into(),
        })
        .await
        .unwrap();
    let frozen = transfer(&mut h.transfers, transfer_request(&rid(), &a, &b, 1)).await.unwrap_err();
    assert_eq!(reason(&frozen), "ACCOUNT_FROZEN");

    // Bad input never reaches the ledger and is not recorded.
    let own = transfer(&mut h.transfers, transfer_request(&rid(), &a, &a, 1)).await.unwrap_err();
    assert_eq!((own.code(), violated_fields(&own)), (Code::InvalidArgument, vec!["to_account_id".to_owned()]));
    let mut bad = transfer_request("", &a, &b, -5);
    bad.amount.as_mut().unwrap().currency = "euro".into();
    let bad = transfer(&mut h.transfers, bad).await.unwrap_err();
    assert_eq!(violated_fields(&bad), ["request_id", "amount.currency", "amount.amount_minor"]);

    assert_eq!(balances(&mut h.accounts, &[a.clone(), b.clone()]).await, [600, 0]);
    assert_eq!(all_transfers(&mut h.transfers).await.len(), 4, "bad input left no transfer");
});

on_each_backend!(async fn concurrent_duplicates_move_money_once(backend) {
    let mut h = start(&backend).await;
    let a = funded(&mut h.accounts, "ann", 1_000).await;
    let b = funded(&mut h.accounts, "bob", 0).await;
    let id = rid();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let mut client = h.transfers.clone();
        let request = transfer_request(&id, &a, &b, 300);
        tasks.spawn(async move { transfer(&mut client, request).await });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(outcome) = tasks.join_next().await {
        let transfer = outcome.unwrap().expect("every duplicate gets the result");
        assert_eq!(state(&transfer), pb::TransferState::Posted);
        ids.insert(transfer.transfer_id);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(balances(&mut h.accounts, &[a, b]).await, [700, 300]);
});

on_each_backend!(async fn a_reversal_compensates_at_most_once(backend) {
    let mut h = start(&backend).await;
    let a = funded(&mut h.accounts, "ann", 1_000).await;
    let b = funded(&mut h.accounts, "bob", 0).await;
    let c = funded(&mut h.accounts, "cid", 0).await;
    let posted = transfer(&mut h.transfers, transfer_request(&rid(), &a, &b, 400)).await.unwrap();

    // Bob spent part of it: the reversal cannot be covered and is refused;
    // the transfer stays POSTED.
    transfer(&mut h.transfers, transfer_request(&rid(), &b, &c, 300)).await.unwrap();
    let undo = rid();
    let refused = reverse(&mut h.transfers, &undo, &posted.transfer_id).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused)), (Code::FailedPrecondition, "INSUFFICIENT_FUNDS".into()));
    assert_eq!(state(&get(&mut h.transfers, &posted.transfer_id).await), pb::TransferState::Posted);

    // Once Bob has the money back, the same request is evaluated afresh.
    transfer(&mut h.transfers, transfer_request(&rid(), &c, &b, 300)).await.unwrap();
    let reversed = reverse(&mut h.transfers, &undo, &posted.transfer_id).await.unwrap();
    assert_eq!(state(&reversed), pb::TransferState::Reversed);
    assert!(reversed.reversal_posting_id.starts_with("pst_"));
    assert_eq!(reversed.reversal_reason, "customer dispute");
    assert_eq!(balances(&mut h.accounts, &[a.clone(), b.clone(), c.clone()]).await, [1_000, 0, 0]);

    // The same request again: the same answer; another request: refused.
    assert_eq!(reverse(&mut h.transfers, &undo, &posted.transfer_id).await.unwrap(), reversed);
    let twice = reverse(&mut h.transfers, &rid(), &posted.transfer_id).await.unwrap_err();
    assert_eq!(reason(&twice), "TRANSFER_ALREADY_REVERSED");
    assert_eq!(balances(&mut h.accounts, &[a.clone(), b.clone(), c.clone()]).await, [1_000, 0, 0]);

    let failed = transfer(&mut h.transfers, transfer_request(&rid(), &b, &a, 5)).await.unwrap_err();
    assert_eq!(reason(&failed), "INSUFFICIENT_FUNDS");
    let failed_id = all_transfers(&mut h.transfers).await.last().unwrap().transfer_id.clone();
    let not_posted = reverse(&mut h.transfers, &rid(), &failed_id).await.unwrap_err();
    assert_eq!(reason(&not_posted), "TRANSFER_NOT_POSTED");
    let nowhere = reverse(&mut h.transfers, &rid(), "trf_nope").await.unwrap_err();
    assert_eq!(nowhere.code(), Code::NotFound);
});

on_each_backend!(async fn transfers_are_listed_by_account_and_time_in_pages(backend) {
    let mut h = start(&backend).await;
    let a = funded(&mut h.accounts, "ann", 1_000).await;
    let b = funded(&mut h.accounts, "bob", 0).await;
    let c = funded(&mut h.accounts, "cid", 0).await;
    let mut made = Vec::new();
    for (from, to) in [(&a, &b), (&a, &c), (&b, &c), (&a, &b)] {
        made.push(transfer(&mut h.transfers, transfer_request(&rid(), from, to, 10)).await.unwrap());
    }
    let page = h.transfers
        .list_transfers(pb::ListTransfersRequest { account_id: b.clone(), page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = page.transfers.iter().map(|t| t.transfer_id.clone()).collect();
    assert_eq!(ids, [made[0].transfer_id.clone(), made[2].transfer_id.clone()]);
    let rest = h.transfers
        .list_transfers(pb::ListTransfersRequest {
            account_id: b.clone(),
            page_size: 2,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.transfers.len(), 1);
    assert_eq!(rest.transfers[0].transfer_id, made[3].transfer_id);
    assert!(rest.next_page_token.is_empty());

    // A time range: from the third transfer's creation on.
    let since = made[2].create_time;
    let later = h.transfers
        .list_transfers(pb::ListTransfersRequest { start_time: since, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(later.transfers.len(), 2);
    let backwards = h.transfers
        .list_transfers(pb::ListTransfersRequest {
            start_time: made[3].create_time,
            end_time: made[0].create_time,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&backwards), ["end_time"]);
});
