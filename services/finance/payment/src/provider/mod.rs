//! The channels as the payment service uses them: open a payment, ask about
//! it, refund it, and read a notification, each in its provider's own
//! protocol (see [`crate::channels`]) over HTTP. Each provider is one
//! [`Provider`] in its own module; [`Channels`] holds the configured ones
//! and counts every call.
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

use crate::channels::ChannelError;
use crate::channels::{form_decode, form_encode};
use crate::clock;
use crate::credentials::{self, Credentials};
use crate::domain::{Channel, Report};
use crate::notifications::{self, Notification};
use meshwork_runtime::http_client::{Answer, HttpClient, HttpError};

mod alipay;
mod unionpay;
mod wechat;

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

/// One payment channel's protocol with our credentials.
#[tonic::async_trait]
trait Provider: Send + Sync {
    /// Opens `order`.
    async fn open(&self, order: &Order<'_>) -> Result<Opened, CallError>;
    /// Where a payment is; `None` when the channel does not know it.
    async fn query(&self, payment_id: &str, created_at: i64) -> Result<Option<Status>, CallError>;
    /// Closes an unpaid payment so that the payer can no longer pay it.
    async fn close(&self, payment_id: &str) -> Result<(), CallError>;
    /// Gives `refund` back to the payer.
    async fn refund(&self, refund: &RefundOrder<'_>) -> Result<(), CallError>;
    /// Checks and reads a notification: its body and the headers that came
    /// with it (names lower case).
    fn read_notification(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        now_secs: i64,
    ) -> Result<Received, ChannelError>;
}

/// The configured channels, and the calls to them counted.
pub struct Channels {
    providers: Vec<(Channel, Box<dyn Provider>)>,
    /// How far a notification's signed time may be from ours, seconds
    /// (each provider keeps its copy).
    window_secs: i64,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let configured: Vec<&str> = self.providers.iter().map(|(c, _)| c.as_str()).collect();
        f.debug_struct("Channels")
            .field("configured", &configured)
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
        let mut providers: Vec<(Channel, Box<dyn Provider>)> = Vec::new();
        if let Some(credentials) = credentials.alipay {
            providers.push((
                Channel::Alipay,
                Box::new(alipay::Alipay {
                    credentials,
                    http: http.clone(),
                    window_secs,
                }),
            ));
        }
        if let Some(credentials) = credentials.wechat {
            providers.push((
                Channel::WechatPay,
                Box::new(wechat::Wechat {
                    credentials,
                    http: http.clone(),
                    window_secs,
                }),
            ));
        }
        if let Some(credentials) = credentials.unionpay {
            providers.push((
                Channel::UnionPay,
                Box::new(unionpay::UnionPay { credentials, http }),
            ));
        }
        Self {
            providers,
            window_secs,
        }
    }

    /// Whether `channel` is configured.
    pub fn configured(&self, channel: Channel) -> bool {
        self.provider(channel).is_ok()
    }

    fn provider(&self, channel: Channel) -> Result<&dyn Provider, CallError> {
        self.providers
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, p)| p.as_ref())
            .ok_or(CallError::NotConfigured(channel.as_str()))
    }

    /// Opens `order` with `channel`.
    pub async fn open(&self, channel: Channel, order: &Order<'_>) -> Result<Opened, CallError> {
        let result = match self.provider(channel) {
            Ok(provider) => provider.open(order).await,
            Err(e) => Err(e),
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
        let result = match self.provider(channel) {
            Ok(provider) => provider.query(payment_id, created_at).await,
            Err(e) => Err(e),
        };
        count_call(channel, "query", &result);
        result
    }

    /// Closes an unpaid payment at `channel` so that the payer can no longer
    /// pay it; a payment the channel never opened needs no closing.
    pub async fn close(&self, channel: Channel, payment_id: &str) -> Result<(), CallError> {
        let result = match self.provider(channel) {
            Ok(provider) => provider.close(payment_id).await,
            Err(e) => Err(e),
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
        let result = match self.provider(channel) {
            Ok(provider) => provider.refund(refund).await,
            Err(e) => Err(e),
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
        self.provider(channel)
            .map_err(|_| ChannelError::Malformed("channel configuration"))?
            .read_notification(headers, body, now_secs)
    }

    /// The answer that tells `channel` its notification was taken.
    pub fn acknowledgement(channel: Channel) -> (&'static str, &'static [u8]) {
        match channel {
            Channel::Alipay => alipay::ACKNOWLEDGEMENT,
            Channel::WechatPay => wechat::ACKNOWLEDGEMENT,
            Channel::UnionPay => unionpay::ACKNOWLEDGEMENT,
        }
    }
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
