//! The sandbox's WeChat Pay: the API v3 routes (native, query, close,
//! refund), signed answers and encrypted, signed notifications.

use super::*;
use crate::channels::wechat as protocol;

/// A WeChat Pay notification: its signature headers and body.
#[allow(clippy::too_many_arguments)]
pub fn wechat_notification(
    platform: &SigningKey,
    serial: &str,
    api_v3_key: &[u8],
    mchid: &str,
    what: &Outcomes<'_>,
    id: &str,
    nonce: &str,
    at_secs: i64,
) -> (Vec<(String, String)>, String) {
    let resource = serde_json::json!({
        "mchid": mchid,
        "out_trade_no": what.payment_id,
        "transaction_id": what.trade_no,
        "trade_state": if what.paid { "SUCCESS" } else { "PAYERROR" },
        "amount": {"total": what.amount_minor, "currency": what.currency, "payer_total": what.amount_minor},
    })
    .to_string();
    let resource_nonce: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(12)
        .collect();
    let ciphertext = protocol::encrypt_resource(
        api_v3_key,
        &resource_nonce,
        "transaction",
        resource.as_bytes(),
    )
    .expect("a 32-byte key and a 12-byte nonce");
    let body = serde_json::json!({
        "id": id,
        "create_time": clock::wechat_time(at_secs * 1_000_000),
        "event_type": if what.paid { "TRANSACTION.SUCCESS" } else { "TRANSACTION.PAYERROR" },
        "resource_type": "encrypt-resource",
        "resource": {
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext,
            "associated_data": "transaction",
            "original_type": "transaction",
            "nonce": resource_nonce,
        },
    })
    .to_string();
    let signed = protocol::SignatureHeaders::sign(platform, serial, at_secs, nonce, &body);
    let headers = vec![
        (
            "wechatpay-timestamp".to_owned(),
            signed.timestamp.to_string(),
        ),
        ("wechatpay-nonce".to_owned(), signed.nonce),
        ("wechatpay-signature".to_owned(), signed.signature),
        ("wechatpay-serial".to_owned(), signed.serial),
    ];
    (headers, body)
}

fn wechat_answer(sandbox: &Sandbox, status: StatusCode, body: serde_json::Value) -> Response {
    let keys = &sandbox.inner.keys;
    let body = body.to_string();
    let nonce: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(32)
        .collect();
    let signed = protocol::SignatureHeaders::sign(
        &keys.wechat_platform,
        &keys.wechat_serial,
        now_micros() / 1_000_000,
        &nonce,
        &body,
    );
    (
        status,
        [
            (header::CONTENT_TYPE.as_str(), "application/json".to_owned()),
            ("wechatpay-timestamp", signed.timestamp.to_string()),
            ("wechatpay-nonce", signed.nonce),
            ("wechatpay-signature", signed.signature),
            ("wechatpay-serial", signed.serial),
        ],
        body,
    )
        .into_response()
}

