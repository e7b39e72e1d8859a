//! Answers that get lost: the transfer stays PROCESSING, nothing is applied
//! twice, and the settler (or the client's retry) finds out what happened.

use std::time::Duration;

use finance_transaction::CallPolicy;
use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

fn impatient() -> Options {
    Options {
        call_policy: CallPolicy {
            attempt_timeout: Duration::from_millis(300),
            attempts: 2,
            backoff: Duration::from_millis(10),
        },
        settle_interval: Duration::from_millis(100),
        settle_after: Duration::from_millis(200),
    }
}

/// The transfer id the service reported in an OUTCOME_UNKNOWN error.
fn unknown_transfer_id(status: &tonic::Status) -> String {
    assert_eq!(
        (status.code(), reason(status)),
        (Code::Unavailable, "OUTCOME_UNKNOWN".into()),
        "{status:?}"
    );
    status.get_error_details().error_info().unwrap().metadata["transfer_id"].clone()
}

on_each_backend!(async fn the_settler_finishes_what_the_caller_gave_up_on(backend) {
    let mut h = start_with(&backend, impatient()).await;
    let a = funded(&mut h.accounts, "ann", 1_000).await;
    let b = funded(&mut h.accounts, "bob", 0).await;

    h.proxy.cut();
    let id = rid();
    let lost = transfer(&mut h.transfers, transfer_request(&id, &a, &b, 100)).await.unwrap_err();
    let transfer_id = unknown_transfer_id(&lost);
    assert_eq!(state(&get(&mut h.transfers, &transfer_id).await), pb::TransferState::Processing);
    h.proxy.restore();

    let mut client = h.transfers.clone();
    let settled = eventually(|| {
        let mut client = client.clone();
        let transfer_id = transfer_id.clone();
        async move { state(&get(&mut client, &transfer_id).await) == pb::TransferState::Posted }
    })
    .await;
    assert!(settled, "the settler posted the transfer");
    assert_eq!(balances(&mut h.accounts, &[a.clone(), b.clone()]).await, [900, 100]);
    // The client's retry now learns the outcome; nothing moves again.
    let retried = transfer(&mut client, transfer_request(&id, &a, &b, 100)).await.unwrap();
    assert_eq!(retried.transfer_id, transfer_id);
    assert_eq!(balances(&mut h.accounts, &[a, b]).await, [900, 100]);
});

on_each_backend!(async fn a_posting_that_landed_without_an_answer_is_not_applied_twice(backend) {
    let mut h = start_with(&backend, impatient()).await;
    let a = funded(&mut h.accounts, "ann", 1_000).await;
    let b = funded(&mut h.accounts, "bob", 0).await;

    h.proxy.cut();
    let id = rid();
    let lost = transfer(&mut h.transfers, transfer_request(&id, &a, &b, 100)).await.unwrap_err();
    let transfer_id = unknown_transfer_id(&lost);
    // As if an earlier attempt had reached the ledger and only its answer
    // was lost: the posting is there under the transfer's id.
    let landed = h.accounts
        .post_transfer(account_pb::PostTransferRequest {
            transfer_id: transfer_id.clone(),
            from_account_id: a.clone(),
            to_account_id: b.clone(),
            amount: eur(100),
            memo: "test".into(),
            kind: account_pb::TransferKind::Transfer as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .posting
        .unwrap();
    h.proxy.restore();

    // The client retries: the service asks the ledger again under the same
    // id and learns the posting that is already there.
    let retried = transfer(&mut h.transfers, transfer_request(&id, &a, &b, 100)).await.unwrap();
    assert_eq!(state(&retried), pb::TransferState::Posted);
    assert_eq!(retried.posting_id, landed.posting_id);
    assert_eq!(balances(&mut h.accounts, &[a, b]).await, [900, 100]);
});
