//! The channels as the payment service uses them: open a payment, ask about
//! it, refund it, and read a notification, each in its provider's own
//! protocol (see [`crate::channels`]) over HTTP.
//!
//! A call ends in one of three ways: a verified answer, a definite refusal
//! from the provider, or no trustworthy answer at all ([`CallError::Unknown`]:
//! timeout, broken connection, server error, or an answer whose signature
//! does not verify). Only the first two are outcomes; after the third the
//! caller asks again later (every call here is idempotent at the provider by
//! our payment or refund id).

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, header};
use meshwork_runtime::time::now_micros;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::channels::{ChannelError, alipay, unionpay, wechat};
use crate::clock;
use crate::credentials::{self, Credentials};
use crate::domain::{Channel, Report};
use meshwork_runtime::http_client::{Answer, HttpClient, HttpError};

use crate::channels::{form_decode, form_encode};
use crate::notifications::{self, Notification};

/// What the payer needs to pay an opened payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The URL or QR code content the payer opens.
    pub pay_url: String,
}

/// A payment to open.
#[derive(Debug, Clone)]
pub struct Order<'a> {
    /// Our payment id: the channel's merchant order number.
    pub payment_id: &'a str,
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: &'a str,
    /// Shown to the payer.
    pub description: &'a str,
    /// Where the channel sends its notification.
    pub notify_url: &'a str,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Microseconds since the epoch.
    pub expires_at: i64,
}

/// A refund to ask the channel for.
#[derive(Debug, Clone)]
pub struct RefundOrder<'a> {
    /// Our refund id: the channel's refund request number.
    pub refund_id: &'a str,
    /// The payment refunded.
    pub payment_id: &'a str,
    /// The channel's id of the payment (UnionPay refunds name it).
    pub channel_trade_id: &'a str,
    /// Refunded now, minor units.
    pub amount_minor: i64,
    /// The payment's amount, minor units.
    pub total_minor: i64,
    /// ISO 4217.
    pub currency: &'a str,
    /// Why.
    pub reason: &'a str,
    /// When the refund was asked for, microseconds: UnionPay names a
    /// transaction by its time, so every retry sends the same one.
    pub created_at: i64,
}

/// What a provider's answer to a query said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// What it says of the payment.
    pub report: Report,
    /// The channel's own id of the payment, when given.
    pub channel_trade_id: String,
}

/// A call that did not end in a verified answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The provider said no (its code and message).
    #[error("refused by the channel: {0}")]
    Refused(String),
    /// No trustworthy answer; the outcome at the provider is unknown.
    #[error("no answer from the channel: {0}")]
    Unknown(String),
    /// No answer in time; the outcome at the provider is unknown.
    #[error("no answer from the channel within {0:?}")]
    Timeout(std::time::Duration),
    /// The channel is not configured.
    #[error("channel {0} is not configured")]
    NotConfigured(&'static str),
}

/// A notification that passed the channel's checks, and the key that tells
/// a replay.
#[derive(Debug, Clone)]
pub struct Received {
    /// What it says.
    pub notification: Notification,
    /// Seen before means replayed: the channel's notification id (Alipay,
    /// UnionPay, whose repeats are the same notification delivered again)
    /// or WeChat Pay's signed nonce (fresh on every genuine delivery).
    pub replay_key: String,
    /// Whether a repeated key is an attack (a reused nonce) rather than a
    /// repeated delivery.
    pub key_is_nonce: bool,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    channel: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    channel: &'static str,
    outcome: String,
}

struct Metrics {
    calls: Family<CallLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
}

fn metrics() -> &'static Metrics {
    static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = Metrics {
            calls: Family::default(),
            notifications: Family::default(),
        };
        meshwork_runtime::metrics::with_registry(|registry| {
            registry.register(
                "meshwork_payment_channel_calls",
                "Calls to payment channels by outcome (ok, refused, timeout, failure)",
                metrics.calls.clone(),
            );
            registry.register(
                "meshwork_payment_notifications",
                "Channel notifications by outcome (accepted, duplicate, or why refused)",
                metrics.notifications.clone(),
            );
        });
        metrics
    })
}

