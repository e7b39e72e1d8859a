//! The SANDBOX payment provider: a stand-in for Alipay, WeChat Pay and
//! UnionPay for development and tests. It is not a payment provider and
//! moves no money.
//!
//! It speaks each channel's protocol as the payment service's adapters do:
//! it checks the merchant's request signatures, signs its answers, and after
//! a configurable delay "pays" (or, at the decline rate, declines) each
//! opened payment and sends the channel's signed asynchronous notification
//! to the notification URL the request named — unless it is "lost" (at the
//! lost rate), in which case only the query API tells. Queries and refunds
//! answer from its in-memory book.
//!
//! The notification carries the `traceparent` of the request that opened
//! the payment, so the notification's handling joins the payment's trace.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header;
use meshwork_runtime::propagation;
use meshwork_runtime::time::now_micros;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::clock;
use crate::credentials::{SANDBOX_MERCHANT_CERT_ID, SandboxKeys};
use crate::domain::Channel;
use meshwork_runtime::http_client::HttpClient;

use crate::channels::{form_decode, form_encode};
use crate::keys::SigningKey;
use crate::notifications::{decimal_to_minor, unionpay_currency, unionpay_currency_code};

mod alipay;
mod unionpay;
mod wechat;

use alipay::alipay_gateway;
pub use alipay::alipay_notification;
use unionpay::unionpay_gateway;
pub use unionpay::unionpay_notification;
pub use wechat::wechat_notification;
use wechat::{wechat_close, wechat_native, wechat_query, wechat_refund};

/// How the sandbox behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Time between opening a payment and its outcome.
    pub delay: Duration,
    /// Share of payments declined (0.0-1.0).
    pub decline_rate: f64,
    /// Share of notifications never sent (0.0-1.0).
    pub lost_rate: f64,
    /// How many times each notification is sent (duplicates, as providers
    /// do when unsure).
    pub copies: u32,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(2),
            decline_rate: 0.0,
            lost_rate: 0.0,
            copies: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Waiting,
    Paid,
    Declined,
}

#[derive(Debug, Clone)]
struct Order {
    channel: Channel,
    amount_minor: i64,
    currency: String,
    notify_url: String,
    outcome: Outcome,
    trade_no: String,
    refunds: HashMap<String, i64>,
    /// Closed by the merchant before it was paid: never paid, never
    /// notified.
    closed: bool,
}

struct Inner {
    keys: SandboxKeys,
    behaviour: Behaviour,
    orders: Mutex<HashMap<String, Order>>,
    http: HttpClient,
}

/// The sandbox provider.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("behaviour", &self.inner.behaviour)
            .finish_non_exhaustive()
    }
}

/// What a notification says (the sandbox's and the tests' input).
#[derive(Debug, Clone)]
pub struct Outcomes<'a> {
    /// The payment (our id).
    pub payment_id: &'a str,
    /// The provider's id of it.
    pub trade_no: &'a str,
    /// Paid (or declined).
    pub paid: bool,
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: &'a str,
}

fn random_id(prefix: &str) -> String {
    let tail: String = std::iter::repeat_with(|| fastrand::digit(10))
        .take(20)
        .collect();
    format!("{prefix}{tail}")
}

impl Sandbox {
    /// A sandbox with `keys` (its side of [`crate::credentials::pair_with_sandbox`]).
    pub fn new(keys: SandboxKeys, behaviour: Behaviour) -> Self {
        Self {
            inner: Arc::new(Inner {
                keys,
                behaviour,
                orders: Mutex::new(HashMap::new()),
                http: HttpClient::new(Duration::from_secs(10)),
            }),
        }
    }

    /// Its keys (tests sign their own notifications with them).
    pub fn keys(&self) -> &SandboxKeys {
        &self.inner.keys
    }

