//! Everything that can go wrong in finance.payment, and the one mapping of
//! it to gRPC statuses. Reasons in `ErrorInfo` are stable.

use meshwork_runtime::errors::{self, Common};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::channels::ChannelError;
use crate::domain::Refusal;

/// A payment service error.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// No such payment (or refund).
    #[error("payment {0} not found")]
    NotFound(String),
    /// The payment rules refuse it.
    #[error("{0}")]
    Refused(Refusal),
    /// The merchant account does not exist.
    #[error("merchant account {0} not found")]
    MerchantNotFound(String),
    /// The merchant account cannot take the payment.
    #[error("merchant account {account_id} cannot take this payment: {why}")]
    MerchantUnusable { account_id: String, why: String },
    /// A refund before the merchant was credited.
    #[error("payment {0} is not settled yet; refunds wait until the merchant is credited")]
    NotSettled(String),
    /// The channel is not configured here.
    #[error("channel {0} is not configured")]
    ChannelNotConfigured(&'static str),
    /// The channel could not be reached, or its answer not trusted; the
    /// payment stays as it was and a retry (or the sync job) finds out.
    #[error("the channel did not answer: {0}; retry with the same request_id")]
    ChannelUnavailable(String),
    /// The channel said no (e.g. to closing a payment it already took).
    #[error("the channel refused: {0}")]
    ChannelRefused(String),
    /// A notification that fails the channel's checks.
    #[error("notification refused: {0}")]
    Notification(ChannelError),
    /// A WeChat Pay notification whose nonce was used before.
    #[error("notification refused: nonce already used")]
    ReplayedNonce,
    /// finance.account or finance.transaction could not answer.
    #[error("{service}: {cause}")]
    Upstream {
        service: &'static str,
        cause: String,
    },
    /// Another worker changed the payment at the same time, repeatedly.
    #[error("payment {0} changed concurrently")]
    Conflict(String),
    /// What every service shares: invalid requests, reused request ids,
    /// the database, anything else.
    #[error(transparent)]
    Common(Common),
}

meshwork_runtime::common_errors!(PaymentError);

impl PaymentError {
    /// The stable reason, as counted and recorded for refused notifications.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Notification(ChannelError::BadSignature) => "BAD_SIGNATURE",
            Self::Notification(ChannelError::UnknownSerial(_)) => "UNKNOWN_SERIAL",
            Self::Notification(ChannelError::StaleTimestamp) => "STALE_TIMESTAMP",
            Self::Notification(ChannelError::Algorithm(_)) => "UNSUPPORTED_ALGORITHM",
            Self::Notification(ChannelError::Undecryptable) => "UNDECRYPTABLE",
            Self::Notification(ChannelError::OtherMerchant) => "OTHER_MERCHANT",
            Self::Notification(ChannelError::Malformed(_)) => "MALFORMED",
            Self::ReplayedNonce => "REPLAYED_NONCE",
            Self::Refused(Refusal::AmountMismatch { .. }) => "AMOUNT_MISMATCH",
            Self::Refused(Refusal::CurrencyMismatch { .. }) => "CURRENCY_MISMATCH",
            Self::Refused(Refusal::Backwards(_)) => "STATE_WOULD_MOVE_BACKWARDS",
            Self::Refused(Refusal::NotPaid(_)) => "PAYMENT_NOT_PAID",
            Self::Refused(Refusal::NonPositive) => "REFUND_NOT_POSITIVE",
            Self::Refused(Refusal::OverRefund { .. }) => "REFUND_EXCEEDS_PAYMENT",
            Self::Refused(Refusal::NotOpen(_)) => "PAYMENT_NOT_OPEN",
            Self::NotFound(_) => "PAYMENT_NOT_FOUND",
            Self::NotSettled(_) => "PAYMENT_NOT_SETTLED",
            Self::MerchantNotFound(_) => "MERCHANT_ACCOUNT_NOT_FOUND",
            Self::MerchantUnusable { .. } => "MERCHANT_ACCOUNT_UNUSABLE",
            Self::ChannelNotConfigured(_) => "CHANNEL_NOT_CONFIGURED",
            Self::ChannelUnavailable(_) => "CHANNEL_UNAVAILABLE",
            Self::ChannelRefused(_) => "CHANNEL_REFUSED",
            Self::Upstream { .. } => "DEPENDENCY_UNAVAILABLE",
            Self::Conflict(_) => "CONCURRENT_UPDATE",
            Self::Common(common) => common.reason(),
        }
    }
}

impl From<PaymentError> for Status {
    fn from(error: PaymentError) -> Self {
        use PaymentError::*;
        let reason = error.reason();
        let message = error.to_string();
        match &error {
            Common(common) => common.status(),
            NotFound(id) => errors::not_found("payment", &format!("payments/{id}")),
            MerchantNotFound(id) => errors::not_found("account", &format!("accounts/{id}")),
            MerchantUnusable { account_id, .. } => {
                errors::failed_precondition(reason, &format!("accounts/{account_id}"), &message)
            }
            Refused(_) | NotSettled(_) | ChannelNotConfigured(_) | ChannelRefused(_) => {
                errors::failed_precondition(reason, "payment", &message)
            }
            Notification(ChannelError::Malformed(_)) => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_error_info(reason, errors::DOMAIN, []),
            ),
            Notification(_) | ReplayedNonce => Status::with_error_details(
                Code::Unauthenticated,
                message,
                ErrorDetails::with_error_info(reason, errors::DOMAIN, []),
            ),
            ChannelUnavailable(cause) => errors::unavailable("payment channel", cause),
            Upstream { service, cause } => errors::unavailable(service, cause),
            Conflict(_) => errors::aborted(reason, &message),
        }
    }
}
