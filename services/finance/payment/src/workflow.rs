//! The payment's life across the channel, the ledger and the audit trail:
//! open with the channel, take its notifications, settle with the merchant,
//! refund, and the sync job that finds out what notifications did not say.

use std::sync::Arc;
use std::time::Duration;

use meshwork_runtime::client::MeshChannel;
use meshwork_runtime::outbox::Event;
use meshwork_runtime::time::now_micros;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::domain::{Channel, NewPayment, Payment, PaymentState, Refund, RefundState, Settlement};
use crate::error::PaymentError;
use crate::ledger::{Ledger, Movement};
use crate::provider::{self, CallError, Channels, Order, RefundOrder};
use crate::store::{Applied, ApplyError, Store};
use crate::transfers::{Move, Transfer, Transfers};
use crate::upstream::Failed;

/// The workflow.
#[derive(Clone)]
pub struct Payments {
    store: Store,
    channels: Arc<Channels>,
    ledger: Ledger,
    transfers: Transfers,
    notify_base_url: String,
}

/// What a notification's handling answers the channel.
#[derive(Debug, Clone)]
pub struct Acknowledged {
    /// The payment it was about, after it.
    pub payment: Payment,
}

impl Payments {
    /// The workflow over its store, the channels and the two finance
    /// services; channels call back at `notify_base_url` (the REST edge).
    pub fn new(
        store: Store,
        channels: Arc<Channels>,
        ledger: MeshChannel,
        transfers: MeshChannel,
        notify_base_url: &str,
    ) -> Self {
        Self {
            store,
            channels,
            ledger: Ledger::new(ledger),
            transfers: Transfers::new(transfers),
            notify_base_url: notify_base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The store (reads).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether `channel` can be used.
    pub fn configured(&self, channel: Channel) -> bool {
        self.channels.configured(channel)
    }

    fn notify_url(&self, channel: Channel) -> String {
        let path = match channel {
            Channel::Alipay => "alipay",
            Channel::WechatPay => "wechat-pay",
            Channel::UnionPay => "unionpay",
        };
        format!("{}/v1/payment-notifications/{path}", self.notify_base_url)
    }

    /// Creates a payment once per request id and opens it with the channel.
    /// A payment the channel could not be asked about stays CREATED: the
    /// same request again (or the sync job) opens it.
    pub async fn create(
        &self,
        request_id: &str,
        new: &NewPayment,
    ) -> Result<Payment, PaymentError> {
        if !self.channels.configured(new.channel) {
            return Err(PaymentError::ChannelNotConfigured(new.channel.as_str()));
        }
        // A merchant account that cannot take the money is refused before
        // the payer is asked to pay (a replay returns what was created).
        if !self.store.claimed(request_id).await? {
            self.check_merchant(new).await?;
        }
        let traceparent = meshwork_runtime::events::current_traceparent();
        let payment = self.store.create(request_id, new, &traceparent).await?;
        if payment.state != PaymentState::Created {
            return Ok(payment);
        }
        self.open(&payment).await
    }

    /// Whether the merchant account exists, is active, is a customer
    /// account, and holds the payment's currency.
    async fn check_merchant(&self, new: &NewPayment) -> Result<(), PaymentError> {
        let Some(account) = self.ledger.account(&new.merchant_account_id).await? else {
            return Err(PaymentError::MerchantNotFound(
                new.merchant_account_id.clone(),
            ));
        };
        let unusable = |why: String| PaymentError::MerchantUnusable {
            account_id: new.merchant_account_id.clone(),
            why,
        };
        if account.currency != new.currency {
            return Err(unusable(format!(
                "it holds {}, the payment is in {}",
                account.currency, new.currency
            )));
        }
        if !account.active {
            return Err(unusable("it is not active (frozen or closed)".into()));
        }
        if account.settlement {
            return Err(unusable("it is a settlement account".into()));
        }
        Ok(())
    }

    async fn open(&self, payment: &Payment) -> Result<Payment, PaymentError> {
        let notify_url = self.notify_url(payment.channel);
        let order = Order {
            payment_id: &payment.id,
            amount_minor: payment.amount_minor,
            currency: &payment.currency,
            description: &payment.description,
            notify_url: &notify_url,
            created_at: payment.created_at,
            expires_at: payment.expires_at,
        };
        match self.channels.open(payment.channel, &order).await {
            Ok(opened) => self.store.mark_opened(&payment.id, &opened.pay_url).await,
            Err(CallError::Refused(why)) => {
                // Only a payment no earlier attempt opened fails: a retry
                // racing the first call must not fail what the payer holds.
                let reason = format!("CHANNEL_REFUSED: {why}");
                let (payment, _) = self
                    .store
                    .close(
                        &payment.id,
                        &[PaymentState::Created],
                        PaymentState::Failed,
                        &reason,
                        "payment.failed",
                    )
                    .await?;
                Ok(payment)
            }
            Err(CallError::NotConfigured(name)) => Err(PaymentError::ChannelNotConfigured(name)),
            Err(unanswered @ (CallError::Unknown(_) | CallError::Timeout(_))) => {
                Err(PaymentError::ChannelUnavailable(unanswered.to_string()))
            }
        }
    }

    /// Cancels an open payment (EXPIRED).
    pub async fn cancel(&self, payment_id: &str, reason: &str) -> Result<Payment, PaymentError> {
        let payment = self.store.get(payment_id).await?;
        if payment.state == PaymentState::Expired {
            return Ok(payment);
        }
        payment.rules().cancel().map_err(PaymentError::Refused)?;
        if payment.channel == Channel::UnionPay && payment.state == PaymentState::Pending {
            // UnionPay cannot close an unpaid purchase: calling it cancelled
            // while the payer can still pay would lose their money.
            return Err(PaymentError::ChannelRefused(
                "UnionPay cannot close an unpaid order; it lapses at its expiry".into(),
            ));
        }
        self.close_at_channel(&payment).await?;
        let (after, changed) = self
            .store
            .close(
                payment_id,
                &[PaymentState::Created, PaymentState::Pending],
                PaymentState::Expired,
                &format!("CANCELLED: {reason}"),
                "payment.cancelled",
            )
            .await?;
        if !changed && after.state != PaymentState::Expired {
            // Paid or failed in between.
            return Err(PaymentError::Refused(crate::domain::Refusal::NotOpen(
                after.state,
            )));
        }
        Ok(after)
    }

    /// Closes an open payment at its channel, so that the payer cannot pay
    /// what we are about to call expired or cancelled. A channel that
    /// refuses has most likely been paid meanwhile: it is asked, what it
    /// says is applied (and settled), and the refusal returned.
    async fn close_at_channel(&self, payment: &Payment) -> Result<(), PaymentError> {
        if payment.state == PaymentState::Created {
            // Never opened there (or its opening is unknown: the query of
            // the sync job finds it).
            return Ok(());
        }
        match self.channels.close(payment.channel, &payment.id).await {
            Ok(()) => Ok(()),
            Err(CallError::Refused(why)) => {
                if let Ok(Some(status)) = self
                    .channels
                    .query(payment.channel, &payment.id, payment.created_at)
                    .await
                {
                    let applied = self
                        .store
                        .apply(&payment.id, &status.report, &status.channel_trade_id, None)
                        .await;
                    if let Ok(Applied::Moved(after)) = &applied
                        && after.settlement == Settlement::Pending
                    {
                        self.settle(after).await;
                    }
                }
                let after = self.store.get(&payment.id).await?;
                if !after.state.is_open() {
                    return Err(PaymentError::Refused(crate::domain::Refusal::NotOpen(
                        after.state,
                    )));
                }
                Err(PaymentError::ChannelRefused(why))
            }
            Err(CallError::NotConfigured(name)) => Err(PaymentError::ChannelNotConfigured(name)),
            Err(unanswered @ (CallError::Unknown(_) | CallError::Timeout(_))) => {
                Err(PaymentError::ChannelUnavailable(unanswered.to_string()))
            }
        }
    }

    /// Takes a channel's notification: checked, applied at most once, the
    /// merchant credited when it says paid. A refusal is recorded in the
    /// audit trail and counted, and changes nothing.
    pub async fn notify(
        &self,
        channel: Channel,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Acknowledged, PaymentError> {
        let now_secs = now_micros() / 1_000_000;
        let outcome = self
            .take_notification(channel, headers, body, now_secs)
            .await;
        match &outcome {
            Ok((payment, duplicate)) => {
                provider::count_notification(
                    channel,
                    if *duplicate { "duplicate" } else { "accepted" },
                );
                if payment.settlement == Settlement::Pending {
                    self.settle(payment).await;
                }
            }
            Err((payment_id, error)) => {
                provider::count_notification(channel, error.reason());
                if !matches!(
                    error,
                    PaymentError::Common(
                        meshwork_runtime::errors::Common::Unavailable(_)
                            | meshwork_runtime::errors::Common::Internal(_)
                    )
                ) {
                    tracing::warn!(channel = channel.as_str(), reason = error.reason(), %error, "notification refused");
                    let resource =
                        format!("payments/{}", payment_id.as_deref().unwrap_or("unknown"));
                    let event = Event::new("payment.notification_refused", &resource, "DENIED")
                        .attr("channel", channel.as_str())
                        .attr("reason", error.reason())
                        .attr("detail", error.to_string());
                    if let Err(failed) = self.store.record(&event).await {
                        tracing::error!(error = %failed, "refused notification not recorded");
                    }
                }
            }
        }
        let (payment, _) = outcome.map_err(|(_, error)| error)?;
        let payment = self.store.get(&payment.id).await?;
        Ok(Acknowledged { payment })
    }

    async fn take_notification(
        &self,
        channel: Channel,
        headers: &[(String, String)],
        body: &[u8],
        now_secs: i64,
    ) -> Result<(Payment, bool), (Option<String>, PaymentError)> {
        let received = self
            .channels
            .read_notification(channel, headers, body, now_secs)
            .map_err(|e| (None, PaymentError::Notification(e)))?;
        let id = received.notification.payment_id.clone();
        let payment = self
            .store
            .get(&id)
            .await
            .map_err(|e| (Some(id.clone()), e))?;
        if payment.channel != channel {
            return Err((Some(id), PaymentError::NotFound(payment.id)));
        }
        let applied = self
            .store
            .apply(
                &id,
                &received.notification.report,
                &received.notification.channel_trade_id,
                Some((channel, &received.replay_key)),
            )
            .await
            .map_err(|e| match e {
                ApplyError::Refused(refusal) => (Some(id.clone()), PaymentError::Refused(refusal)),
                ApplyError::Payment(error) => (Some(id.clone()), error),
            })?;
        match applied {
            Applied::Duplicate(_) if received.key_is_nonce => {
                Err((Some(id), PaymentError::ReplayedNonce))
            }
            Applied::Duplicate(payment) => Ok((payment, true)),
            Applied::Moved(payment) | Applied::Unchanged(payment) => Ok((payment, false)),
        }
    }

    /// Credits the merchant for a paid payment: the money enters the ledger
    /// in the channel's clearing account (a deposit keyed by the payment)
    /// and moves to the merchant by a transfer keyed by the payment, so
    /// that however often this runs, the merchant is credited once.
    /// Problems leave the credit PENDING for the sync job, except a final
    /// refusal by the ledger (FAILED, for an operator).
    pub async fn settle(&self, payment: &Payment) {
        match self.try_settle(payment).await {
            Ok(()) => {}
            Err(PaymentError::Upstream { service, cause }) => {
                tracing::warn!(payment = %payment.id, service, %cause, "settlement postponed");
                // To the back of the sync job's queue.
                if let Err(error) = self.store.touch(&payment.id).await {
                    tracing::warn!(payment = %payment.id, %error, "not touched");
                }
            }
            Err(error) => tracing::error!(payment = %payment.id, %error, "settlement failed"),
        }
    }

    async fn try_settle(&self, payment: &Payment) -> Result<(), PaymentError> {
        let clearing = self
            .clearing_account(payment.channel, &payment.currency)
            .await?;
        let deposited = self
            .ledger
            .deposit(Movement {
                request_id: &format!("payment-in:{}", payment.id),
                account_id: &clearing,
                currency: &payment.currency,
                amount_minor: payment.amount_minor,
                memo: &format!("{} payment {}", payment.channel.as_str(), payment.id),
            })
            .await;
        match deposited {
            Ok(()) => {}
            Err(Failed::Refused { message, .. }) => {
                self.store
                    .mark_settlement_failed(&payment.id, &format!("CLEARING_REFUSED: {message}"))
                    .await?;
                return Ok(());
            }
            Err(Failed::Unanswered(error)) => return Err(error),
        }
        let transfer = self
            .transfers
            .transfer(Move {
                request_id: &format!("payment-settle:{}", payment.id),
                from_account_id: &clearing,
                to_account_id: &payment.merchant_account_id,
                currency: &payment.currency,
                amount_minor: payment.amount_minor,
                memo: &format!("payment {} ({})", payment.id, payment.merchant_order_ref),
            })
            .await;
        let refused = match transfer {
            Ok(Transfer::Posted(transfer_id)) => {
                self.store.mark_settled(&payment.id, &transfer_id).await?;
                return Ok(());
            }
            Ok(Transfer::Refused(reason)) => reason,
            Err(Failed::Refused { message, .. }) => message,
            // Held for review or in flight: the sync job asks again.
            Ok(Transfer::Reversed(_) | Transfer::Pending(_)) => {
                self.store.touch(&payment.id).await?;
                return Ok(());
            }
            Err(Failed::Unanswered(error)) => return Err(error),
        };
        self.store
            .mark_settlement_failed(&payment.id, &format!("SETTLEMENT_REFUSED: {refused}"))
            .await?;
        Ok(())
    }

    /// The clearing account of a channel and currency, opened on first use
    /// (idempotently, so concurrent first uses agree on one).
    async fn clearing_account(
        &self,
        channel: Channel,
        currency: &str,
    ) -> Result<String, PaymentError> {
        if let Some(id) = self.store.clearing_account(channel, currency).await? {
            return Ok(id);
        }
        let id = self
            .ledger
            .open_account(
                &format!("payment-clearing:{}:{currency}", channel.as_str()),
                &format!("meshwork-payment-{}", channel.as_str().to_ascii_lowercase()),
                currency,
            )
            .await?;
        self.store
            .save_clearing_account(channel, currency, &id)
            .await?;
        Ok(id)
    }

    /// Refunds part of a paid payment: reserves the amount, then drives the
    /// refund as far as it goes now (the sync job finishes the rest).
    pub async fn refund(
        &self,
        request_id: &str,
        payment_id: &str,
        amount_minor: i64,
        currency: &str,
        reason: &str,
    ) -> Result<(Refund, Payment), PaymentError> {
        let (refund, payment, _) = self
            .store
            .reserve_refund(request_id, payment_id, amount_minor, currency, reason)
            .await?;
        if refund.state != RefundState::Processing {
            return Ok((refund, payment));
        }
        self.drive_refund(&refund, &payment).await
    }

    /// One pass of a refund: debit the merchant (a transfer back to the
    /// clearing account), ask the channel to refund, then pay out of the
    /// clearing account. Each step is keyed by the refund, so a pass can be
    /// repeated from the start. A refusal by the ledger or the channel
    /// fails the refund (a channel refusal gives the merchant its money
    /// back first); anything unanswered leaves it PROCESSING.
    async fn drive_refund(
        &self,
        refund: &Refund,
        payment: &Payment,
    ) -> Result<(Refund, Payment), PaymentError> {
        match self.refund_steps(refund, payment).await {
            Ok(Some(failure)) => self.store.finish_refund(&refund.id, false, &failure).await,
            Ok(None) => self.store.finish_refund(&refund.id, true, "").await,
            Err(error) => {
                tracing::warn!(refund = %refund.id, %error, "refund not finished yet");
                self.store.touch_refund(&refund.id).await?;
                Ok((refund.clone(), self.store.get(&payment.id).await?))
            }
        }
    }

    /// `Ok(None)`: done; `Ok(Some(reason))`: refused; `Err`: try later.
    async fn refund_steps(
        &self,
        refund: &Refund,
        payment: &Payment,
    ) -> Result<Option<String>, PaymentError> {
        let clearing = self
            .clearing_account(payment.channel, &payment.currency)
            .await?;
        let debit = self
            .transfers
            .transfer(Move {
                request_id: &format!("refund-debit:{}", refund.id),
                from_account_id: &payment.merchant_account_id,
                to_account_id: &clearing,
                currency: &payment.currency,
                amount_minor: refund.amount_minor,
                memo: &format!("refund {} of payment {}", refund.id, payment.id),
            })
            .await;
        match debit {
            Ok(Transfer::Posted(_)) => {}
            Ok(Transfer::Refused(why) | Transfer::Reversed(why))
            | Err(Failed::Refused { message: why, .. }) => {
                return Ok(Some(format!("MERCHANT_DEBIT_REFUSED: {why}")));
            }
            Ok(Transfer::Pending(_)) => {
                return Err(PaymentError::Upstream {
                    service: "finance.transaction",
                    cause: "the merchant debit is not posted yet".into(),
                });
            }
            Err(Failed::Unanswered(error)) => return Err(error),
        }
        let order = RefundOrder {
            refund_id: &refund.id,
            payment_id: &payment.id,
            channel_trade_id: &payment.channel_trade_id,
            amount_minor: refund.amount_minor,
            total_minor: payment.amount_minor,
            currency: &payment.currency,
            reason: &refund.reason,
            created_at: refund.created_at,
        };
        match self.channels.refund(payment.channel, &order).await {
            Ok(()) => {}
            Err(CallError::Refused(why)) => {
                // Give the merchant its money back before failing the refund;
                // until that transfer is posted the refund stays PROCESSING.
                let undo = self
                    .transfers
                    .transfer(Move {
                        request_id: &format!("refund-undo:{}", refund.id),
                        from_account_id: &clearing,
                        to_account_id: &payment.merchant_account_id,
                        currency: &payment.currency,
                        amount_minor: refund.amount_minor,
                        memo: &format!("refund {} refused by the channel", refund.id),
                    })
                    .await
                    .map_err(PaymentError::from)?;
                if !matches!(undo, Transfer::Posted(_)) {
                    return Err(PaymentError::Upstream {
                        service: "finance.transaction",
                        cause: format!("the merchant's money is not back yet ({undo:?})"),
                    });
                }
                return Ok(Some(format!("CHANNEL_REFUSED: {why}")));
            }
            Err(other) => return Err(PaymentError::ChannelUnavailable(other.to_string())),
        }
        self.ledger
            .withdraw(Movement {
                request_id: &format!("refund-out:{}", refund.id),
                account_id: &clearing,
                currency: &payment.currency,
                amount_minor: refund.amount_minor,
                memo: &format!(
                    "refund {} paid out by {}",
                    refund.id,
                    payment.channel.as_str()
                ),
            })
            .await
            .map_err(PaymentError::from)?;
        Ok(None)
    }

    /// One pass of the sync job at time `now` (microseconds) over work
    /// untouched for `after`: open payments are asked about at their channel
    /// (and expired when out of time), pending credits and refunds are
    /// driven again. The number of items looked at.
    pub async fn sync_once(&self, after: Duration, now: i64) -> Result<usize, PaymentError> {
        let before = now - after.as_micros() as i64;
        let (payments, refunds) = self.store.stale(before, 100).await?;
        let work = payments.len() + refunds.len();
        for payment in payments {
            let span = tracing::info_span!("payment.sync", otel.name = "payment sync", payment = %payment.id);
            if !payment.traceparent.is_empty() {
                let mut headers = http::HeaderMap::new();
                if let Ok(value) = http::HeaderValue::from_str(&payment.traceparent) {
                    headers.insert("traceparent", value);
                }
                let linked = meshwork_runtime::propagation::extract(&headers);
                span.add_link(
                    opentelemetry::trace::TraceContextExt::span(&linked)
                        .span_context()
                        .clone(),
                );
            }
            if let Err(error) = self.sync_payment(&payment, now).instrument(span).await {
                tracing::warn!(payment = %payment.id, %error, "sync: not settled yet");
                // To the back of the queue, so that one stuck payment does
                // not hold up the others.
                self.store.touch(&payment.id).await?;
            }
        }
        for refund in refunds {
            match self.store.get(&refund.payment_id).await {
                Ok(payment) => {
                    self.drive_refund(&refund, &payment).await?;
                }
                Err(error) => {
                    tracing::error!(refund = %refund.id, %error, "sync: refund without payment")
                }
            }
        }
        Ok(work)
    }

    async fn sync_payment(&self, payment: &Payment, now: i64) -> Result<(), PaymentError> {
        if payment.state.is_open() {
            let asked = self
                .channels
                .query(payment.channel, &payment.id, payment.created_at)
                .await;
            let payment = match asked {
                Ok(Some(status)) => match self
                    .store
                    .apply(&payment.id, &status.report, &status.channel_trade_id, None)
                    .await
                {
                    Ok(
                        Applied::Moved(after)
                        | Applied::Unchanged(after)
                        | Applied::Duplicate(after),
                    ) => after,
                    Err(ApplyError::Refused(refusal)) => {
                        tracing::warn!(payment = %payment.id, %refusal, "sync: channel's answer refused");
                        payment.clone()
                    }
                    Err(ApplyError::Payment(error)) => return Err(error),
                },
                Ok(None)
                    if payment.state == PaymentState::Created
                        && !payment.rules().expired_at(now) =>
                {
                    // Never reached the channel: open it now.
                    self.open(payment).await?
                }
                Ok(None) => payment.clone(),
                Err(error) => {
                    self.store.touch(&payment.id).await?;
                    return Err(PaymentError::ChannelUnavailable(error.to_string()));
                }
            };
            if payment.rules().expired_at(now) {
                self.close_at_channel(&payment).await?;
                self.store
                    .close(
                        &payment.id,
                        &[PaymentState::Created, PaymentState::Pending],
                        PaymentState::Expired,
                        "EXPIRED",
                        "payment.expired",
                    )
                    .await?;
                return Ok(());
            }
            if payment.settlement == Settlement::Pending {
                self.settle(&payment).await;
            } else if payment.state.is_open() {
                self.store.touch(&payment.id).await?;
            }
            return Ok(());
        }
        if payment.settlement == Settlement::Pending {
            self.settle(payment).await;
        }
        Ok(())
    }
}