    /// The HTTP routes: `/alipay/gateway.do`, `/wechat/v3/...`,
    /// `/unionpay/gateway/api/...`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/alipay/gateway.do", post(alipay_gateway))
            .route("/wechat/v3/pay/transactions/native", post(wechat_native))
            .route(
                "/wechat/v3/pay/transactions/out-trade-no/{id}",
                get(wechat_query),
            )
            .route(
                "/wechat/v3/pay/transactions/out-trade-no/{id}/close",
                post(wechat_close),
            )
            .route("/wechat/v3/refund/domestic/refunds", post(wechat_refund))
            .route("/unionpay/gateway/api/{operation}", post(unionpay_gateway))
            .with_state(self.clone())
    }

    /// Serves the routes on `listener` until `stop` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(stop)
            .await
    }

    fn with_order<T>(&self, id: &str, f: impl FnOnce(&mut Order) -> T) -> Option<T> {
        let mut orders = self.inner.orders.lock().unwrap_or_else(|e| e.into_inner());
        orders.get_mut(id).map(f)
    }

    /// Books an order (once per id) and schedules its outcome; the
    /// provider's trade number.
    fn open(&self, id: &str, order: Order, headers: &HeaderMap) -> String {
        let mut orders = self.inner.orders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = orders.get(id) {
            return existing.trade_no.clone();
        }
        let trade_no = order.trade_no.clone();
        orders.insert(id.to_owned(), order);
        drop(orders);
        let parent = propagation::extract(headers);
        let sandbox = self.clone();
        let id = id.to_owned();
        let span = tracing::info_span!("sandbox.settle", otel.name = "payment sandbox: pay and notify", payment = %id);
        let _ = span.set_parent(parent);
        tokio::spawn(
            async move {
                tokio::time::sleep(sandbox.inner.behaviour.delay).await;
                sandbox.settle(&id).await;
            }
            .instrument(span),
        );
        trade_no
    }

    async fn settle(&self, id: &str) {
        let behaviour = self.inner.behaviour;
        let paid = fastrand::f64() >= behaviour.decline_rate;
        let Some(order) = self.with_order(id, |order| {
            if order.outcome == Outcome::Waiting && !order.closed {
                order.outcome = if paid {
                    Outcome::Paid
                } else {
                    Outcome::Declined
                };
            }
            order.clone()
        }) else {
            return;
        };
        if order.closed {
            return;
        }
        if fastrand::f64() < behaviour.lost_rate {
            tracing::info!(payment = id, "sandbox: notification lost (on purpose)");
            return;
        }
        for _ in 0..behaviour.copies.max(1) {
            self.notify(id, &order).await;
        }
    }

    async fn notify(&self, id: &str, order: &Order) {
        let keys = &self.inner.keys;
        let what = Outcomes {
            payment_id: id,
            trade_no: &order.trade_no,
            paid: order.outcome == Outcome::Paid,
            amount_minor: order.amount_minor,
            currency: &order.currency,
        };
        let now = now_micros();
        let (headers, body, content_type) = match order.channel {
            Channel::Alipay => (
                Vec::new(),
                alipay_notification(
                    &keys.alipay,
                    &keys.merchant_ids[0],
                    &what,
                    // Alipay's repeats of a notification keep its id.
                    &format!("notify-{}", order.trade_no),
                    now,
                ),
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            Channel::WechatPay => {
                let nonce: String = std::iter::repeat_with(fastrand::alphanumeric)
                    .take(32)
                    .collect();
                let (headers, body) = wechat_notification(
                    &keys.wechat_platform,
                    &keys.wechat_serial,
                    &keys.api_v3_key,
                    &keys.merchant_ids[1],
                    &what,
                    // Repeats keep the event id; each delivery is signed
                    // afresh with a new nonce.
                    &format!("evt-{}", order.trade_no),
                    &nonce,
                    now / 1_000_000,
                );
                (headers, body, "application/json")
            }
            Channel::UnionPay => (
                Vec::new(),
                unionpay_notification(
                    &keys.unionpay,
                    &keys.unionpay_cert_id,
                    &keys.merchant_ids[2],
                    &what,
                    now,
                ),
                "application/x-www-form-urlencoded; charset=UTF-8",
            ),
        };
        let mut pairs = vec![(header::CONTENT_TYPE, content_type.to_owned())];
        for (name, value) in headers {
            if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
                pairs.push((name, value));
            }
        }
        let sent = self
            .inner
            .http
            .send(
                "sandbox notification",
                Method::POST,
                &order.notify_url,
                &pairs,
                Bytes::from(body),
            )
            .await;
        match sent {
            Ok(answer) if answer.status.is_success() => {
                tracing::info!(payment = id, answer = %answer.text(), "sandbox: notification delivered");
            }
            Ok(answer) => {
                tracing::warn!(payment = id, status = %answer.status, answer = %answer.text(), "sandbox: notification not taken");
            }
            Err(error) => {
                tracing::warn!(payment = id, %error, "sandbox: notification not delivered")
            }
        }
    }

    /// Marks an open order paid at once, without a notification (the
    /// payer paid; the notification is still on its way). Whether it was
    /// open.
    pub fn pay(&self, id: &str) -> bool {
        self.with_order(id, |order| {
            let open = order.outcome == Outcome::Waiting && !order.closed;
            if open {
                order.outcome = Outcome::Paid;
            }
            open
        })
        .unwrap_or(false)
    }

    /// Closes an unpaid order: `Err` with the provider's reason when it
    /// cannot be (unknown, or paid).
    fn close(&self, id: &str) -> Result<(), &'static str> {
        self.with_order(id, |order| match order.outcome {
            Outcome::Paid => Err("TRADE_STATUS_ERROR"),
            _ => {
                order.closed = true;
                order.outcome = Outcome::Declined;
                Ok(())
            }
        })
        .unwrap_or(Err("TRADE_NOT_EXIST"))
    }

    /// Records a refund once per refund id; whether the refunds now stay
    /// within the amount paid.
    fn refund(&self, id: &str, refund_id: &str, amount_minor: i64) -> Result<(), &'static str> {
        self.with_order(id, |order| {
            if order.outcome != Outcome::Paid {
                return Err("TRADE_NOT_PAID");
            }
            if order.refunds.contains_key(refund_id) {
                return Ok(());
            }
            let refunded: i64 = order.refunds.values().sum();
            if amount_minor <= 0 || refunded + amount_minor > order.amount_minor {
                return Err("REFUND_AMOUNT_EXCEEDED");
            }
            order.refunds.insert(refund_id.to_owned(), amount_minor);
            Ok(())
        })
        .unwrap_or(Err("TRADE_NOT_EXIST"))
    }
}
