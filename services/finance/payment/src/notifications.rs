//! What a channel's asynchronous notification says, once its signature is
//! verified: which payment, and a [`Report`] about it, with the notification
//! id and time that replay and staleness checks need.
//!
//! Each channel reports in its own terms and units (Alipay: decimal yuan as
//! text, `TRADE_SUCCESS`; WeChat Pay: fen as an integer inside an encrypted
//! resource, `SUCCESS`; UnionPay: fen as text, `respCode=00`, currency by
//! ISO 4217 number); all become minor units and ISO codes here, never floats.

use std::collections::{BTreeMap, HashMap};

use crate::channels::{ChannelError, alipay, unionpay, wechat};
use crate::domain::Report;
use crate::keys::VerifyingKey;

/// A verified notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The payment it is about (our id, sent to the channel as the order id).
    pub payment_id: String,
    /// What it says.
    pub report: Report,
    /// The channel's id for this notification: with a delivery that
    /// repeats it, the same notification again.
    pub notification_id: String,
    /// The channel's own id of the payment (Alipay `trade_no`, WeChat Pay
    /// `transaction_id`, UnionPay `queryId`); empty when not given.
    pub channel_trade_id: String,
}

/// Minor units of a decimal amount written with at most `scale` decimals
/// ("1.00" → 100 at scale 2); `None` for anything else ("1.001", "-1",
/// "1e2", "").
pub fn decimal_to_minor(text: &str, scale: u32) -> Option<i64> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = match text.split_once('.') {
        // A point needs digits on both sides.
        Some((whole, fraction)) if digits(fraction) => (whole, fraction),
        Some(_) => return None,
        None => (text, ""),
    };
    if !digits(whole) || fraction.len() > scale as usize {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let padded = format!("{fraction:0<width$}", width = scale as usize);
    let fraction: i64 = if scale == 0 { 0 } else { padded.parse().ok()? };
    whole.checked_mul(10_i64.pow(scale))?.checked_add(fraction)
}

/// What Alipay's `trade_status` (with `total_amount`) says, in a
/// notification or a query's answer.
pub fn alipay_report(
    trade_status: &str,
    total_amount: Option<&String>,
) -> Result<Report, ChannelError> {
    Ok(match trade_status {
        "TRADE_SUCCESS" | "TRADE_FINISHED" => Report::Paid {
            amount_minor: total_amount
                .and_then(|amount| decimal_to_minor(amount, 2))
                .ok_or(ChannelError::Malformed("total_amount"))?,
            // Alipay settles in yuan.
            currency: "CNY".to_owned(),
        },
        "TRADE_CLOSED" => Report::Declined,
        "WAIT_BUYER_PAY" => Report::Waiting,
        _ => return Err(ChannelError::Malformed("trade_status")),
    })
}

/// An Alipay notification (form parameters), verified with Alipay's key.
pub fn alipay(
    params: &BTreeMap<String, String>,
    alipay_key: &VerifyingKey,
) -> Result<Notification, ChannelError> {
    alipay::verify_notification(params, alipay_key)?;
    let field = |name: &'static str| params.get(name).ok_or(ChannelError::Malformed(name));
    let report = alipay_report(field("trade_status")?, params.get("total_amount"))?;
    Ok(Notification {
        payment_id: field("out_trade_no")?.clone(),
        report,
        notification_id: field("notify_id")?.clone(),
        channel_trade_id: params.get("trade_no").cloned().unwrap_or_default(),
    })
}

