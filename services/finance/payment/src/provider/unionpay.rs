//! UnionPay (gateway 5.1.0: form-encoded requests and answers, signed
//! with certificates).

use super::*;
use crate::channels::unionpay as protocol;

/// What tells UNIONPAY its notification was taken.
pub(super) const ACKNOWLEDGEMENT: (&str, &[u8]) = ("text/plain; charset=utf-8", b"ok");

/// UNIONPAY with our credentials.
pub(super) struct UnionPay {
    pub(super) credentials: credentials::UnionPay,
    pub(super) http: HttpClient,
}

impl UnionPay {
    async fn call(
        &self,
        operation: &'static str,
        path: &str,
        fields: &[(&str, String)],
    ) -> Result<BTreeMap<String, String>, CallError> {
        let unionpay = &self.credentials;
        let mut params: BTreeMap<String, String> = [
            ("version", "5.1.0"),
            ("encoding", "UTF-8"),
            ("accessType", "0"),
            ("channelType", "08"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        params.insert("merId".into(), unionpay.mer_id.clone());
        for (k, v) in fields {
            params.insert((*k).to_owned(), v.clone());
        }
        protocol::sign(&mut params, &unionpay.merchant_key, &unionpay.cert_id);
        let url = format!("{}/{path}", unionpay.endpoint.trim_end_matches('/'));
        let answer = self
            .http
            .send(
                operation,
                Method::POST,
                &url,
                &[(
                    header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded;charset=UTF-8".into(),
                )],
                Bytes::from(form_encode(&params)),
            )
            .await
            .map_err(unknown)?;
        if !answer.status.is_success() {
            return Err(CallError::Unknown(format!("HTTP {}", answer.status)));
        }
        let params = form_decode(&answer.body);
        protocol::verify(&params, &unionpay.certificates).map_err(untrusted)?;
        Ok(params)
    }
}

#[tonic::async_trait]
impl Provider for UnionPay {
    async fn open(&self, order: &Order<'_>) -> Result<Opened, CallError> {
        let currency = notifications::unionpay_currency_code(order.currency).ok_or_else(|| {
            CallError::Refused(format!("currency {} not supported", order.currency))
        })?;
        let answer = self
            .call(
                "unionpay.consume",
                "appTransReq.do",
                &[
                    ("txnType", "01".into()),
                    ("txnSubType", "01".into()),
                    ("bizType", "000201".into()),
                    ("orderId", order.payment_id.to_owned()),
                    ("txnTime", clock::unionpay_time(order.created_at)),
                    ("payTimeout", clock::unionpay_time(order.expires_at)),
                    ("txnAmt", order.amount_minor.to_string()),
                    ("currencyCode", currency.to_owned()),
                    ("backUrl", order.notify_url.to_owned()),
                ],
            )
            .await?;
        match answer.get("respCode").map(String::as_str) {
            Some("00") => Ok(Opened {
                pay_url: answer.get("tn").cloned().unwrap_or_default(),
            }),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    async fn query(&self, payment_id: &str, created_at: i64) -> Result<Option<Status>, CallError> {
        let answer = self
            .call(
                "unionpay.query",
                "queryTrans.do",
                &[
                    ("txnType", "00".into()),
                    ("txnSubType", "00".into()),
                    ("bizType", "000000".into()),
                    ("orderId", payment_id.to_owned()),
                    ("txnTime", clock::unionpay_time(created_at)),
                ],
            )
            .await?;
        match answer.get("respCode").map(String::as_str) {
            Some("00") => {
                let code = answer
                    .get("origRespCode")
                    .ok_or(untrusted(ChannelError::Malformed("origRespCode")))?;
                Ok(Some(Status {
                    report: notifications::unionpay_report(code, &answer).map_err(untrusted)?,
                    channel_trade_id: answer.get("queryId").cloned().unwrap_or_default(),
                }))
            }
            // "No such transaction".
            Some("34") => Ok(None),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    async fn refund(&self, refund: &RefundOrder<'_>) -> Result<(), CallError> {
        let currency = notifications::unionpay_currency_code(refund.currency).ok_or_else(|| {
            CallError::Refused(format!("currency {} not supported", refund.currency))
        })?;
        let answer = self
            .call(
                "unionpay.refund",
                "backTransReq.do",
                &[
                    ("txnType", "04".into()),
                    ("txnSubType", "00".into()),
                    ("bizType", "000201".into()),
                    ("orderId", refund.refund_id.to_owned()),
                    ("origQryId", refund.channel_trade_id.to_owned()),
                    ("txnTime", clock::unionpay_time(refund.created_at)),
                    ("txnAmt", refund.amount_minor.to_string()),
                    ("currencyCode", currency.to_owned()),
                ],
            )
            .await?;
        match answer.get("respCode").map(String::as_str) {
            Some("00") => Ok(()),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    /// UnionPay has no close for an unpaid purchase (its orders lapse at
    /// their `payTimeout`), so there is nothing to call.
    async fn close(&self, _payment_id: &str) -> Result<(), CallError> {
        Ok(())
    }

    fn read_notification(
        &self,
        _headers: &[(String, String)],
        body: &[u8],
        // UnionPay's notifications carry no signed time to check.
        _now_secs: i64,
    ) -> Result<Received, ChannelError> {
        let unionpay = &self.credentials;
        let params = form_decode(body);
        let notification = notifications::unionpay(&params, &unionpay.certificates)?;
        if params.get("merId") != Some(&unionpay.mer_id) {
            return Err(ChannelError::OtherMerchant);
        }
        Ok(Received {
            replay_key: notification.notification_id.clone(),
            notification,
            key_is_nonce: false,
        })
    }
}

fn refusal(answer: &BTreeMap<String, String>) -> String {
    format!(
        "{} {}",
        answer.get("respCode").map_or("?", String::as_str),
        answer.get("respMsg").map_or("", String::as_str)
    )
}
