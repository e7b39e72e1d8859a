//! Payments and the rules of their life: pure, no transport or storage.
//!
//! ```text
//! CREATED ─▶ PENDING ─┬─▶ SUCCEEDED ─▶ PARTIALLY_REFUNDED ─▶ REFUNDED
//!    │                ├─▶ FAILED          └────────────────────▲
//!    └────────────────┴─▶ EXPIRED (or cancelled before payment)
//! ```
//! States only move forward. A provider's word is checked against the
//! payment (amount and currency must match exactly), and a repeated word
//! changes nothing; refunds never add up to more than was paid.

/// The channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Alipay, RSA2.
    Alipay,
    /// WeChat Pay API v3.
    WechatPay,
    /// UnionPay 5.1.0.
    UnionPay,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Self; 3] = [Self::Alipay, Self::WechatPay, Self::UnionPay];

    /// The stored and reported name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alipay => "ALIPAY",
            Self::WechatPay => "WECHAT_PAY",
            Self::UnionPay => "UNIONPAY",
        }
    }

    /// The channel of a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The currencies the channel collects.
    pub fn currencies(self) -> &'static [&'static str] {
        match self {
            Self::Alipay | Self::WechatPay => &["CNY"],
            Self::UnionPay => &["CNY", "HKD", "USD", "EUR"],
        }
    }
}

/// Where a payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    /// Accepted, not yet sent to the channel.
    Created,
    /// Sent; waiting for the payer.
    Pending,
    /// Paid.
    Succeeded,
    /// The channel said no.
    Failed,
    /// Not paid in time, or cancelled before it was.
    Expired,
    /// Paid, part of it refunded.
    PartiallyRefunded,
    /// Paid and refunded in full.
    Refunded,
}

impl PaymentState {
    /// Every state.
    pub const ALL: [Self; 7] = [
        Self::Created,
        Self::Pending,
        Self::Succeeded,
        Self::Failed,
        Self::Expired,
        Self::PartiallyRefunded,
        Self::Refunded,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Pending => "PENDING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Expired => "EXPIRED",
            Self::PartiallyRefunded => "PARTIALLY_REFUNDED",
            Self::Refunded => "REFUNDED",
        }
    }

    /// The state of a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// How far along the life a state is; states only move to higher ranks.
    fn rank(self) -> u8 {
        match self {
            Self::Created => 0,
            Self::Pending => 1,
            Self::Succeeded | Self::Failed | Self::Expired => 2,
            Self::PartiallyRefunded => 3,
            Self::Refunded => 4,
        }
    }

    /// Whether the payer can still pay.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Created | Self::Pending)
    }

    /// Whether money was received (and may be refunded).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::PartiallyRefunded | Self::Refunded
        )
    }

    /// Whether `self → next` is a forward move this state machine allows.
    pub fn may_become(self, next: Self) -> bool {
        use PaymentState::*;
        let allowed = match self {
            Created => matches!(next, Pending | Succeeded | Failed | Expired),
            Pending => matches!(next, Succeeded | Failed | Expired),
            Succeeded => matches!(next, PartiallyRefunded | Refunded),
            PartiallyRefunded => matches!(next, PartiallyRefunded | Refunded),
            Failed | Expired | Refunded => false,
        };
        allowed && next.rank() >= self.rank()
    }
}

/// The parts of a payment the rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRules {
    /// ISO 4217 code.
    pub currency: String,
    /// What the payer owes, minor units.
    pub amount_minor: i64,
    /// Refunded so far, minor units.
    pub refunded_minor: i64,
    /// Where it is.
    pub state: PaymentState,
    /// When it expires, microseconds since the epoch.
    pub expires_at: i64,
}

/// What a channel reports about a payment (from a notification or a query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Paid this much in this currency.
    Paid {
        /// Minor units.
        amount_minor: i64,
        /// ISO 4217 code.
        currency: String,
    },
    /// The payer did not or could not pay.
    Declined,
    /// Still waiting.
    Waiting,
}

/// What a report does to a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Move to this state.
    Move(PaymentState),
    /// Nothing to do (a repeat, or still waiting).
    Unchanged,
}

/// Why a report or request is refused (recorded and counted, changes
/// nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The reported amount is not the payment's.
    #[error("reported amount {reported} is not the payment's {expected}")]
    AmountMismatch { reported: i64, expected: i64 },
    /// The reported currency is not the payment's.
    #[error("reported currency {reported} is not the payment's {expected}")]
    CurrencyMismatch { reported: String, expected: String },
    /// The report contradicts a final state (paid after failing, ...).
    #[error("payment is {0:?}; that report would move it backwards")]
    Backwards(PaymentState),
    /// A refund of a payment that was not paid.
    #[error("payment is {0:?}, not paid")]
    NotPaid(PaymentState),
    /// A refund that is not a positive amount.
    #[error("refund amount must be positive")]
    NonPositive,
    /// Refunds would exceed what was paid.
    #[error("refunds would reach {would_be}, more than the {paid} paid")]
    OverRefund { would_be: i64, paid: i64 },
    /// Cancelling a payment that is no longer open.
    #[error("payment is {0:?}; only an open payment can be cancelled")]
    NotOpen(PaymentState),
}

