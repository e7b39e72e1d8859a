//! A payment's whole life on each channel: opened, paid by the sandbox,
//! notified through the REST edge (also twice, also never), settled with
//! the merchant exactly once, in the audit trail and in one trace.

use std::time::Duration;

use finance_payment::domain::Channel;
use finance_payment::provider;
use finance_payment::sandbox::Behaviour;
use meshwork_proto::meshwork::finance::audit::v1 as audit_pb;
use meshwork_proto::meshwork::finance::payment::v1 as pb;
use meshwork_testkit::{Backend, on_each_backend, spans_of_trace};

use crate::support::*;

const CHANNELS: [pb::Channel; 3] = [
    pb::Channel::Alipay,
    pb::Channel::WechatPay,
    pb::Channel::Unionpay,
];

on_each_backend!(async fn every_channel_pays_once_and_credits_the_merchant(backend) {
    // Every notification arrives twice: one settlement each all the same.
    let options = Options {
        behaviour: Behaviour { delay: Duration::from_millis(50), copies: 2, ..Behaviour::default() },
        ..Options::default()
    };
    let mut h = start(&backend, options).await;
    let mut total = 0;
    for (i, channel) in CHANNELS.into_iter().enumerate() {
        let amount = 1_234 + i as i64;
        total += amount;
        let created = h.create(channel, amount).await;
        // Usually PENDING; on a slow machine the sandbox's payment can land
        // before the opening is recorded, and then it is paid already.
        let paid_first = created.state == pb::PaymentState::Succeeded as i32;
        assert!(
            paid_first || created.state == pb::PaymentState::Pending as i32,
            "{created:?}"
        );
        assert!(!created.pay_url.is_empty(), "{created:?}");
        let paid = h.settled(&created.payment_id).await;
        assert_eq!(paid.state, pb::PaymentState::Succeeded as i32);
        assert!(!paid.channel_trade_id.is_empty(), "{paid:?}");
        assert!(!paid.settlement_transfer_id.is_empty());
        let resource = format!("payments/{}", paid.payment_id);
        let mut trail = Vec::new();
        for _ in 0..100 {
            trail = h.audited(&resource).await;
            if trail.len() >= 3 + usize::from(!paid_first) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let actions: Vec<&str> = trail.iter().map(|(a, _)| a.as_str()).collect();
        let expected: &[&str] = if paid_first {
            &["payment.created", "payment.succeeded", "payment.settled"]
        } else {
            &["payment.created", "payment.opened", "payment.succeeded", "payment.settled"]
        };
        assert_eq!(actions, expected, "{channel:?}");
    }
    // Give a late duplicate time to do harm, then count the money.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.balance(&h.merchant.clone()).await, total);
    // Alipay and UnionPay repeat the same notification (a duplicate);
    // WeChat Pay signs each delivery afresh (accepted, changes nothing).
    for channel in [Channel::Alipay, Channel::UnionPay] {
        assert!(provider::notification_count(channel, "duplicate") >= 1, "{channel:?}");
    }
});

on_each_backend!(async fn lost_notifications_are_settled_by_the_sync_job(backend) {
    let options = Options {
        behaviour: Behaviour { delay: Duration::from_millis(50), lost_rate: 1.0, ..Behaviour::default() },
        sync_interval: Duration::from_millis(100),
        sync_after: Duration::from_millis(300),
    };
    let mut h = start(&backend, options).await;
    let mut ids = Vec::new();
    for channel in CHANNELS {
        ids.push(h.create(channel, 500).await.payment_id);
    }
    for id in &ids {
        let paid = h.settled(id).await;
        assert_eq!(paid.state, pb::PaymentState::Succeeded as i32);
    }
    assert_eq!(h.balance(&h.merchant.clone()).await, 1_500);
    for channel in Channel::ALL {
        assert!(provider::call_count(channel, "query", "ok") >= 1, "{channel:?}");
    }
});

on_each_backend!(async fn declined_payments_fail_and_credit_nothing(backend) {
    let options = Options {
        behaviour: Behaviour { delay: Duration::from_millis(50), decline_rate: 1.0, ..Behaviour::default() },
        ..Options::default()
    };
    let mut h = start(&backend, options).await;
    for channel in CHANNELS {
        let created = h.create(channel, 700).await;
        let failed = h
            .wait_for(&created.payment_id, "failed", |p| p.state == pb::PaymentState::Failed as i32)
            .await;
        assert_eq!(failed.failure_reason, "CHANNEL_DECLINED");
        assert_eq!(failed.settlement_state, pb::SettlementState::None as i32);
    }
    assert_eq!(h.balance(&h.merchant.clone()).await, 0);
    // The compliance report lists them.
    let mut failed = 0;
    for _ in 0..100 {
        let now = meshwork_runtime::time::now_micros();
        failed = h
            .trail
            .generate_compliance_report(audit_pb::GenerateComplianceReportRequest {
                start_time: Some(meshwork_runtime::time::to_timestamp(now - 3_600_000_000)),
                end_time: Some(meshwork_runtime::time::to_timestamp(now + 1_000_000)),
                large_amount_minor: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .failed_payments
            .len();
        if failed == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failed, 3);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_from_the_rest_call_to_the_settlement() {
    let mut h = start(&Backend::Embedded, Options::default()).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let body = serde_json::json!({
        "requestId": rid(),
        "merchantAccountId": h.merchant,
        "merchantOrderRef": "order-traced",
        "amount": {"currency": "CNY", "amountMinor": "880"},
        "channel": "CHANNEL_WECHAT_PAY",
    })
    .to_string();
    let answer = meshwork_runtime::http_client::HttpClient::new(Duration::from_secs(10))
        .send(
            "test create",
            http::Method::POST,
            &format!("{}/v1/payments", h.edge),
            &[
                (http::header::CONTENT_TYPE, "application/json".into()),
                (
                    http::HeaderName::from_static("traceparent"),
                    format!("00-{trace_id}-00f067aa0ba902b7-01"),
                ),
            ],
            bytes::Bytes::from(body),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 201, "{}", answer.text());
    let created: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let id = created["payment"]["paymentId"].as_str().unwrap().to_owned();
    h.settled(&id).await;
    let wanted = [
        "meshwork.finance.payment.v1.PaymentService/CreatePayment",
        "meshwork.finance.payment.v1.PaymentService/NotifyWechatPay",
        "meshwork.finance.account.v1.AccountService/Deposit",
        "meshwork.finance.transaction.v1.TransactionService/Transfer",
        "meshwork.finance.account.v1.AccountService/PostTransfer",
    ];
    let mut names = Vec::new();
    for _ in 0..100 {
        names = spans_of_trace(trace_id)
            .into_iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>();
        if wanted.iter().all(|w| names.iter().any(|n| n == w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for want in wanted {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not in the trace: {names:?}"
        );
    }
}
