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

use crate::channels::{alipay, unionpay, wechat};
use crate::clock;
use crate::credentials::{SANDBOX_MERCHANT_CERT_ID, SandboxKeys};
use crate::domain::Channel;
use meshwork_runtime::http_client::HttpClient;

use crate::channels::{form_decode, form_encode};
use crate::keys::SigningKey;
use crate::notifications::{decimal_to_minor, unionpay_currency, unionpay_currency_code};

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
    alipay::sign_notification(&mut params, key);
    form_encode(&params)
}

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
    let ciphertext = wechat::encrypt_resource(
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
    let signed = wechat::SignatureHeaders::sign(platform, serial, at_secs, nonce, &body);
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
    unionpay::sign(&mut params, key, cert_id);
    form_encode(&params)
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

// --- Alipay ---------------------------------------------------------------

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

async fn alipay_gateway(
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
            .verify(alipay::request_string(&params).as_bytes(), s)
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

// --- WeChat Pay -------------------------------------------------------------

fn wechat_answer(sandbox: &Sandbox, status: StatusCode, body: serde_json::Value) -> Response {
    let keys = &sandbox.inner.keys;
    let body = body.to_string();
    let nonce: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(32)
        .collect();
    let signed = wechat::SignatureHeaders::sign(
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
        .and_then(|v| wechat::Authorization::parse(v).ok())
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

async fn wechat_native(
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

async fn wechat_query(
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

async fn wechat_close(
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
    let signed = wechat::SignatureHeaders::sign(
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

async fn wechat_refund(
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

// --- UnionPay ---------------------------------------------------------------

fn unionpay_answer(sandbox: &Sandbox, fields: &[(&str, String)]) -> Response {
    let keys = &sandbox.inner.keys;
    let mut params: BTreeMap<String, String> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    params.insert("version".into(), "5.1.0".into());
    params.insert("encoding".into(), "UTF-8".into());
    unionpay::sign(&mut params, &keys.unionpay, &keys.unionpay_cert_id);
    (
        [(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded;charset=UTF-8",
        )],
        form_encode(&params),
    )
        .into_response()
}

async fn unionpay_gateway(
    State(sandbox): State<Sandbox>,
    Path(operation): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form_decode(&body);
    let keys = &sandbox.inner.keys;
    let certificates =
        HashMap::from([(SANDBOX_MERCHANT_CERT_ID.to_owned(), keys.merchant.clone())]);
    if unionpay::verify(&params, &certificates).is_err()
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