impl PaymentRules {
    /// What `report` does to this payment.
    pub fn apply(&self, report: &Report) -> Result<Outcome, Refusal> {
        match report {
            Report::Waiting => Ok(Outcome::Unchanged),
            Report::Paid {
                amount_minor,
                currency,
            } => {
                if currency != &self.currency {
                    return Err(Refusal::CurrencyMismatch {
                        reported: currency.clone(),
                        expected: self.currency.clone(),
                    });
                }
                if *amount_minor != self.amount_minor {
                    return Err(Refusal::AmountMismatch {
                        reported: *amount_minor,
                        expected: self.amount_minor,
                    });
                }
                if self.state.is_paid() {
                    Ok(Outcome::Unchanged)
                } else if self.state.is_open() {
                    Ok(Outcome::Move(PaymentState::Succeeded))
                } else {
                    Err(Refusal::Backwards(self.state))
                }
            }
            Report::Declined => match self.state {
                // "Not paid" agrees with a payment that failed, or expired
                // (or was cancelled and closed at the channel).
                PaymentState::Failed | PaymentState::Expired => Ok(Outcome::Unchanged),
                state if state.is_open() => Ok(Outcome::Move(PaymentState::Failed)),
                state => Err(Refusal::Backwards(state)),
            },
        }
    }

    /// Whether the payment has run out of time at `now` (microseconds).
    pub fn expired_at(&self, now: i64) -> bool {
        self.state.is_open() && now >= self.expires_at
    }

    /// Cancelling: only before it is paid (or failed).
    pub fn cancel(&self) -> Result<PaymentState, Refusal> {
        if self.state.is_open() {
            Ok(PaymentState::Expired)
        } else {
            Err(Refusal::NotOpen(self.state))
        }
    }

    /// Refunding `amount_minor`: the state after it, or why not.
    pub fn refund(&self, amount_minor: i64) -> Result<PaymentState, Refusal> {
        if !self.state.is_paid() {
            return Err(Refusal::NotPaid(self.state));
        }
        if amount_minor <= 0 {
            return Err(Refusal::NonPositive);
        }
        let would_be = self.refunded_minor.saturating_add(amount_minor);
        if would_be > self.amount_minor {
            return Err(Refusal::OverRefund {
                would_be,
                paid: self.amount_minor,
            });
        }
        Ok(if would_be == self.amount_minor {
            PaymentState::Refunded
        } else {
            PaymentState::PartiallyRefunded
        })
    }
}

// The entities, as the service keeps them.

/// Where the merchant's credit for a paid payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Nothing to settle.
    None,
    /// Paid, credit on its way.
    Pending,
    /// Credited.
    Settled,
    /// The ledger refused it.
    Failed,
}

impl Settlement {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Pending => "PENDING",
            Self::Settled => "SETTLED",
            Self::Failed => "FAILED",
        }
    }

    /// The value of a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::None, Self::Pending, Self::Settled, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Where a refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    /// Reserved; debit and channel refund in progress.
    Processing,
    /// Done.
    Succeeded,
    /// Refused; the amount is free again.
    Failed,
}

impl RefundState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "PROCESSING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    /// The value of a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Processing, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Id, also the order number at the channel.
    pub id: String,
    /// The request that created it.
    pub request_id: String,
    /// Credited when paid.
    pub merchant_account_id: String,
    /// The merchant's reference.
    pub merchant_order_ref: String,
    /// ISO 4217.
    pub currency: String,
    /// Minor units.
    pub amount_minor: i64,
    /// The channel.
    pub channel: Channel,
    /// Shown to the payer.
    pub description: String,
    /// Where it is.
    pub state: PaymentState,
    /// What the payer opens.
    pub pay_url: String,
    /// The channel's id.
    pub channel_trade_id: String,
    /// Why it failed.
    pub failure_reason: String,
    /// Refunded (succeeded refunds), minor units.
    pub refunded_minor: i64,
    /// Reserved by refunds in progress, minor units.
    pub refund_reserved_minor: i64,
    /// The merchant's credit.
    pub settlement: Settlement,
    /// The transfer that credited the merchant.
    pub settlement_transfer_id: String,
    /// The creating request's traceparent.
    pub traceparent: String,
    /// Microseconds.
    pub created_at: i64,
    /// Microseconds.
    pub updated_at: i64,
    /// Microseconds.
    pub expires_at: i64,
}

impl Payment {
    /// The parts the payment rules look at. Money reserved by refunds in
    /// progress counts as refunded, so that no new refund can take it.
    pub fn rules(&self) -> PaymentRules {
        PaymentRules {
            currency: self.currency.clone(),
            amount_minor: self.amount_minor,
            refunded_minor: self.refunded_minor + self.refund_reserved_minor,
            state: self.state,
            expires_at: self.expires_at,
        }
    }
}

