//! WeChat Pay (API v3: JSON over HTTPS, requests and answers signed
//! with the merchant's and the platform's keys, notifications encrypted).

use super::*;
use crate::channels::wechat as protocol;

/// What tells WECHAT_PAY its notification was taken.
pub(super) const ACKNOWLEDGEMENT: (&str, &[u8]) =
    ("application/json", br#"{"code":"SUCCESS","message":"OK"}"#);

/// WECHAT_PAY with our credentials.
pub(super) struct Wechat {
    pub(super) credentials: credentials::Wechat,
    pub(super) http: HttpClient,
    /// How far a signed time may be from ours, seconds.
    pub(super) window_secs: i64,
}

impl Wechat {
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), CallError> {
        let wechat = &self.credentials;
        let url = format!("{}{path_and_query}", wechat.endpoint.trim_end_matches('/'));
        let signed_url = url
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| uri.path_and_query().map(|p| p.as_str().to_owned()))
            .ok_or_else(|| CallError::Unknown(format!("bad URL {url}")))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let nonce: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(32)
            .collect();
        let authorization = protocol::authorization(
            &protocol::Merchant {
                mchid: &wechat.mchid,
                serial_no: &wechat.merchant_serial,
                key: &wechat.merchant_key,
            },
            method.as_str(),
            &signed_url,
            now_micros() / 1_000_000,
            &nonce,
            &body,
        );
        let headers = [
            (header::AUTHORIZATION, authorization),
            (header::ACCEPT, "application/json".to_owned()),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ];
        let answer = self
            .http
            .send(operation, method, &url, &headers, Bytes::from(body))
            .await
            .map_err(unknown)?;
        if answer.status.is_server_error() {
            return Err(CallError::Unknown(format!("HTTP {}", answer.status)));
        }
        self.verify(&answer)?;
        let json = if answer.body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&answer.body)
                .map_err(|_| untrusted(ChannelError::Malformed("body")))?
        };
        Ok((answer.status.as_u16(), json))
    }
    fn verify(&self, answer: &Answer) -> Result<(), CallError> {
        let wechat = &self.credentials;
        let headers = protocol::SignatureHeaders::from_headers(
            answer
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
        )
        .map_err(untrusted)?;
        let body = std::str::from_utf8(&answer.body)
            .map_err(|_| untrusted(ChannelError::Malformed("body")))?;
        protocol::verify(
            &headers,
            body,
            &wechat.platform,
            now_micros() / 1_000_000,
            self.window_secs,
        )
        .map_err(untrusted)
    }
}

#[tonic::async_trait]
impl Provider for Wechat {
    async fn open(&self, order: &Order<'_>) -> Result<Opened, CallError> {
        let wechat = &self.credentials;
        let body = serde_json::json!({
            "appid": wechat.appid,
            "mchid": wechat.mchid,
            "description": order.description,
            "out_trade_no": order.payment_id,
            "time_expire": clock::wechat_time(order.expires_at),
            "notify_url": order.notify_url,
            "amount": { "total": order.amount_minor, "currency": order.currency },
        });
        let (status, answer) = self
            .call(
                "wechat.transactions.native",
                Method::POST,
                "/v3/pay/transactions/native",
                Some(body),
            )
            .await?;
        match status {
            200 => Ok(Opened {
                pay_url: answer["code_url"].as_str().unwrap_or_default().to_owned(),
            }),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    async fn query(&self, payment_id: &str, _created_at: i64) -> Result<Option<Status>, CallError> {
        let mchid = self.credentials.mchid.clone();
        let path = format!("/v3/pay/transactions/out-trade-no/{payment_id}?mchid={mchid}");
        let (status, answer) = self
            .call("wechat.transactions.query", Method::GET, &path, None)
            .await?;
        match status {
            200 => Ok(Some(Status {
                report: notifications::wechat_report(&answer).map_err(untrusted)?,
                channel_trade_id: answer["transaction_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            })),
            404 => Ok(None),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    async fn close(&self, payment_id: &str) -> Result<(), CallError> {
        let mchid = self.credentials.mchid.clone();
        let path = format!("/v3/pay/transactions/out-trade-no/{payment_id}/close");
        let body = serde_json::json!({ "mchid": mchid });
        let (status, answer) = self
            .call("wechat.transactions.close", Method::POST, &path, Some(body))
            .await?;
        match status {
            200 | 204 | 404 => Ok(()),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    async fn refund(&self, refund: &RefundOrder<'_>) -> Result<(), CallError> {
        let body = serde_json::json!({
            "out_trade_no": refund.payment_id,
            "out_refund_no": refund.refund_id,
            "reason": refund.reason,
            "amount": {
                "refund": refund.amount_minor,
                "total": refund.total_minor,
                "currency": refund.currency,
            },
        });
        let (status, answer) = self
            .call(
                "wechat.refunds",
                Method::POST,
                "/v3/refund/domestic/refunds",
                Some(body),
            )
            .await?;
        match (status, answer["status"].as_str()) {
            (200, Some("SUCCESS" | "PROCESSING")) => Ok(()),
            _ => Err(CallError::Refused(refusal(&answer))),
        }
    }

    fn read_notification(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now_secs: i64,
    ) -> Result<Received, ChannelError> {
        let wechat = &self.credentials;
        let signature = protocol::SignatureHeaders::from_headers(
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        let body = std::str::from_utf8(body).map_err(|_| ChannelError::Malformed("body"))?;
        let notification = notifications::wechat(
            &signature,
            body,
            &wechat.platform,
            &wechat.api_v3_key,
            now_secs,
            self.window_secs,
        )?;
        Ok(Received {
            replay_key: format!("nonce:{}", signature.nonce),
            notification,
            key_is_nonce: true,
        })
    }
}

fn refusal(answer: &serde_json::Value) -> String {
    format!(
        "{} {}",
        answer["code"].as_str().unwrap_or("?"),
        answer["message"].as_str().unwrap_or("")
    )
}
