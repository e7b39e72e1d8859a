//! Alipay (open platform v1: form-encoded requests signed RSA2, JSON
//! answers whose `<method>_response` member is signed byte for byte).

use super::*;
use crate::channels::alipay as protocol;

/// What tells ALIPAY its notification was taken.
pub(super) const ACKNOWLEDGEMENT: (&str, &[u8]) = ("text/plain; charset=utf-8", b"success");

/// ALIPAY with our credentials.
pub(super) struct Alipay {
    pub(super) credentials: credentials::Alipay,
    pub(super) http: HttpClient,
    /// How far a signed time may be from ours, seconds.
    pub(super) window_secs: i64,
}

impl Alipay {
    async fn call(
        &self,
        method: &'static str,
        biz_content: serde_json::Value,
        notify_url: Option<&str>,
    ) -> Result<serde_json::Value, CallError> {
        let alipay = &self.credentials;
        let mut params: BTreeMap<String, String> = [
            ("app_id", alipay.app_id.as_str()),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("version", "1.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        params.insert("timestamp".into(), clock::alipay_time(now_micros()));
        params.insert("biz_content".into(), biz_content.to_string());
        if let Some(url) = notify_url {
            params.insert("notify_url".into(), url.to_owned());
        }
        protocol::sign_request(&mut params, &alipay.merchant_key);
        let answer = self
            .http
            .send(
                method,
                Method::POST,
                &alipay.endpoint,
                &[(
                    header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded;charset=utf-8".into(),
                )],
                Bytes::from(form_encode(&params)),
            )
            .await
            .map_err(unknown)?;
        if !answer.status.is_success() {
            return Err(CallError::Unknown(format!("HTTP {}", answer.status)));
        }
        let text = answer.text();
        let member = format!("{}_response", method.replace('.', "_"));
        let raw =
            raw_member(&text, &member).ok_or(untrusted(ChannelError::Malformed("response")))?;
        let whole: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| untrusted(ChannelError::Malformed("response")))?;
        let signature = whole["sign"]
            .as_str()
            .ok_or(untrusted(ChannelError::Malformed("sign")))?;
        if !alipay.alipay_key.verify(raw.as_bytes(), signature) {
            return Err(untrusted(ChannelError::BadSignature));
        }
        Ok(whole[&member].clone())
    }
}

#[tonic::async_trait]
impl Provider for Alipay {
    async fn open(&self, order: &Order<'_>) -> Result<Opened, CallError> {
        // An absolute expiry: a payment opened late (by the sync job) must
        // not stay payable longer than it lives here.
        let biz = serde_json::json!({
            "out_trade_no": order.payment_id,
            "total_amount": yuan(order.amount_minor),
            "subject": order.description,
            "time_expire": clock::alipay_time(order.expires_at),
        });
        let answer = self
            .call("alipay.trade.precreate", biz, Some(order.notify_url))
            .await?;
        match answer["code"].as_str() {
            Some("10000") => Ok(Opened {
                pay_url: answer["qr_code"].as_str().unwrap_or_default().to_owned(),
            }),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    async fn query(&self, payment_id: &str, _created_at: i64) -> Result<Option<Status>, CallError> {
        let biz = serde_json::json!({ "out_trade_no": payment_id });
        let answer = self.call("alipay.trade.query", biz, None).await?;
        match (answer["code"].as_str(), answer["sub_code"].as_str()) {
            (Some("10000"), _) => {
                let status = answer["trade_status"].as_str().unwrap_or_default();
                let amount = answer["total_amount"].as_str().map(str::to_owned);
                let report =
                    notifications::alipay_report(status, amount.as_ref()).map_err(untrusted)?;
                Ok(Some(Status {
                    report,
                    channel_trade_id: answer["trade_no"].as_str().unwrap_or_default().to_owned(),
                }))
            }
            (_, Some("ACQ.TRADE_NOT_EXIST")) => Ok(None),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    async fn close(&self, payment_id: &str) -> Result<(), CallError> {
        let biz = serde_json::json!({ "out_trade_no": payment_id });
        let answer = self.call("alipay.trade.close", biz, None).await?;
        match (answer["code"].as_str(), answer["sub_code"].as_str()) {
            (Some("10000"), _) | (_, Some("ACQ.TRADE_NOT_EXIST")) => Ok(()),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    async fn refund(&self, refund: &RefundOrder<'_>) -> Result<(), CallError> {
        let biz = serde_json::json!({
            "out_trade_no": refund.payment_id,
            "refund_amount": yuan(refund.amount_minor),
            "out_request_no": refund.refund_id,
            "refund_reason": refund.reason,
        });
        let answer = self.call("alipay.trade.refund", biz, None).await?;
        match answer["code"].as_str() {
            Some("10000") => Ok(()),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    fn read_notification(
        &self,
        _headers: &[(String, String)],
        body: &[u8],
        now_secs: i64,
    ) -> Result<Received, ChannelError> {
        let alipay = &self.credentials;
        let params = form_decode(body);
        let notification = notifications::alipay(&params, &alipay.alipay_key)?;
        // Alipay signs every merchant's notifications with its one
        // key: the app id says whether this one is ours.
        if params.get("app_id") != Some(&alipay.app_id) {
            return Err(ChannelError::OtherMerchant);
        }
        // The signed notify_time (China Standard Time) must be recent.
        let sent = params
            .get("notify_time")
            .and_then(|t| clock::parse_alipay_time(t))
            .ok_or(ChannelError::Malformed("notify_time"))?;
        if now_secs.abs_diff(sent) > self.window_secs.unsigned_abs() {
            return Err(ChannelError::StaleTimestamp);
        }
        Ok(Received {
            replay_key: notification.notification_id.clone(),
            notification,
            key_is_nonce: false,
        })
    }
}

fn refusal(answer: &serde_json::Value) -> String {
    format!(
        "{} {}",
        answer["sub_code"]
            .as_str()
            .or(answer["code"].as_str())
            .unwrap_or("?"),
        answer["sub_msg"]
            .as_str()
            .or(answer["msg"].as_str())
            .unwrap_or("")
    )
}
