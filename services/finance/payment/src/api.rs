//! The gRPC face of finance.payment: protobuf ↔ domain conversion and
//! validation, nothing else.

use meshwork_proto::google::api::HttpBody;
use meshwork_proto::meshwork::finance::payment::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::time::to_timestamp;
use meshwork_runtime::validate::{self as checked, Checks, next_page_token};
use pb::payment_service_server::PaymentService;
use tonic::{Request, Response, Status};

use crate::domain::{Channel, PaymentState};
use crate::domain::{NewPayment, Payment, Refund, RefundState, Settlement};
use crate::provider::Channels;
use crate::workflow::Payments;

/// Default and bounds of a payment's time to pay.
const DEFAULT_TTL_SECS: i64 = 30 * 60;
const MIN_TTL_SECS: i64 = 60;
const MAX_TTL_SECS: i64 = 7 * 24 * 3600;

/// Implements `meshwork.finance.payment.v1.PaymentService`.
pub struct PaymentApi {
    payments: Payments,
}

impl PaymentApi {
    /// The service over its workflow.
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }

    async fn with_refunds(&self, payment: &Payment) -> Result<pb::Payment, Status> {
        let refunds = self.payments.store().refunds(&payment.id).await?;
        Ok(payment_to_pb(payment, &refunds))
    }

    async fn notify(
        &self,
        channel: Channel,
        metadata: &tonic::metadata::MetadataMap,
        body: Option<HttpBody>,
    ) -> Result<HttpBody, Status> {
        let body = body.unwrap_or_default();
        let headers: Vec<(String, String)> = metadata
            .clone()
            .into_headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let actor = Some(format!("channel:{}", channel.as_str().to_ascii_lowercase()));
        meshwork_runtime::caller::scope(actor, self.payments.notify(channel, &headers, &body.data))
            .await?;
        let (content_type, data) = Channels::acknowledgement(channel);
        Ok(HttpBody {
            content_type: content_type.to_owned(),
            data: data.to_vec(),
            extensions: Vec::new(),
        })
    }
}

fn channel_of(value: i32) -> Option<Channel> {
    match pb::Channel::try_from(value).ok()? {
        pb::Channel::Alipay => Some(Channel::Alipay),
        pb::Channel::WechatPay => Some(Channel::WechatPay),
        pb::Channel::Unionpay => Some(Channel::UnionPay),
        pb::Channel::Unspecified => None,
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn create_payment(
        &self,
        request: Request<pb::CreatePaymentRequest>,
    ) -> Result<Response<pb::CreatePaymentResponse>, Status> {
        let r = request.into_inner();
        let (currency, amount_minor) = checked::amount("amount", r.amount.as_ref())?;
        let channel = checked::required("channel", channel_of(r.channel))?;
        let mut checks = Checks::new();
        if !channel.currencies().contains(&currency.as_str()) {
            checks.fail(
                "amount.currency",
                format!(
                    "{} collects {}",
                    channel.as_str(),
                    channel.currencies().join(", ")
                ),
            );
        }
        // One minute to seven days (the contract's rule); a fraction of a
        // second is dropped.
        let ttl_secs = r.ttl.map_or(DEFAULT_TTL_SECS, |ttl| {
            ttl.seconds.clamp(MIN_TTL_SECS, MAX_TTL_SECS)
        });
        checks.finish()?;
        let new = NewPayment {
            merchant_account_id: r.merchant_account_id,
            merchant_order_ref: r.merchant_order_ref,
            currency: currency.as_str().to_owned(),
            amount_minor,
            channel,
            description: if r.description.is_empty() {
                "Meshwork payment".to_owned()
            } else {
                r.description
            },
            ttl_micros: ttl_secs * 1_000_000,
        };
        let payment = self.payments.create(&r.request_id, &new).await?;
        Ok(Response::new(pb::CreatePaymentResponse {
            payment: Some(self.with_refunds(&payment).await?),
        }))
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        let r = request.into_inner();
        let payment = self.payments.store().get(&r.payment_id).await?;
        Ok(Response::new(pb::GetPaymentResponse {
            payment: Some(self.with_refunds(&payment).await?),
        }))
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        let r = request.into_inner();
        let page_size = checked::page_size(r.page_size);
        let after = checked::page_token(&r.page_token);
        let mut payments = self
            .payments
            .store()
            .list(&r.merchant_account_id, after.as_deref(), page_size + 1)
            .await?;
        let next_page_token = next_page_token(&mut payments, page_size, |p| p.id.clone());
        let mut out = Vec::with_capacity(payments.len());
        for payment in &payments {
            out.push(self.with_refunds(payment).await?);
        }
        Ok(Response::new(pb::ListPaymentsResponse {
            payments: out,
            next_page_token,
        }))
    }

    async fn cancel_payment(
        &self,
        request: Request<pb::CancelPaymentRequest>,
    ) -> Result<Response<pb::CancelPaymentResponse>, Status> {
        let r = request.into_inner();
        // Cancelling is idempotent by itself: a cancelled payment stays so.
        let payment = self.payments.cancel(&r.payment_id, &r.reason).await?;
        Ok(Response::new(pb::CancelPaymentResponse {
            payment: Some(self.with_refunds(&payment).await?),
        }))
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::RefundPaymentResponse>, Status> {
        let r = request.into_inner();
        let (currency, amount_minor) = checked::amount("amount", r.amount.as_ref())?;
        let (refund, payment) = self
            .payments
            .refund(
                &r.request_id,
                &r.payment_id,
                amount_minor,
                currency.as_str(),
                &r.reason,
            )
            .await?;
        Ok(Response::new(pb::RefundPaymentResponse {
            refund: Some(refund_to_pb(&refund, &payment.currency)),
            payment: Some(self.with_refunds(&payment).await?),
        }))
    }

    async fn notify_alipay(
        &self,
        request: Request<pb::NotifyAlipayRequest>,
    ) -> Result<Response<pb::NotifyAlipayResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        let body = self.notify(Channel::Alipay, &metadata, r.body).await?;
        Ok(Response::new(pb::NotifyAlipayResponse { body: Some(body) }))
    }

    async fn notify_wechat_pay(
        &self,
        request: Request<pb::NotifyWechatPayRequest>,
    ) -> Result<Response<pb::NotifyWechatPayResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        let body = self.notify(Channel::WechatPay, &metadata, r.body).await?;
        Ok(Response::new(pb::NotifyWechatPayResponse {
            body: Some(body),
        }))
    }

    async fn notify_union_pay(
        &self,
        request: Request<pb::NotifyUnionPayRequest>,
    ) -> Result<Response<pb::NotifyUnionPayResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        let body = self.notify(Channel::UnionPay, &metadata, r.body).await?;
        Ok(Response::new(pb::NotifyUnionPayResponse {
            body: Some(body),
        }))
    }
}