/// A WeChat Pay notification: the signature headers checked first (serial,
/// time window, signature over the raw body), then the resource decrypted
/// with the APIv3 key.
pub fn wechat(
    headers: &wechat::SignatureHeaders,
    body: &str,
    platform: &HashMap<String, VerifyingKey>,
    api_v3_key: &[u8],
    now_secs: i64,
    window_secs: i64,
) -> Result<Notification, ChannelError> {
    wechat::verify(headers, body, platform, now_secs, window_secs)?;
    let envelope: serde_json::Value =
        serde_json::from_str(body).map_err(|_| ChannelError::Malformed("body"))?;
    let resource = &envelope["resource"];
    let text = |value: &serde_json::Value, name: &'static str| {
        value[name]
            .as_str()
            .map(str::to_owned)
            .ok_or(ChannelError::Malformed(name))
    };
    if text(resource, "algorithm")? != "AEAD_AES_256_GCM" {
        return Err(ChannelError::Algorithm(text(resource, "algorithm")?));
    }
    let plain = wechat::decrypt_resource(
        api_v3_key,
        &text(resource, "nonce")?,
        &text(resource, "associated_data").unwrap_or_default(),
        &text(resource, "ciphertext")?,
    )?;
    let transaction: serde_json::Value =
        serde_json::from_slice(&plain).map_err(|_| ChannelError::Malformed("resource"))?;
    let report = wechat_report(&transaction)?;
    Ok(Notification {
        payment_id: text(&transaction, "out_trade_no")?,
        report,
        notification_id: text(&envelope, "id")?,
        channel_trade_id: text(&transaction, "transaction_id").unwrap_or_default(),
    })
}

/// What a WeChat Pay transaction (decrypted notification resource, or a
/// query's answer) says.
pub fn wechat_report(transaction: &serde_json::Value) -> Result<Report, ChannelError> {
    let state = transaction["trade_state"]
        .as_str()
        .ok_or(ChannelError::Malformed("trade_state"))?;
    Ok(match state {
        "SUCCESS" => Report::Paid {
            amount_minor: transaction["amount"]["total"]
                .as_i64()
                .ok_or(ChannelError::Malformed("amount.total"))?,
            currency: transaction["amount"]["currency"]
                .as_str()
                .ok_or(ChannelError::Malformed("currency"))?
                .to_owned(),
        },
        "CLOSED" | "PAYERROR" | "REVOKED" => Report::Declined,
        "NOTPAY" | "USERPAYING" => Report::Waiting,
        _ => return Err(ChannelError::Malformed("trade_state")),
    })
}

/// What a UnionPay transaction result code (`respCode` of a notification,
/// `origRespCode` of a query) says, with `txnAmt` and `currencyCode`.
pub fn unionpay_report(
    code: &str,
    params: &BTreeMap<String, String>,
) -> Result<Report, ChannelError> {
    let field = |name: &'static str| params.get(name).ok_or(ChannelError::Malformed(name));
    Ok(match code {
        "00" | "A6" => Report::Paid {
            amount_minor: decimal_to_minor(field("txnAmt")?, 0)
                .ok_or(ChannelError::Malformed("txnAmt"))?,
            currency: unionpay_currency(field("currencyCode")?)
                .ok_or(ChannelError::Malformed("currencyCode"))?
                .to_owned(),
        },
        // Still being processed.
        "03" | "04" | "05" => Report::Waiting,
        _ => Report::Declined,
    })
}

/// ISO 4217 alphabetic code of a UnionPay numeric currency code.
pub fn unionpay_currency(code: &str) -> Option<&'static str> {
    Some(match code {
        "156" => "CNY",
        "344" => "HKD",
        "840" => "USD",
        "978" => "EUR",
        _ => return None,
    })
}

/// UnionPay's numeric code of an ISO 4217 alphabetic code.
pub fn unionpay_currency_code(currency: &str) -> Option<&'static str> {
    ["156", "344", "840", "978"]
        .into_iter()
        .find(|code| unionpay_currency(code) == Some(currency))
}

