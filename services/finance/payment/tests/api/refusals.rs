//! Notifications that fail a check — forged, from an unknown key, stale,
//! replayed, for another amount or currency, or too late — are refused with
//! a clear status at the REST edge, recorded in the audit trail, counted,
//! and change nothing.

use std::time::Duration;

use finance_payment::domain::{Channel, Report};
use finance_payment::keys::SigningKey;
use finance_payment::provider;
use finance_payment::sandbox::{self, Behaviour, Outcomes};
use meshwork_proto::meshwork::finance::payment::v1 as pb;
use meshwork_runtime::time::now_micros;
use meshwork_testkit::on_each_backend;

use crate::support::*;

fn what(payment: &pb::Payment, amount_minor: i64) -> Outcomes<'_> {
    Outcomes {
        payment_id: &payment.payment_id,
        trade_no: "T1",
        paid: true,
        amount_minor,
        currency: "CNY",
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

fn refused(answer: &meshwork_runtime::http_client::Answer, status: u16, reason: &str) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.text());
    assert!(
        answer.text().contains(reason),
        "{reason} not in {}",
        answer.text()
    );
}

on_each_backend!(async fn bad_notifications_change_nothing_and_are_recorded(backend) {
    // The sandbox never pays on its own here: only the test's notifications.
    let options = Options {
        behaviour: Behaviour { delay: Duration::from_secs(3600), ..Behaviour::default() },
        ..Options::default()
    };
    let mut h = start(&backend, options).await;
    let stranger = SigningKey::generate();
    let now = now_micros();
    let provider = h.sandbox.clone();
    let keys = provider.keys();

    // Alipay.
    let ali = h.create(pb::Channel::Alipay, 1_000).await;
    let (app_id, alipay_key) = (keys.merchant_ids[0].clone(), &keys.alipay);
    let forged = sandbox::alipay_notification(&stranger, &app_id, &what(&ali, 1_000), "n1", now);
    refused(&h.post_notification("alipay", FORM, &[], forged).await, 401, "BAD_SIGNATURE");
    let stale = sandbox::alipay_notification(alipay_key, &app_id, &what(&ali, 1_000), "n2", now - 3_600_000_000);
    refused(&h.post_notification("alipay", FORM, &[], stale).await, 401, "STALE_TIMESTAMP");
    let short = sandbox::alipay_notification(alipay_key, &app_id, &what(&ali, 1), "n3", now);
    refused(&h.post_notification("alipay", FORM, &[], short).await, 409, "AMOUNT_MISMATCH");
    let good = sandbox::alipay_notification(alipay_key, &app_id, &what(&ali, 1_000), "n4", now);
    let taken = h.post_notification("alipay", FORM, &[], good.clone()).await;
    assert_eq!((taken.status.as_u16(), taken.text().as_str()), (200, "success"));
    // The same notification delivered again: acknowledged, nothing moves twice.
    let again = h.post_notification("alipay", FORM, &[], good).await;
    assert_eq!((again.status.as_u16(), again.text().as_str()), (200, "success"));
    h.settled(&ali.payment_id).await;

    // WeChat Pay.
    let wx = h.create(pb::Channel::WechatPay, 2_000).await;
    let (serial, v3, mchid) = (keys.wechat_serial.clone(), keys.api_v3_key.clone(), keys.merchant_ids[1].clone());
    let secs = now / 1_000_000;
    let note = |key: &SigningKey, serial: &str, amount, nonce: &str, at| {
        sandbox::wechat_notification(key, serial, &v3, &mchid, &what(&wx, amount), "evt", nonce, at)
    };
    let platform = &keys.wechat_platform;
    for (key, serial, amount, at, status, reason) in [
        (&stranger, serial.as_str(), 2_000, secs, 401, "BAD_SIGNATURE"),
        (platform, "UNKNOWN-SERIAL", 2_000, secs, 401, "UNKNOWN_SERIAL"),
        (platform, serial.as_str(), 2_000, secs - 3_600, 401, "STALE_TIMESTAMP"),
        (platform, serial.as_str(), 1_999, secs, 409, "AMOUNT_MISMATCH"),
    ] {
        let (headers, body) = note(key, serial, amount, &format!("nonce-{reason}"), at);
        refused(&h.post_notification("wechat-pay", "application/json", &headers, body).await, status, reason);
    }
    let (headers, body) = note(platform, &serial, 2_000, "nonce-good", secs);
    let taken = h.post_notification("wechat-pay", "application/json", &headers, body.clone()).await;
    assert_eq!(taken.status.as_u16(), 200, "{}", taken.text());
    let replayed = h.post_notification("wechat-pay", "application/json", &headers, body).await;
    refused(&replayed, 401, "REPLAYED_NONCE");
    h.settled(&wx.payment_id).await;

    // UnionPay.
    let up = h.create(pb::Channel::Unionpay, 3_000).await;
    let mer_id = keys.merchant_ids[2].clone();
    let forged = sandbox::unionpay_notification(&stranger, &keys.unionpay_cert_id, &mer_id, &what(&up, 3_000), now);
    refused(&h.post_notification("unionpay", FORM, &[], forged).await, 401, "BAD_SIGNATURE");
    let unknown = sandbox::unionpay_notification(&keys.unionpay, "1", &mer_id, &what(&up, 3_000), now);
    refused(&h.post_notification("unionpay", FORM, &[], unknown).await, 401, "UNKNOWN_SERIAL");
    let usd = Outcomes { currency: "USD", ..what(&up, 3_000) };
    let dollars = sandbox::unionpay_notification(&keys.unionpay, &keys.unionpay_cert_id, &mer_id, &usd, now);
    refused(&h.post_notification("unionpay", FORM, &[], dollars).await, 409, "CURRENCY_MISMATCH");
    assert_eq!(h.get(&up.payment_id).await.state, pb::PaymentState::Pending as i32);
    // Nothing to refund before it is paid.
    let early = h
        .payments
        .refund_payment(pb::RefundPaymentRequest {
            request_id: rid(),
            payment_id: up.payment_id.clone(),
            amount: cny(10),
            reason: "too early".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(meshwork_testkit::reason(&early), "PAYMENT_NOT_PAID");

    // Signed by the provider, but for another merchant.
    let other = sandbox::unionpay_notification(&keys.unionpay, &keys.unionpay_cert_id, "898000000000001", &what(&up, 3_000), now);
    refused(&h.post_notification("unionpay", FORM, &[], other).await, 401, "OTHER_MERCHANT");
    let ali2 = h.create(pb::Channel::Alipay, 500).await;
    let stranger_app = sandbox::alipay_notification(&keys.alipay, "2099000000000000", &what(&ali2, 500), "n9", now);
    refused(&h.post_notification("alipay", FORM, &[], stranger_app).await, 401, "OTHER_MERCHANT");
    assert_eq!(h.get(&ali2.payment_id).await.state, pb::PaymentState::Pending as i32);
    // UnionPay cannot close an unpaid order: cancelling it is refused, as
    // calling it cancelled while the payer can still pay would lose money.
    let cancel = h
        .payments
        .cancel_payment(pb::CancelPaymentRequest {
            request_id: rid(),
            payment_id: up.payment_id.clone(),
            reason: "order withdrawn".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(meshwork_testkit::reason(&cancel), "CHANNEL_REFUSED");
    assert_eq!(h.get(&up.payment_id).await.state, pb::PaymentState::Pending as i32);

    // Only the two genuine payments reached the merchant.
    assert_eq!(h.balance(&h.merchant.clone()).await, 3_000);
    assert!(provider::notification_count(Channel::WechatPay, "REPLAYED_NONCE") >= 1);
    let mut reasons = Vec::new();
    for _ in 0..100 {
        reasons = h
            .trail
            .query_audit_log(meshwork_proto::meshwork::finance::audit::v1::QueryAuditLogRequest {
                source: finance_payment::TARGET.into(),
                action: "payment.notification_refused".into(),
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .records
            .into_iter()
            .filter_map(|r| r.event?.attributes.get("reason").cloned())
            .collect::<Vec<_>>();
        if reasons.len() >= 13 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reasons.sort();
    assert_eq!(reasons.len(), 13, "{reasons:?}");
    for reason in ["BAD_SIGNATURE", "UNKNOWN_SERIAL", "STALE_TIMESTAMP", "AMOUNT_MISMATCH", "CURRENCY_MISMATCH", "REPLAYED_NONCE", "OTHER_MERCHANT"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason} not recorded: {reasons:?}");
    }
});

on_each_backend!(async fn the_sync_job_expires_unpaid_payments_and_late_money_is_refused(backend) {
    let options = Options {
        behaviour: Behaviour { delay: Duration::from_secs(3600), ..Behaviour::default() },
        ..Options::default()
    };
    let mut h = start(&backend, options).await;
    let provider = h.sandbox.clone();
    let keys = provider.keys();
    let waiting = h.create(pb::Channel::Alipay, 900).await;
    // Within its 30 minutes the channel is asked and the payment waits.
    h.workflow.sync_once(Duration::ZERO, now_micros()).await.unwrap();
    assert_eq!(h.get(&waiting.payment_id).await.state, pb::PaymentState::Pending as i32);
    // Past them, it expires.
    let later = now_micros() + 31 * 60 * 1_000_000;
    h.workflow.sync_once(Duration::ZERO, later).await.unwrap();
    let expired = h.get(&waiting.payment_id).await;
    assert_eq!(expired.state, pb::PaymentState::Expired as i32, "{expired:?}");
    assert_eq!(expired.failure_reason, "EXPIRED");
    let late = sandbox::alipay_notification(&keys.alipay, &keys.merchant_ids[0], &what(&expired, 900), "late", now_micros());
    refused(&h.post_notification("alipay", FORM, &[], late).await, 409, "STATE_WOULD_MOVE_BACKWARDS");
    assert_eq!(h.balance(&h.merchant.clone()).await, 0);
    let resource = format!("payments/{}", expired.payment_id);
    let mut actions = Vec::new();
    for _ in 0..100 {
        actions = h.audited(&resource).await.into_iter().map(|(a, _)| a).collect::<Vec<_>>();
        if actions.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(actions, ["payment.created", "payment.opened", "payment.expired", "payment.notification_refused"]);
});

on_each_backend!(async fn cancelling_closes_the_payment_at_the_channel(backend) {
    let options = Options {
        behaviour: Behaviour { delay: Duration::from_secs(3600), ..Behaviour::default() },
        ..Options::default()
    };
    let mut h = start(&backend, options).await;
    let mut closed = Vec::new();
    for channel in [pb::Channel::Alipay, pb::Channel::WechatPay] {
        let open = h.create(channel, 400).await;
        closed.push(open.clone());
        let cancel = pb::CancelPaymentRequest {
            request_id: rid(),
            payment_id: open.payment_id.clone(),
            reason: "customer changed their mind".into(),
        };
        let cancelled = h.payments.cancel_payment(cancel.clone()).await.unwrap().into_inner().payment.unwrap();
        assert_eq!(cancelled.state, pb::PaymentState::Expired as i32, "{channel:?}");
        // Again: still cancelled, nothing else happens.
        let again = h.payments.cancel_payment(cancel).await.unwrap().into_inner().payment.unwrap();
        assert_eq!(again.state, pb::PaymentState::Expired as i32);
    }
    for channel in [Channel::Alipay, Channel::WechatPay] {
        assert!(provider::call_count(channel, "close", "ok") >= 1, "{channel:?}");
    }
    // The providers now say closed (not paid).
    for (payment, channel) in [(&closed[0], Channel::Alipay), (&closed[1], Channel::WechatPay)] {
        let created = payment.create_time.as_ref().map(meshwork_runtime::time::from_timestamp).unwrap();
        let status = h.channels.query(channel, &payment.payment_id, created).await.unwrap().unwrap();
        assert_eq!(status.report, Report::Declined, "{channel:?}");
    }
    // A payment the channel already took cannot be cancelled: the refusal
    // to close is followed by a query, and the payment is settled instead.
    let paid_meanwhile = h.create(pb::Channel::WechatPay, 600).await;
    // The payer pays; the notification has not arrived yet.
    assert!(h.sandbox.pay(&paid_meanwhile.payment_id));
    let refused_cancel = h
        .payments
        .cancel_payment(pb::CancelPaymentRequest {
            request_id: rid(),
            payment_id: paid_meanwhile.payment_id.clone(),
            reason: "too late".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(meshwork_testkit::reason(&refused_cancel), "PAYMENT_NOT_OPEN");
    let settled = h.settled(&paid_meanwhile.payment_id).await;
    assert_eq!(settled.state, pb::PaymentState::Succeeded as i32);
    assert_eq!(h.balance(&h.merchant.clone()).await, 600);
});

on_each_backend!(async fn merchant_accounts_that_cannot_take_the_money_are_refused_up_front(backend) {
    use meshwork_proto::meshwork::finance::account::v1 as account_pb;
    let mut h = start(&backend, Options::default()).await;
    let request = |merchant: &str, request_id: &str| pb::CreatePaymentRequest {
        request_id: request_id.into(),
        merchant_account_id: merchant.into(),
        merchant_order_ref: "order-x".into(),
        amount: cny(100),
        channel: pb::Channel::Alipay as i32,
        ..Default::default()
    };
    let missing = h.payments.create_payment(request("acc_nobody", &rid())).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(missing.message().contains("acc_nobody"), "{missing:?}");

    let euros = h
        .accounts
        .create_account(account_pb::CreateAccountRequest {
            request_id: rid(),
            owner_id: "shop-eu".into(),
            currency: "EUR".into(),
            r#type: account_pb::AccountType::Merchant as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap()
        .account_id;
    let wrong_currency = h.payments.create_payment(request(&euros, &rid())).await.unwrap_err();
    assert_eq!(meshwork_testkit::reason(&wrong_currency), "MERCHANT_ACCOUNT_UNUSABLE");
    assert!(wrong_currency.message().contains("EUR"), "{wrong_currency:?}");

    // A payment made while the account was fine replays after it is frozen;
    // a new one is refused.
    let key = rid();
    let merchant = h.merchant.clone();
    let first = h.payments.create_payment(request(&merchant, &key)).await.unwrap().into_inner().payment.unwrap();
    h.accounts
        .freeze_account(account_pb::FreezeAccountRequest {
            request_id: rid(),
            account_id: merchant.clone(),
            reason: "investigation".into(),
        })
        .await
        .unwrap();
    let replay = h.payments.create_payment(request(&merchant, &key)).await.unwrap().into_inner().payment.unwrap();
    assert_eq!(replay.payment_id, first.payment_id);
    let frozen = h.payments.create_payment(request(&merchant, &rid())).await.unwrap_err();
    assert_eq!(meshwork_testkit::reason(&frozen), "MERCHANT_ACCOUNT_UNUSABLE");

    // Nothing was created for the refused ones.
    let listed = |account: &str| pb::ListPaymentsRequest { merchant_account_id: account.into(), ..Default::default() };
    assert!(h.payments.list_payments(listed(&euros)).await.unwrap().into_inner().payments.is_empty());
    assert!(h.payments.list_payments(listed("acc_nobody")).await.unwrap().into_inner().payments.is_empty());
    assert_eq!(h.payments.list_payments(listed(&merchant)).await.unwrap().into_inner().payments.len(), 1);
});