fn money(currency: &str, amount_minor: i64) -> Option<Money> {
    Some(Money {
        currency: currency.to_owned(),
        amount_minor,
    })
}

/// The protobuf form of a payment.
pub fn payment_to_pb(payment: &Payment, refunds: &[Refund]) -> pb::Payment {
    pb::Payment {
        payment_id: payment.id.clone(),
        merchant_account_id: payment.merchant_account_id.clone(),
        merchant_order_ref: payment.merchant_order_ref.clone(),
        amount: money(&payment.currency, payment.amount_minor),
        channel: match payment.channel {
            Channel::Alipay => pb::Channel::Alipay,
            Channel::WechatPay => pb::Channel::WechatPay,
            Channel::UnionPay => pb::Channel::Unionpay,
        } as i32,
        state: match payment.state {
            PaymentState::Created => pb::PaymentState::Created,
            PaymentState::Pending => pb::PaymentState::Pending,
            PaymentState::Succeeded => pb::PaymentState::Succeeded,
            PaymentState::Failed => pb::PaymentState::Failed,
            PaymentState::Expired => pb::PaymentState::Expired,
            PaymentState::PartiallyRefunded => pb::PaymentState::PartiallyRefunded,
            PaymentState::Refunded => pb::PaymentState::Refunded,
        } as i32,
        description: payment.description.clone(),
        pay_url: payment.pay_url.clone(),
        channel_trade_id: payment.channel_trade_id.clone(),
        refunded: money(&payment.currency, payment.refunded_minor),
        settlement_state: match payment.settlement {
            Settlement::None => pb::SettlementState::None,
            Settlement::Pending => pb::SettlementState::Pending,
            Settlement::Settled => pb::SettlementState::Settled,
            Settlement::Failed => pb::SettlementState::Failed,
        } as i32,
        settlement_transfer_id: payment.settlement_transfer_id.clone(),
        failure_reason: payment.failure_reason.clone(),
        create_time: Some(to_timestamp(payment.created_at)),
        update_time: Some(to_timestamp(payment.updated_at)),
        expire_time: Some(to_timestamp(payment.expires_at)),
        refunds: refunds
            .iter()
            .map(|r| refund_to_pb(r, &payment.currency))
            .collect(),
    }
}

/// The protobuf form of a refund.
pub fn refund_to_pb(refund: &Refund, currency: &str) -> pb::Refund {
    pb::Refund {
        refund_id: refund.id.clone(),
        payment_id: refund.payment_id.clone(),
        amount: money(currency, refund.amount_minor),
        reason: refund.reason.clone(),
        state: match refund.state {
            RefundState::Processing => pb::RefundState::Processing,
            RefundState::Succeeded => pb::RefundState::Succeeded,
            RefundState::Failed => pb::RefundState::Failed,
        } as i32,
        failure_reason: refund.failure_reason.clone(),
        create_time: Some(to_timestamp(refund.created_at)),
        update_time: Some(to_timestamp(refund.updated_at)),
    }
}
