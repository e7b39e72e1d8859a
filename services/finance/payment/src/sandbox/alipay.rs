//! The sandbox's Alipay: the open-platform gateway (precreate, query,
//! close, refund) and its signed notifications.

use super::*;
use crate::channels::alipay as protocol;

/// An Alipay notification body (form), signed by `key`.
pub fn alipay_notification(
    key: &SigningKey,
    app_id: &str,
    what: &Outcomes<'_>,
    notify_id: &str,
    at_micros: i64,
) -> String {
    let status = if what.paid {
        "TRADE_SUCCESS"
    } else {
        "TRADE_CLOSED"
    };
    let mut params: BTreeMap<String, String> = [
        ("notify_time", clock::alipay_time(at_micros)),
        ("notify_type", "trade_status_sync".to_owned()),
        ("notify_id", notify_id.to_owned()),
        ("app_id", app_id.to_owned()),
        ("charset", "utf-8".to_owned()),
        ("version", "1.0".to_owned()),
        ("trade_no", what.trade_no.to_owned()),
        ("out_trade_no", what.payment_id.to_owned()),
        ("trade_status", status.to_owned()),
        (
            "total_amount",
            format!("{}.{:02}", what.amount_minor / 100, what.amount_minor % 100),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    protocol::sign_notification(&mut params, key);
    form_encode(&params)
}

fn alipay_answer(sandbox: &Sandbox, method: &str, node: serde_json::Value) -> Response {
    let node = node.to_string();
    let signature = sandbox.inner.keys.alipay.sign(node.as_bytes());
    let member = format!("{}_response", method.replace('.', "_"));
    let body = format!(r#"{{"{member}":{node},"sign":"{signature}"}}"#);
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body,
    )
        .into_response()
}

pub(super) async fn alipay_gateway(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form_decode(&body);
    let method = params.get("method").cloned().unwrap_or_default();
    let keys = &sandbox.inner.keys;
    let failure = |code: &str, sub_code: &str, msg: &str| serde_json::json!({"code": code, "msg": "Business Failed", "sub_code": sub_code, "sub_msg": msg});
    let signed = params.get("sign").is_some_and(|s| {
        keys.merchant
            .verify(protocol::request_string(&params).as_bytes(), s)
    });
    if !signed || params.get("app_id") != Some(&keys.merchant_ids[0]) {
        let node = failure("40002", "isv.invalid-signature", "bad signature or app_id");
        return alipay_answer(&sandbox, &method, node);
    }
    let biz: serde_json::Value = params
        .get("biz_content")
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    let out_trade_no = biz["out_trade_no"].as_str().unwrap_or_default().to_owned();
    let node = match method.as_str() {
        "alipay.trade.precreate" => {
            let amount = biz["total_amount"]
                .as_str()
                .and_then(|a| decimal_to_minor(a, 2));
            match (amount, params.get("notify_url")) {
                (Some(amount_minor), Some(url)) if amount_minor > 0 && !out_trade_no.is_empty() => {
                    let order = Order {
                        channel: Channel::Alipay,
                        amount_minor,
                        currency: "CNY".into(),
                        notify_url: url.clone(),
                        outcome: Outcome::Waiting,
                        trade_no: random_id("2026"),
                        refunds: HashMap::new(),
                        closed: false,
                    };
                    sandbox.open(&out_trade_no, order, &headers);
                    serde_json::json!({
                        "code": "10000", "msg": "Success", "out_trade_no": out_trade_no,
                        "qr_code": format!("https://qr.alipay.com/sandbox/{out_trade_no}"),
                    })
                }
                _ => failure(
                    "40004",
                    "ACQ.INVALID_PARAMETER",
                    "bad total_amount, out_trade_no or notify_url",
                ),
            }
        }
        "alipay.trade.query" => match sandbox.with_order(&out_trade_no, |o| o.clone()) {
            None => failure("40004", "ACQ.TRADE_NOT_EXIST", "no such trade"),
            Some(order) => serde_json::json!({
                "code": "10000", "msg": "Success", "out_trade_no": out_trade_no,
                "trade_no": order.trade_no,
                "trade_status": match order.outcome {
                    Outcome::Waiting => "WAIT_BUYER_PAY",
                    Outcome::Paid => "TRADE_SUCCESS",
                    Outcome::Declined => "TRADE_CLOSED",
                },
                "total_amount": format!("{}.{:02}", order.amount_minor / 100, order.amount_minor % 100),
            }),
        },
        "alipay.trade.close" => match sandbox.close(&out_trade_no) {
            Ok(()) => {
                serde_json::json!({"code": "10000", "msg": "Success", "out_trade_no": out_trade_no})
            }
            Err(why) => failure("40004", &format!("ACQ.{why}"), why),
        },
        "alipay.trade.refund" => {
            let amount = biz["refund_amount"]
                .as_str()
                .and_then(|a| decimal_to_minor(a, 2))
                .unwrap_or(0);
            let refund_id = biz["out_request_no"].as_str().unwrap_or_default();
            match sandbox.refund(&out_trade_no, refund_id, amount) {
                Ok(()) => serde_json::json!({
                    "code": "10000", "msg": "Success", "out_trade_no": out_trade_no,
                    "fund_change": "Y", "refund_fee": biz["refund_amount"],
                }),
                Err(why) => failure("40004", &format!("ACQ.{why}"), why),
            }
        }
        _ => failure(
            "40004",
            "isv.invalid-method",
            "method not supported by the sandbox",
        ),
    };
    alipay_answer(&sandbox, &method, node)
}
