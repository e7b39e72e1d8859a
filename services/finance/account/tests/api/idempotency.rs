//! The same request id twice moves nothing twice; another payload under the
//! same id is refused.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

fn deposit_request(request_id: &str, account_id: &str, amount: i64) -> pb::DepositRequest {
    pb::DepositRequest {
        request_id: request_id.to_owned(),
        account_id: account_id.to_owned(),
        amount: money("EUR", amount),
        memo: "salary".into(),
    }
}

on_each_backend!(async fn a_repeated_deposit_returns_the_first_result(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "ivy", "EUR").await.account_id;
    let key = rid();
    let first = h.client.deposit(deposit_request(&key, &a, 100)).await.unwrap().into_inner();
    let again = h.client.deposit(deposit_request(&key, &a, 100)).await.unwrap().into_inner();
    assert_eq!(first, again);
    assert_eq!(balance(&mut h.client, &a).await, 100);
    assert_eq!(journal(&mut h.client, &a).await.len(), 1);

    let reused = h.client.deposit(deposit_request(&key, &a, 101)).await.unwrap_err();
    assert_eq!((reused.code(), reason(&reused).as_str()), (Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED"));
    let reused = h
        .client
        .withdraw(pb::WithdrawRequest { request_id: key.clone(), account_id: a.clone(), amount: money("EUR", 100), memo: "salary".into() })
        .await
        .unwrap_err();
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(balance(&mut h.client, &a).await, 100);
});

on_each_backend!(async fn concurrent_duplicates_apply_once(backend) {
    let mut h = start(&backend).await;
    let a = open(&mut h.client, "jack", "EUR").await.account_id;
    let key = rid();
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let mut client = h.client.clone();
            let request = deposit_request(&key, &a, 250);
            tokio::spawn(async move { client.deposit(request).await.map(|r| r.into_inner()) })
        })
        .collect();
    let mut postings = Vec::new();
    for call in calls {
        postings.push(call.await.unwrap().expect("every duplicate succeeds").posting.unwrap().posting_id);
    }
    postings.dedup();
    assert_eq!(postings.len(), 1, "one posting for one request id");
    assert_eq!(balance(&mut h.client, &a).await, 250);
    assert_eq!(journal(&mut h.client, &a).await.len(), 1);
});

on_each_backend!(async fn a_repeated_create_or_freeze_returns_the_same_account(backend) {
    let mut h = start(&backend).await;
    let request = pb::CreateAccountRequest {
        request_id: rid(),
        owner_id: "kate".into(),
        currency: "GBP".into(),
        r#type: pb::AccountType::Savings as i32,
    };
    let first = h.client.create_account(request.clone()).await.unwrap().into_inner().account.unwrap();
    let again = h.client.create_account(request.clone()).await.unwrap().into_inner().account.unwrap();
    assert_eq!(first.account_id, again.account_id);
    let listed = h.client.list_accounts(pb::ListAccountsRequest { owner_id: "kate".into(), ..Default::default() }).await.unwrap();
    assert_eq!(listed.into_inner().accounts.len(), 1);

    let freeze = pb::FreezeAccountRequest { request_id: rid(), account_id: first.account_id.clone(), reason: "kyc".into() };
    h.client.freeze_account(freeze.clone()).await.unwrap();
    // A retry of the same freeze is not "already frozen": it is the same request.
    let retried = h.client.freeze_account(freeze).await.unwrap().into_inner().account.unwrap();
    assert_eq!(retried.state, pb::AccountState::Frozen as i32);
});
