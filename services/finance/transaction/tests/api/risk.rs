//! Risk control on the transfer path: REJECT stops a transfer, REVIEW holds
//! it until a reviewer approves or declines, and nothing moves before.

use meshwork_proto::meshwork::finance::risk::v1 as risk_pb;
use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

async fn add_rule(h: &mut Harness, name: &str, score: i32, condition: risk_pb::rule::Condition) {
    h.rules
        .create_rule(risk_pb::CreateRuleRequest {
            request_id: rid(),
            rule: Some(risk_pb::Rule {
                name: name.to_owned(),
                score,
                condition: Some(condition),
                ..Default::default()
            }),
        })
        .await
        .expect("create rule");
}

on_each_backend!(async fn a_rejected_transfer_moves_nothing(backend) {
    let mut h = start(&backend).await;
    let a = funded(&mut h.accounts, "ann", 1_000).await;
    let mule = funded(&mut h.accounts, "mule", 0).await;
    let b = funded(&mut h.accounts, "bob", 0).await;
    add_rule(&mut h, "known mule", 100, risk_pb::rule::Condition::Blacklist(risk_pb::Blacklist {
        account_ids: vec![mule.clone()],
    }))
    .await;

    let id = rid();
    let rejected = transfer(&mut h.transfers, transfer_request(&id, &a, &mule, 10)).await.unwrap_err();
    assert_eq!((rejected.code(), reason(&rejected)), (Code::FailedPrecondition, "TRANSFER_REJECTED".into()));
    assert!(rejected.message().contains("known mule"), "{}", rejected.message());
    let replay = transfer(&mut h.transfers, transfer_request(&id, &a, &mule, 10)).await.unwrap_err();
    assert_eq!(replay.message(), rejected.message());
    let stored = all_transfers(&mut h.transfers).await;
    assert_eq!(state(&stored[0]), pb::TransferState::Rejected);
    assert_eq!(stored[0].risk_score, 100);
    assert_eq!(stored[0].failure_reason, "TRANSFER_REJECTED");
    assert!(stored[0].posting_id.is_empty());

    // Others still pass.
    let ok = transfer(&mut h.transfers, transfer_request(&rid(), &a, &b, 10)).await.unwrap();
    assert_eq!(state(&ok), pb::TransferState::Posted);
    assert_eq!(balances(&mut h.accounts, &[a, mule, b]).await, [990, 0, 10]);
});

on_each_backend!(async fn a_held_transfer_waits_for_its_reviewer(backend) {
    let mut h = start(&backend).await;
    let a = funded(&mut h.accounts, "ann", 10_000).await;
    let b = funded(&mut h.accounts, "bob", 0).await;
    add_rule(&mut h, "large EUR", 60, risk_pb::rule::Condition::AmountThreshold(risk_pb::AmountThreshold {
        currency: "EUR".into(),
        min_amount_minor: 5_000,
    }))
    .await;

    let held = transfer(&mut h.transfers, transfer_request(&rid(), &a, &b, 5_000)).await.unwrap();
    assert_eq!(state(&held), pb::TransferState::PendingReview);
    assert_eq!(held.risk_reasons.len(), 1);
    assert_eq!(balances(&mut h.accounts, &[a.clone(), b.clone()]).await, [10_000, 0]);

    let approve = |request_id: String, transfer_id: String| pb::ApproveTransferRequest {
        request_id,
        transfer_id,
        note: "called the customer".into(),
    };
    let review = rid();
    let approved = h.transfers.approve_transfer(approve(review.clone(), held.transfer_id.clone())).await.unwrap().into_inner().transfer.unwrap();
    assert_eq!(state(&approved), pb::TransferState::Posted);
    assert_eq!(balances(&mut h.accounts, &[a.clone(), b.clone()]).await, [5_000, 5_000]);
    // The same approval again: the same answer, nothing moves twice.
    let again = h.transfers.approve_transfer(approve(review, held.transfer_id.clone())).await.unwrap().into_inner().transfer.unwrap();
    assert_eq!(again.posting_id, approved.posting_id);
    assert_eq!(balances(&mut h.accounts, &[a.clone(), b.clone()]).await, [5_000, 5_000]);

    let second = transfer(&mut h.transfers, transfer_request(&rid(), &a, &b, 5_000)).await.unwrap();
    assert_eq!(state(&second), pb::TransferState::PendingReview);
    let declined = h.transfers
        .decline_transfer(pb::DeclineTransferRequest {
            request_id: rid(),
            transfer_id: second.transfer_id.clone(),
            reason: "customer did not confirm".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&declined), "TRANSFER_DECLINED");
    assert_eq!(state(&get(&mut h.transfers, &second.transfer_id).await), pb::TransferState::Rejected);
    let late = h.transfers.approve_transfer(approve(rid(), second.transfer_id.clone())).await.unwrap_err();
    assert_eq!(reason(&late), "TRANSFER_NOT_IN_REVIEW");
    let empty = h.transfers
        .decline_transfer(pb::DeclineTransferRequest { request_id: rid(), transfer_id: held.transfer_id.clone(), reason: String::new() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&empty), ["reason"]);
    assert_eq!(balances(&mut h.accounts, &[a, b]).await, [5_000, 5_000]);
});