/// Counts a notification's outcome (`accepted`, `duplicate`, or a refusal
/// reason such as `BAD_SIGNATURE`).
pub fn count_notification(channel: Channel, outcome: &str) {
    metrics()
        .notifications
        .get_or_create(&NotificationLabels {
            channel: channel.as_str(),
            outcome: outcome.to_ascii_lowercase(),
        })
        .inc();
}

/// How many notifications of `channel` ended with `outcome` in this process.
pub fn notification_count(channel: Channel, outcome: &str) -> u64 {
    metrics()
        .notifications
        .get_or_create(&NotificationLabels {
            channel: channel.as_str(),
            outcome: outcome.to_ascii_lowercase(),
        })
        .get()
}

/// How many calls of `channel` ended with `outcome` in this process.
pub fn call_count(channel: Channel, operation: &'static str, outcome: &'static str) -> u64 {
    metrics()
        .calls
        .get_or_create(&CallLabels {
            channel: channel.as_str(),
            operation,
            outcome,
        })
        .get()
}

fn count_call<T>(channel: Channel, operation: &'static str, result: &Result<T, CallError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(CallError::Refused(_)) => "refused",
        Err(CallError::Timeout(_)) => "timeout",
        Err(CallError::Unknown(_) | CallError::NotConfigured(_)) => "failure",
    };
    metrics()
        .calls
        .get_or_create(&CallLabels {
            channel: channel.as_str(),
            operation,
            outcome,
        })
        .inc();
}

fn unknown(error: HttpError) -> CallError {
    match error {
        HttpError::Timeout(after) => CallError::Timeout(after),
        HttpError::Transport(why) => CallError::Unknown(why),
    }
}

fn untrusted(error: ChannelError) -> CallError {
    CallError::Unknown(format!("answer not trusted: {error}"))
}

/// `1234` → `"12.34"`.
fn yuan(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// The raw text of the member `name` of a JSON object, as it was sent:
/// Alipay signs its answer's `<method>_response` member byte for byte.
fn raw_member<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\"");
    let after_key = json.find(&key)? + key.len();
    let rest = json[after_key..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let start = json.len() - rest.len();
    let bytes = rest.as_bytes();
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&json[start..start + i + 1]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The channels, with our credentials and an HTTP client.
pub struct Channels {
    credentials: Credentials,
    http: HttpClient,
    /// How far a notification's signed time may be from ours, seconds.
    pub window_secs: i64,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("credentials", &self.credentials)
            .field("window_secs", &self.window_secs)
            .finish()
    }
}

impl Channels {
    /// The channels of `credentials`, called through `http`.
    pub fn new(credentials: Credentials, http: HttpClient, window_secs: i64) -> Self {
        // The metric families exist from the start (at zero), so that alerts
        // on them do not depend on a first call.
        metrics();
        Self {
            credentials,
            http,
            window_secs,
        }
    }

    /// Whether `channel` is configured.
    pub fn configured(&self, channel: Channel) -> bool {
        match channel {
            Channel::Alipay => self.credentials.alipay.is_some(),
            Channel::WechatPay => self.credentials.wechat.is_some(),
            Channel::UnionPay => self.credentials.unionpay.is_some(),
        }
    }

    fn alipay(&self) -> Result<&credentials::Alipay, CallError> {
        self.credentials
            .alipay
            .as_ref()
            .ok_or(CallError::NotConfigured("ALIPAY"))
    }

    fn wechat(&self) -> Result<&credentials::Wechat, CallError> {
        self.credentials
            .wechat
            .as_ref()
            .ok_or(CallError::NotConfigured("WECHAT_PAY"))
    }