/// Checks a merchant request's `Authorization`; the refusal answer if bad.
fn wechat_check(
    sandbox: &Sandbox,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Box<Response>> {
    let keys = &sandbox.inner.keys;
    let refuse = || {
        Box::new(wechat_answer(
            sandbox,
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": "SIGN_ERROR", "message": "signature does not verify"}),
        ))
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| protocol::Authorization::parse(v).ok())
        .ok_or_else(refuse)?;
    let url = uri.path_and_query().map_or("", |p| p.as_str());
    let body = std::str::from_utf8(body).map_err(|_| refuse())?;
    if authorization.mchid != keys.merchant_ids[1]
        || authorization
            .verify(method.as_str(), url, body, &keys.merchant)
            .is_err()
    {
        return Err(refuse());
    }
    Ok(())
}

pub(super) async fn wechat_native(
    State(sandbox): State<Sandbox>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = wechat_check(&sandbox, &Method::POST, &uri, &headers, &body) {
        return *refusal;
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = request["out_trade_no"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let amount = request["amount"]["total"].as_i64().unwrap_or(0);
    let currency = request["amount"]["currency"]
        .as_str()
        .unwrap_or("CNY")
        .to_owned();
    let notify_url = request["notify_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if id.is_empty() || amount <= 0 || notify_url.is_empty() {
        return wechat_answer(
            &sandbox,
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": "PARAM_ERROR", "message": "out_trade_no, amount.total and notify_url are required"}),
        );
    }
    let order = Order {
        channel: Channel::WechatPay,
        amount_minor: amount,
        currency,
        notify_url,
        outcome: Outcome::Waiting,
        trade_no: random_id("4200"),
        refunds: HashMap::new(),
        closed: false,
    };
    sandbox.open(&id, order, &headers);
    wechat_answer(
        &sandbox,
        StatusCode::OK,
        serde_json::json!({"code_url": format!("weixin://wxpay/bizpayurl?pr=sandbox-{id}")}),
    )
}

pub(super) async fn wechat_query(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = wechat_check(&sandbox, &Method::GET, &uri, &headers, b"") {
        return *refusal;
    }
    match sandbox.with_order(&id, |o| o.clone()) {
        None => wechat_answer(
            &sandbox,
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": "ORDER_NOT_EXIST", "message": "no such order"}),
        ),
        Some(order) => wechat_answer(
            &sandbox,
            StatusCode::OK,
            serde_json::json!({
                "mchid": sandbox.inner.keys.merchant_ids[1],
                "out_trade_no": id,
                "transaction_id": order.trade_no,
                "trade_state": match order.outcome {
                    Outcome::Waiting => "NOTPAY",
                    Outcome::Paid => "SUCCESS",
                    Outcome::Declined => "PAYERROR",
                },
                "amount": {"total": order.amount_minor, "currency": order.currency},
            }),
        ),
    }
}

pub(super) async fn wechat_close(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = wechat_check(&sandbox, &Method::POST, &uri, &headers, &body) {
        return *refusal;
    }
    match sandbox.close(&id) {
        Ok(()) => wechat_signed_empty(&sandbox),
        Err("TRADE_NOT_EXIST") => wechat_answer(
            &sandbox,
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": "ORDER_NOT_EXIST", "message": "no such order"}),
        ),
        Err(_) => wechat_answer(
            &sandbox,
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": "ORDER_PAID", "message": "the order is paid"}),
        ),
    }
}

/// 204 with the platform's signature over the empty body.
fn wechat_signed_empty(sandbox: &Sandbox) -> Response {
    let keys = &sandbox.inner.keys;
    let nonce: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(32)
        .collect();
    let signed = protocol::SignatureHeaders::sign(
        &keys.wechat_platform,
        &keys.wechat_serial,
        now_micros() / 1_000_000,
        &nonce,
        "",
    );
    (
        StatusCode::NO_CONTENT,
        [
            ("wechatpay-timestamp", signed.timestamp.to_string()),
            ("wechatpay-nonce", signed.nonce),
            ("wechatpay-signature", signed.signature),
            ("wechatpay-serial", signed.serial),
        ],
    )
        .into_response()
}

pub(super) async fn wechat_refund(
    State(sandbox): State<Sandbox>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = wechat_check(&sandbox, &Method::POST, &uri, &headers, &body) {
        return *refusal;
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = request["out_trade_no"].as_str().unwrap_or_default();
    let refund_id = request["out_refund_no"].as_str().unwrap_or_default();
    let amount = request["amount"]["refund"].as_i64().unwrap_or(0);
    match sandbox.refund(id, refund_id, amount) {
        Ok(()) => wechat_answer(
            &sandbox,
            StatusCode::OK,
            serde_json::json!({
                "refund_id": random_id("5030"), "out_refund_no": refund_id,
                "out_trade_no": id, "status": "SUCCESS",
                "amount": request["amount"],
            }),
        ),
        Err(why) => wechat_answer(
            &sandbox,
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": why, "message": "refund refused"}),
        ),
    }
}
