//! The sandbox's UnionPay: the 5.1.0 gateway (consume, query, refund)
//! and its certificate-signed notifications.

use super::*;
use crate::channels::unionpay as protocol;

/// A UnionPay notification body (form), signed by `key` under `cert_id`.
pub fn unionpay_notification(
    key: &SigningKey,
    cert_id: &str,
    mer_id: &str,
    what: &Outcomes<'_>,
    at_micros: i64,
) -> String {
    let mut params: BTreeMap<String, String> = [
        ("version", "5.1.0".to_owned()),
        ("encoding", "UTF-8".to_owned()),
        ("bizType", "000201".to_owned()),
        ("txnType", "01".to_owned()),
        ("txnSubType", "01".to_owned()),
        ("accessType", "0".to_owned()),
        ("merId", mer_id.to_owned()),
        ("orderId", what.payment_id.to_owned()),
        ("txnTime", clock::unionpay_time(at_micros)),
        ("txnAmt", what.amount_minor.to_string()),
        (
            "currencyCode",
            unionpay_currency_code(what.currency)
                .unwrap_or("156")
                .to_owned(),
        ),
        ("queryId", what.trade_no.to_owned()),
        ("respCode", if what.paid { "00" } else { "51" }.to_owned()),
        (
            "respMsg",
            if what.paid { "success" } else { "declined" }.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    protocol::sign(&mut params, key, cert_id);
    form_encode(&params)
}

fn unionpay_answer(sandbox: &Sandbox, fields: &[(&str, String)]) -> Response {
    let keys = &sandbox.inner.keys;
    let mut params: BTreeMap<String, String> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    params.insert("version".into(), "5.1.0".into());
    params.insert("encoding".into(), "UTF-8".into());
    protocol::sign(&mut params, &keys.unionpay, &keys.unionpay_cert_id);
    (
        [(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded;charset=UTF-8",
        )],
        form_encode(&params),
    )
        .into_response()
}

pub(super) async fn unionpay_gateway(
    State(sandbox): State<Sandbox>,
    Path(operation): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form_decode(&body);
    let keys = &sandbox.inner.keys;
    let certificates =
        HashMap::from([(SANDBOX_MERCHANT_CERT_ID.to_owned(), keys.merchant.clone())]);
    if protocol::verify(&params, &certificates).is_err()
        || params.get("merId") != Some(&keys.merchant_ids[2])
    {
        return unionpay_answer(
            &sandbox,
            &[
                ("respCode", "11".into()),
                ("respMsg", "signature or merId".into()),
            ],
        );
    }
    let field = |name: &str| params.get(name).cloned().unwrap_or_default();
    let order_id = field("orderId");
    match operation.as_str() {
        "appTransReq.do" => {
            let amount = decimal_to_minor(&field("txnAmt"), 0).unwrap_or(0);
            let currency = unionpay_currency(&field("currencyCode"));
            let (Some(currency), false, false) =
                (currency, amount <= 0, field("backUrl").is_empty())
            else {
                return unionpay_answer(
                    &sandbox,
                    &[
                        ("respCode", "30".into()),
                        ("respMsg", "bad txnAmt, currencyCode or backUrl".into()),
                    ],
                );
            };
            let order = Order {
                channel: Channel::UnionPay,
                amount_minor: amount,
                currency: currency.to_owned(),
                notify_url: field("backUrl"),
                outcome: Outcome::Waiting,
                trade_no: random_id("7026"),
                refunds: HashMap::new(),
                closed: false,
            };
            sandbox.open(&order_id, order, &headers);
            unionpay_answer(
                &sandbox,
                &[
                    ("respCode", "00".into()),
                    ("respMsg", "success".into()),
                    ("orderId", order_id.clone()),
                    ("tn", random_id("sandbox-tn-")),
                ],
            )
        }
        "queryTrans.do" => match sandbox.with_order(&order_id, |o| o.clone()) {
            None => unionpay_answer(
                &sandbox,
                &[
                    ("respCode", "34".into()),
                    ("respMsg", "no such transaction".into()),
                ],
            ),
            Some(order) => unionpay_answer(
                &sandbox,
                &[
                    ("respCode", "00".into()),
                    ("orderId", order_id.clone()),
                    ("queryId", order.trade_no.clone()),
                    (
                        "origRespCode",
                        match order.outcome {
                            Outcome::Waiting => "05",
                            Outcome::Paid => "00",
                            Outcome::Declined => "51",
                        }
                        .into(),
                    ),
                    ("txnAmt", order.amount_minor.to_string()),
                    (
                        "currencyCode",
                        unionpay_currency_code(&order.currency)
                            .unwrap_or("156")
                            .into(),
                    ),
                ],
            ),
        },
        "backTransReq.do" => {
            let amount = decimal_to_minor(&field("txnAmt"), 0).unwrap_or(0);
            let orig = field("origQryId");
            let payment = {
                let orders = sandbox
                    .inner
                    .orders
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                orders
                    .iter()
                    .find(|(_, o)| o.trade_no == orig)
                    .map(|(id, _)| id.clone())
            };
            let outcome = match payment {
                Some(payment) => sandbox.refund(&payment, &order_id, amount),
                None => Err("TRADE_NOT_EXIST"),
            };
            match outcome {
                Ok(()) => unionpay_answer(
                    &sandbox,
                    &[("respCode", "00".into()), ("orderId", order_id.clone())],
                ),
                Err(why) => unionpay_answer(
                    &sandbox,
                    &[("respCode", "12".into()), ("respMsg", why.into())],
                ),
            }
        }
        _ => unionpay_answer(
            &sandbox,
            &[
                ("respCode", "12".into()),
                ("respMsg", "operation not supported by the sandbox".into()),
            ],
        ),
    }
}