    fn unionpay(&self) -> Result<&credentials::UnionPay, CallError> {
        self.credentials
            .unionpay
            .as_ref()
            .ok_or(CallError::NotConfigured("UNIONPAY"))
    }

    /// Opens `order` with `channel`.
    pub async fn open(&self, channel: Channel, order: &Order<'_>) -> Result<Opened, CallError> {
        let result = match channel {
            Channel::Alipay => self.alipay_open(order).await,
            Channel::WechatPay => self.wechat_open(order).await,
            Channel::UnionPay => self.unionpay_open(order).await,
        };
        count_call(channel, "open", &result);
        result
    }

    /// Asks `channel` where a payment is; `None` when the channel does not
    /// know it (never opened there).
    pub async fn query(
        &self,
        channel: Channel,
        payment_id: &str,
        created_at: i64,
    ) -> Result<Option<Status>, CallError> {
        let result = match channel {
            Channel::Alipay => self.alipay_query(payment_id).await,
            Channel::WechatPay => self.wechat_query(payment_id).await,
            Channel::UnionPay => self.unionpay_query(payment_id, created_at).await,
        };
        count_call(channel, "query", &result);
        result
    }

    /// Closes an unpaid payment at `channel` so that the payer can no longer
    /// pay it; a payment the channel never opened needs no closing.
    /// UnionPay has no close for an unpaid purchase (its orders lapse at
    /// their `payTimeout`), so there is nothing to call.
    pub async fn close(&self, channel: Channel, payment_id: &str) -> Result<(), CallError> {
        let result = match channel {
            Channel::Alipay => self.alipay_close(payment_id).await,
            Channel::WechatPay => self.wechat_close(payment_id).await,
            Channel::UnionPay => Ok(()),
        };
        count_call(channel, "close", &result);
        result
    }

    /// Asks `channel` to give `refund` back to the payer.
    pub async fn refund(
        &self,
        channel: Channel,
        refund: &RefundOrder<'_>,
    ) -> Result<(), CallError> {
        let result = match channel {
            Channel::Alipay => self.alipay_refund(refund).await,
            Channel::WechatPay => self.wechat_refund(refund).await,
            Channel::UnionPay => self.unionpay_refund(refund).await,
        };
        count_call(channel, "refund", &result);
        result
    }

