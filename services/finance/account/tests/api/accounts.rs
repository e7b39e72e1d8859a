//! Opening, reading, listing and the account state machine.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

on_each_backend!(async fn opens_reads_and_looks_up_an_account(backend) {
    let mut h = start(&backend).await;
    let account = open(&mut h.client, "alice", "EUR").await;
    assert!(account.account_id.starts_with("acc_"));
    assert_eq!(account.state, pb::AccountState::Active as i32);
    assert_eq!(account.account_number.len(), 16);
    assert_eq!(account.masked_account_number, format!("6222********{}", &account.account_number[12..]));

    let got = h.client.get_account(pb::GetAccountRequest { account_id: account.account_id.clone() }).await.unwrap();
    assert_eq!(got.into_inner().account.unwrap(), account);

    let found = h
        .client
        .lookup_account(pb::LookupAccountRequest { account_number: account.account_number.clone() })
        .await
        .unwrap();
    assert_eq!(found.into_inner().account.unwrap().account_id, account.account_id);
});

on_each_backend!(async fn lists_accounts_by_owner_in_pages(backend) {
    let mut h = start(&backend).await;
    let mut opened = Vec::new();
    for _ in 0..3 {
        opened.push(open(&mut h.client, "bob", "CNY").await.account_id);
    }
    open(&mut h.client, "carol", "CNY").await;

    let first = h
        .client
        .list_accounts(pb::ListAccountsRequest { owner_id: "bob".into(), page_size: 2, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.accounts.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = h
        .client
        .list_accounts(pb::ListAccountsRequest { owner_id: "bob".into(), page_size: 2, page_token: first.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.next_page_token, "");
    let listed: Vec<_> = first.accounts.iter().chain(&second.accounts).map(|a| a.account_id.clone()).collect();
    assert_eq!(listed, opened);

    let bad = h
        .client
        .list_accounts(pb::ListAccountsRequest { owner_id: String::new(), page_size: -1, page_token: "nonsense".into() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["page_size", "page_token"]);
});

on_each_backend!(async fn bad_input_names_every_field_and_creates_nothing(backend) {
    let mut h = start(&backend).await;
    let status = h
        .client
        .create_account(pb::CreateAccountRequest {
            request_id: String::new(),
            owner_id: "  ".into(),
            currency: "euro".into(),
            r#type: pb::AccountType::Settlement as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["request_id", "owner_id", "currency", "type"]);
    let listed = h.client.list_accounts(pb::ListAccountsRequest::default()).await.unwrap().into_inner();
    assert!(listed.accounts.is_empty());

    let status = h.client.get_account(pb::GetAccountRequest { account_id: "acc_missing".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let status = h
        .client
        .lookup_account(pb::LookupAccountRequest { account_number: "6222000000000001".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["account_number"]);
});

on_each_backend!(async fn freeze_unfreeze_and_close_follow_the_state_machine(backend) {
    let mut h = start(&backend).await;
    let account = open(&mut h.client, "dave", "USD").await;
    let id = account.account_id.clone();
    deposit(&mut h.client, &id, "USD", 500).await.unwrap();

    let frozen = h
        .client
        .freeze_account(pb::FreezeAccountRequest { request_id: rid(), account_id: id.clone(), reason: "suspected fraud".into() })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(frozen.state, pb::AccountState::Frozen as i32);
    assert_eq!(frozen.freeze_reason, "suspected fraud");

    let again = h
        .client
        .freeze_account(pb::FreezeAccountRequest { request_id: rid(), account_id: id.clone(), reason: "again".into() })
        .await
        .unwrap_err();
    assert_eq!((again.code(), reason(&again).as_str()), (Code::FailedPrecondition, "ACCOUNT_ALREADY_FROZEN"));

    let refused = withdraw(&mut h.client, &id, "USD", 1).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "ACCOUNT_FROZEN"));
    let refused = deposit(&mut h.client, &id, "USD", 1).await.unwrap_err();
    assert_eq!(reason(&refused), "ACCOUNT_FROZEN");
    assert_eq!(balance(&mut h.client, &id).await, 500);

    let no_reason = h
        .client
        .unfreeze_account(pb::UnfreezeAccountRequest { request_id: rid(), account_id: id.clone(), reason: String::new() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_reason), ["reason"]);
    let active = h
        .client
        .unfreeze_account(pb::UnfreezeAccountRequest { request_id: rid(), account_id: id.clone(), reason: "cleared".into() })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(active.state, pb::AccountState::Active as i32);
    assert_eq!(active.freeze_reason, "");

    let not_empty = h.client.close_account(pb::CloseAccountRequest { request_id: rid(), account_id: id.clone() }).await.unwrap_err();
    assert_eq!(reason(&not_empty), "BALANCE_NOT_ZERO");
    withdraw(&mut h.client, &id, "USD", 500).await.unwrap();
    let closed = h
        .client
        .close_account(pb::CloseAccountRequest { request_id: rid(), account_id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(closed.state, pb::AccountState::Closed as i32);
    let refused = deposit(&mut h.client, &id, "USD", 1).await.unwrap_err();
    assert_eq!(reason(&refused), "ACCOUNT_CLOSED");
});