/// A UnionPay notification (form parameters), verified with the key of the
/// certificate it names.
pub fn unionpay(
    params: &BTreeMap<String, String>,
    certificates: &HashMap<String, VerifyingKey>,
) -> Result<Notification, ChannelError> {
    unionpay::verify(params, certificates)?;
    let field = |name: &'static str| params.get(name).ok_or(ChannelError::Malformed(name));
    let report = unionpay_report(field("respCode")?, params)?;
    Ok(Notification {
        payment_id: field("orderId")?.clone(),
        report,
        // UnionPay's query id identifies the transaction at UnionPay.
        notification_id: format!("{}:{}", field("queryId")?, field("respCode")?),
        channel_trade_id: field("queryId")?.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn decimals_become_minor_units_exactly() {
        assert_eq!(decimal_to_minor("1.00", 2), Some(100));
        assert_eq!(decimal_to_minor("0.1", 2), Some(10));
        assert_eq!(decimal_to_minor("123", 2), Some(12_300));
        assert_eq!(decimal_to_minor("100", 0), Some(100));
        for bad in ["1.001", "-1", "1e2", "", ".5", "1.", "1,00", " 1"] {
            assert_eq!(decimal_to_minor(bad, 2), None, "{bad}");
        }
        assert_eq!(
            decimal_to_minor("99999999999999999999", 2),
            None,
            "overflow"
        );
    }

    #[test]
    fn an_alipay_notification_reads_as_a_payment_in_fen() {
        let key = SigningKey::generate();
        let mut params = map(&[
            ("out_trade_no", "pay_1"),
            ("trade_status", "TRADE_SUCCESS"),
            ("total_amount", "88.50"),
            ("notify_id", "n-1"),
        ]);
        alipay::sign_notification(&mut params, &key);
        let read = alipay(&params, &key.verifying_key()).unwrap();
        assert_eq!(read.payment_id, "pay_1");
        assert_eq!(
            read.report,
            Report::Paid {
                amount_minor: 8_850,
                currency: "CNY".into()
            }
        );
        assert_eq!(read.notification_id, "n-1");
        params.insert("total_amount".into(), "0.01".into());
        assert_eq!(
            alipay(&params, &key.verifying_key()),
            Err(ChannelError::BadSignature)
        );
    }

    #[test]
    fn a_wechat_notification_is_verified_then_decrypted() {
        let platform_key = SigningKey::generate();
        let platform = HashMap::from([("S1".to_owned(), platform_key.verifying_key())]);
        let api_v3_key = b"0123456789abcdef0123456789abcdef";
        let resource = serde_json::json!({
            "out_trade_no": "pay_2", "trade_state": "SUCCESS",
            "amount": {"total": 1999, "currency": "CNY"}
        })
        .to_string();
        let ciphertext = wechat::encrypt_resource(
            api_v3_key,
            "abcdefghijkl",
            "transaction",
            resource.as_bytes(),
        )
        .unwrap();
        let body = serde_json::json!({
            "id": "evt-9", "event_type": "TRANSACTION.SUCCESS",
            "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": ciphertext,
                         "nonce": "abcdefghijkl", "associated_data": "transaction"}
        })
        .to_string();
        let now = 1_795_600_800;
        let headers = wechat::SignatureHeaders::sign(&platform_key, "S1", now, "nonce-1", &body);
        let read = wechat(&headers, &body, &platform, api_v3_key, now, 300).unwrap();
        assert_eq!(read.payment_id, "pay_2");
        assert_eq!(
            read.report,
            Report::Paid {
                amount_minor: 1_999,
                currency: "CNY".into()
            }
        );
        assert_eq!(read.notification_id, "evt-9");
        // Signed, but under another APIv3 key: the resource does not open.
        assert_eq!(
            wechat(
                &headers,
                &body,
                &platform,
                b"fedcba9876543210fedcba9876543210",
                now,
                300
            ),
            Err(ChannelError::Undecryptable)
        );
        assert_eq!(
            wechat(&headers, &body, &platform, api_v3_key, now + 301, 300),
            Err(ChannelError::StaleTimestamp)
        );
    }

    #[test]
    fn a_unionpay_notification_names_its_currency_by_number() {
        let key = SigningKey::generate();
        let certificates = HashMap::from([("7001".to_owned(), key.verifying_key())]);
        let mut params = map(&[
            ("orderId", "pay_3"),
            ("respCode", "00"),
            ("txnAmt", "500"),
            ("currencyCode", "156"),
            ("queryId", "q-77"),
        ]);
        unionpay::sign(&mut params, &key, "7001");
        let read = unionpay(&params, &certificates).unwrap();
        assert_eq!(
            read.report,
            Report::Paid {
                amount_minor: 500,
                currency: "CNY".into()
            }
        );
        assert_eq!(read.notification_id, "q-77:00");
        params.insert("respCode".into(), "51".into());
        unionpay::sign(&mut params, &key, "7001");
        assert_eq!(
            unionpay(&params, &certificates).unwrap().report,
            Report::Declined
        );
    }
}