    /// Checks and reads a notification of `channel`: its body and the
    /// headers that came with it (names lower case).
    pub fn read_notification(
        &self,
        channel: Channel,
        headers: &[(String, String)],
        body: &[u8],
        now_secs: i64,
    ) -> Result<Received, ChannelError> {
        let not_configured = ChannelError::Malformed("channel configuration");
        match channel {
            Channel::Alipay => {
                let alipay = self.alipay().map_err(|_| not_configured)?;
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
            Channel::WechatPay => {
                let wechat = self.wechat().map_err(|_| not_configured)?;
                let signature = wechat::SignatureHeaders::from_headers(
                    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )?;
                let body =
                    std::str::from_utf8(body).map_err(|_| ChannelError::Malformed("body"))?;
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
            Channel::UnionPay => {
                let unionpay = self.unionpay().map_err(|_| not_configured)?;
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
    }

    /// The answer that tells `channel` its notification was taken.
    pub fn acknowledgement(channel: Channel) -> (&'static str, &'static [u8]) {
        match channel {
            Channel::Alipay => ("text/plain; charset=utf-8", b"success"),
            Channel::WechatPay => ("application/json", br#"{"code":"SUCCESS","message":"OK"}"#),
            Channel::UnionPay => ("text/plain; charset=utf-8", b"ok"),
        }
    }

    // --- Alipay -----------------------------------------------------------

    async fn alipay_call(
        &self,
        method: &'static str,
        biz_content: serde_json::Value,
        notify_url: Option<&str>,
    ) -> Result<serde_json::Value, CallError> {
        let alipay = self.alipay()?;
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
        alipay::sign_request(&mut params, &alipay.merchant_key);
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

    async fn alipay_open(&self, order: &Order<'_>) -> Result<Opened, CallError> {
        // An absolute expiry: a payment opened late (by the sync job) must
        // not stay payable longer than it lives here.
        let biz = serde_json::json!({
            "out_trade_no": order.payment_id,
            "total_amount": yuan(order.amount_minor),
            "subject": order.description,
            "time_expire": clock::alipay_time(order.expires_at),
        });
        let answer = self
            .alipay_call("alipay.trade.precreate", biz, Some(order.notify_url))
            .await?;
        match answer["code"].as_str() {
            Some("10000") => Ok(Opened {
                pay_url: answer["qr_code"].as_str().unwrap_or_default().to_owned(),
            }),
            _ => Err(CallError::Refused(alipay_refusal(&answer))),
        }
    }

    async fn alipay_query(&self, payment_id: &str) -> Result<Option<Status>, CallError> {
        let biz = serde_json::json!({ "out_trade_no": payment_id });
        let answer = self.alipay_call("alipay.trade.query", biz, None).await?;
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
            _ => Err(CallError::Refused(alipay_refusal(&answer))),
        }
    }

    async fn alipay_close(&self, payment_id: &str) -> Result<(), CallError> {
        let biz = serde_json::json!({ "out_trade_no": payment_id });
        let answer = self.alipay_call("alipay.trade.close", biz, None).await?;
        match (answer["code"].as_str(), answer["sub_code"].as_str()) {
            (Some("10000"), _) | (_, Some("ACQ.TRADE_NOT_EXIST")) => Ok(()),
            _ => Err(CallError::Refused(alipay_refusal(&answer))),
        }
    }

    async fn alipay_refund(&self, refund: &RefundOrder<'_>) -> Result<(), CallError> {
        let biz = serde_json::json!({
            "out_trade_no": refund.payment_id,
            "refund_amount": yuan(refund.amount_minor),
            "out_request_no": refund.refund_id,
            "refund_reason": refund.reason,
        });
        let answer = self.alipay_call("alipay.trade.refund", biz, None).await?;
        match answer["code"].as_str() {
            Some("10000") => Ok(()),
            _ => Err(CallError::Refused(alipay_refusal(&answer))),
        }
    }

    // --- WeChat Pay -------------------------------------------------------

    async fn wechat_call(
        &self,
        operation: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), CallError> {
        let wechat = self.wechat()?;
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
        let authorization = wechat::authorization(
            &wechat::Merchant {
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
        self.wechat_verify(&answer)?;
        let json = if answer.body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&answer.body)
                .map_err(|_| untrusted(ChannelError::Malformed("body")))?
        };
        Ok((answer.status.as_u16(), json))
    }

    fn wechat_verify(&self, answer: &Answer) -> Result<(), CallError> {
        let wechat = self.wechat()?;
        let headers = wechat::SignatureHeaders::from_headers(
            answer
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
        )
        .map_err(untrusted)?;
        let body = std::str::from_utf8(&answer.body)
            .map_err(|_| untrusted(ChannelError::Malformed("body")))?;
        wechat::verify(
            &headers,
            body,
            &wechat.platform,
            now_micros() / 1_000_000,
            self.window_secs,
        )
        .map_err(untrusted)
    }

    async fn wechat_open(&self, order: &Order<'_>) -> Result<Opened, CallError> {
        let wechat = self.wechat()?;
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
            .wechat_call(
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
            _ => Err(CallError::Refused(wechat_refusal(&answer))),
        }
    }

    async fn wechat_query(&self, payment_id: &str) -> Result<Option<Status>, CallError> {
        let mchid = self.wechat()?.mchid.clone();
        let path = format!("/v3/pay/transactions/out-trade-no/{payment_id}?mchid={mchid}");
        let (status, answer) = self
            .wechat_call("wechat.transactions.query", Method::GET, &path, None)
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
            _ => Err(CallError::Refused(wechat_refusal(&answer))),
        }
    }

    async fn wechat_close(&self, payment_id: &str) -> Result<(), CallError> {
        let mchid = self.wechat()?.mchid.clone();
        let path = format!("/v3/pay/transactions/out-trade-no/{payment_id}/close");
        let body = serde_json::json!({ "mchid": mchid });
        let (status, answer) = self
            .wechat_call("wechat.transactions.close", Method::POST, &path, Some(body))
            .await?;
        match status {
            200 | 204 | 404 => Ok(()),
            _ => Err(CallError::Refused(wechat_refusal(&answer))),
        }
    }

    async fn wechat_refund(&self, refund: &RefundOrder<'_>) -> Result<(), CallError> {
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
            .wechat_call(
                "wechat.refunds",
                Method::POST,
                "/v3/refund/domestic/refunds",
                Some(body),
            )
            .await?;
        match (status, answer["status"].as_str()) {
            (200, Some("SUCCESS" | "PROCESSING")) => Ok(()),
            _ => Err(CallError::Refused(wechat_refusal(&answer))),
        }
    }

    // --- UnionPay ---------------------------------------------------------

    async fn unionpay_call(
        &self,
        operation: &'static str,
        path: &str,
        fields: &[(&str, String)],
    ) -> Result<BTreeMap<String, String>, CallError> {
        let unionpay = self.unionpay()?;
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
        unionpay::sign(&mut params, &unionpay.merchant_key, &unionpay.cert_id);
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
        unionpay::verify(&params, &unionpay.certificates).map_err(untrusted)?;
        Ok(params)
    }

    async fn unionpay_open(&self, order: &Order<'_>) -> Result<Opened, CallError> {
        let currency = notifications::unionpay_currency_code(order.currency).ok_or_else(|| {
            CallError::Refused(format!("currency {} not supported", order.currency))
        })?;
        let answer = self
            .unionpay_call(
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
            _ => Err(CallError::Refused(unionpay_refusal(&answer))),
        }
    }

    async fn unionpay_query(
        &self,
        payment_id: &str,
        created_at: i64,
    ) -> Result<Option<Status>, CallError> {
        let answer = self
            .unionpay_call(
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
            _ => Err(CallError::Refused(unionpay_refusal(&answer))),
        }
    }

    async fn unionpay_refund(&self, refund: &RefundOrder<'_>) -> Result<(), CallError> {
        let currency = notifications::unionpay_currency_code(refund.currency).ok_or_else(|| {
            CallError::Refused(format!("currency {} not supported", refund.currency))
        })?;
        let answer = self
            .unionpay_call(
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
            _ => Err(CallError::Refused(unionpay_refusal(&answer))),
        }
    }
}

fn alipay_refusal(answer: &serde_json::Value) -> String {
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

fn wechat_refusal(answer: &serde_json::Value) -> String {
    format!(
        "{} {}",
        answer["code"].as_str().unwrap_or("?"),
        answer["message"].as_str().unwrap_or("")
    )
}

fn unionpay_refusal(answer: &BTreeMap<String, String>) -> String {
    format!(
        "{} {}",
        answer.get("respCode").map_or("?", String::as_str),
        answer.get("respMsg").map_or("", String::as_str)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_member_is_cut_out_byte_for_byte() {
        let text = r#"{"alipay_trade_query_response":{"code":"10000","msg":"a \"}\" b","x":{"y":1}},"sign":"S"}"#;
        assert_eq!(
            raw_member(text, "alipay_trade_query_response"),
            Some(r#"{"code":"10000","msg":"a \"}\" b","x":{"y":1}}"#)
        );
        assert_eq!(raw_member(text, "missing"), None);
        assert_eq!(raw_member(r#"{"a": "text"}"#, "a"), None);
        assert_eq!(yuan(1234), "12.34");
        assert_eq!(yuan(5), "0.05");
    }
}
