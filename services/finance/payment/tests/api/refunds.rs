//! Refunds: partial, full, never more than was paid (also when they arrive
//! together), the merchant debited by each.

use std::time::Duration;

use meshwork_proto::meshwork::finance::payment::v1 as pb;
use meshwork_testkit::{on_each_backend, reason};
use tonic::Code;

use crate::support::*;

fn refund(payment_id: &str, request_id: &str, amount: i64) -> pb::RefundPaymentRequest {
    pb::RefundPaymentRequest {
        request_id: request_id.to_owned(),
        payment_id: payment_id.to_owned(),
        amount: cny(amount),
        reason: "customer returned the goods".into(),
    }
}

on_each_backend!(async fn refunds_never_exceed_what_was_paid(backend) {
    let mut h = start(&backend, Options::default()).await;
    let paid = h.create(pb::Channel::Alipay, 1_000).await;
    h.settled(&paid.payment_id).await;
    let merchant = h.merchant.clone();
    assert_eq!(h.balance(&merchant).await, 1_000);

    let key = rid();
    let first = h.payments.refund_payment(refund(&paid.payment_id, &key, 300)).await.unwrap().into_inner();
    let first_refund = first.refund.unwrap();
    assert_eq!(first_refund.state, pb::RefundState::Succeeded as i32, "{first_refund:?}");
    assert_eq!(first.payment.unwrap().state, pb::PaymentState::PartiallyRefunded as i32);
    assert_eq!(h.balance(&merchant).await, 700);
    // The same request again: the same refund, nothing moves.
    let again = h.payments.refund_payment(refund(&paid.payment_id, &key, 300)).await.unwrap().into_inner();
    assert_eq!(again.refund.unwrap().refund_id, first_refund.refund_id);
    assert_eq!(h.balance(&merchant).await, 700);

    let over = h.payments.refund_payment(refund(&paid.payment_id, &rid(), 701)).await.unwrap_err();
    assert_eq!(over.code(), Code::FailedPrecondition);
    assert_eq!(reason(&over), "REFUND_EXCEEDS_PAYMENT");
    let zero = h.payments.refund_payment(refund(&paid.payment_id, &rid(), 0)).await.unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);

    // Ten refunds of 100 at once against the 700 left: exactly seven.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let mut client = h.payments.clone();
        let request = refund(&paid.payment_id, &rid(), 100);
        tasks.spawn(async move { client.refund_payment(request).await });
    }
    let (mut taken, mut refused) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(answer) => {
                assert_eq!(answer.into_inner().refund.unwrap().state, pb::RefundState::Succeeded as i32);
                taken += 1;
            }
            Err(status) => {
                assert_eq!(reason(&status), "REFUND_EXCEEDS_PAYMENT", "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((taken, refused), (7, 3));
    let after = h.get(&paid.payment_id).await;
    assert_eq!(after.state, pb::PaymentState::Refunded as i32);
    assert_eq!(after.refunded.unwrap().amount_minor, 1_000);
    assert_eq!(after.refunds.len(), 8);
    assert_eq!(h.balance(&merchant).await, 0);
    let resource = format!("payments/{}", paid.payment_id);
    let mut refunded = 0;
    for _ in 0..100 {
        refunded = h.audited(&resource).await.iter().filter(|(a, _)| a == "payment.refunded").count();
        if refunded == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refunded, 8);
});