/// A refund as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// Id, also the refund number at the channel.
    pub id: String,
    /// The payment.
    pub payment_id: String,
    /// The request that asked for it.
    pub request_id: String,
    /// Minor units.
    pub amount_minor: i64,
    /// Why.
    pub reason: String,
    /// Where it is.
    pub state: RefundState,
    /// Why it failed.
    pub failure_reason: String,
    /// Microseconds.
    pub created_at: i64,
    /// Microseconds.
    pub updated_at: i64,
}

/// A payment to create.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// Credited when paid.
    pub merchant_account_id: String,
    /// The merchant's reference.
    pub merchant_order_ref: String,
    /// ISO 4217.
    pub currency: String,
    /// Minor units.
    pub amount_minor: i64,
    /// The channel.
    pub channel: Channel,
    /// Shown to the payer.
    pub description: String,
    /// How long the payer has, microseconds.
    pub ttl_micros: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(state: PaymentState) -> PaymentRules {
        PaymentRules {
            currency: "CNY".into(),
            amount_minor: 10_000,
            refunded_minor: 0,
            state,
            expires_at: 1_000,
        }
    }

    fn paid(amount_minor: i64, currency: &str) -> Report {
        Report::Paid {
            amount_minor,
            currency: currency.into(),
        }
    }

    #[test]
    fn states_only_move_forward() {
        use PaymentState::*;
        let all = [
            Created,
            Pending,
            Succeeded,
            Failed,
            Expired,
            PartiallyRefunded,
            Refunded,
        ];
        for from in all {
            for to in all {
                if from.may_become(to) {
                    assert!(to.rank() >= from.rank(), "{from:?} → {to:?}");
                }
            }
        }
        assert!(Pending.may_become(Succeeded));
        assert!(!Succeeded.may_become(Failed));
        assert!(!Failed.may_become(Succeeded));
        assert!(!Refunded.may_become(PartiallyRefunded));
        assert!(!Expired.may_become(Pending));
    }

    #[test]
    fn reports_must_match_the_payment_and_repeat_harmlessly() {
        let pending = payment(PaymentState::Pending);
        assert_eq!(
            pending.apply(&paid(10_000, "CNY")),
            Ok(Outcome::Move(PaymentState::Succeeded))
        );
        assert_eq!(
            pending.apply(&paid(9_999, "CNY")),
            Err(Refusal::AmountMismatch {
                reported: 9_999,
                expected: 10_000
            })
        );
        assert!(matches!(
            pending.apply(&paid(10_000, "USD")),
            Err(Refusal::CurrencyMismatch { .. })
        ));
        assert_eq!(
            payment(PaymentState::Succeeded).apply(&paid(10_000, "CNY")),
            Ok(Outcome::Unchanged)
        );
        assert_eq!(
            payment(PaymentState::Expired).apply(&paid(10_000, "CNY")),
            Err(Refusal::Backwards(PaymentState::Expired))
        );
        assert_eq!(
            pending.apply(&Report::Declined),
            Ok(Outcome::Move(PaymentState::Failed))
        );
        assert_eq!(
            payment(PaymentState::Succeeded).apply(&Report::Declined),
            Err(Refusal::Backwards(PaymentState::Succeeded))
        );
        assert_eq!(pending.apply(&Report::Waiting), Ok(Outcome::Unchanged));
        assert_eq!(
            payment(PaymentState::Expired).apply(&Report::Declined),
            Ok(Outcome::Unchanged)
        );
    }

    #[test]
    fn refunds_never_exceed_what_was_paid() {
        let mut p = payment(PaymentState::Succeeded);
        assert_eq!(p.refund(4_000), Ok(PaymentState::PartiallyRefunded));
        p.refunded_minor = 4_000;
        p.state = PaymentState::PartiallyRefunded;
        assert_eq!(
            p.refund(6_001),
            Err(Refusal::OverRefund {
                would_be: 10_001,
                paid: 10_000
            })
        );
        assert_eq!(p.refund(6_000), Ok(PaymentState::Refunded));
        assert_eq!(p.refund(0), Err(Refusal::NonPositive));
        assert_eq!(
            payment(PaymentState::Pending).refund(1),
            Err(Refusal::NotPaid(PaymentState::Pending))
        );
    }

    #[test]
    fn only_open_payments_expire_or_cancel() {
        assert!(payment(PaymentState::Pending).expired_at(1_000));
        assert!(!payment(PaymentState::Pending).expired_at(999));
        assert!(!payment(PaymentState::Succeeded).expired_at(5_000));
        assert_eq!(
            payment(PaymentState::Created).cancel(),
            Ok(PaymentState::Expired)
        );
        assert_eq!(
            payment(PaymentState::Succeeded).cancel(),
            Err(Refusal::NotOpen(PaymentState::Succeeded))
        );
    }
}
