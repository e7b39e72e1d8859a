//! Accounts and the rules that govern them: pure, no transport or storage.

use std::fmt;

pub use meshwork_runtime::validate::{
    Checks, Currency, DEFAULT_PAGE_SIZE, MAX_AMOUNT_MINOR, MAX_ID_LEN, MAX_MEMO_LEN, MAX_PAGE_SIZE,
    MAX_REASON_LEN, new_id,
};

use crate::error::AccountError;

/// Largest absolute balance of any account, settlement included.
pub const MAX_BALANCE_MINOR: i64 = 1_000_000_000_000_000_000;
/// What an account is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountType {
    /// A customer's current account.
    Checking,
    /// A customer's savings account.
    Savings,
    /// A merchant's account.
    Merchant,
    /// The per-currency counter-account of deposits and withdrawals.
    Settlement,
}

impl AccountType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checking => "CHECKING",
            Self::Savings => "SAVINGS",
            Self::Merchant => "MERCHANT",
            Self::Settlement => "SETTLEMENT",
        }
    }

    /// From the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "CHECKING" => Self::Checking,
            "SAVINGS" => Self::Savings,
            "MERCHANT" => Self::Merchant,
            "SETTLEMENT" => Self::Settlement,
            _ => return None,
        })
    }
}

/// Where an account is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// Money moves.
    Active,
    /// No money moves.
    Frozen,
    /// Closed for good.
    Closed,
}

impl AccountState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Frozen => "FROZEN",
            Self::Closed => "CLOSED",
        }
    }

    /// From the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ACTIVE" => Self::Active,
            "FROZEN" => Self::Frozen,
            "CLOSED" => Self::Closed,
            _ => return None,
        })
    }
}

/// A 16-digit account number whose last digit is a Luhn check digit.
///
/// Its `Debug` and `Display` show it masked, so it cannot reach a log or a
/// span in full by accident; [`AccountNumber::expose`] is the one way out.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountNumber(String);

/// The issuer prefix of Meshwork account numbers.
const NUMBER_PREFIX: &str = "6222";
const NUMBER_LEN: usize = 16;

impl AccountNumber {
    /// A fresh random number with a valid check digit.
    pub fn generate() -> Self {
        let mut digits = String::with_capacity(NUMBER_LEN);
        digits.push_str(NUMBER_PREFIX);
        while digits.len() < NUMBER_LEN - 1 {
            digits.push(char::from(b'0' + fastrand::u8(0..10)));
        }
        digits.push(char::from(b'0' + luhn_check_digit(&digits)));
        Self(digits)
    }

    /// Validates length, digits and check digit.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.len() != NUMBER_LEN || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be 16 digits");
        }
        let (body, check) = text.split_at(NUMBER_LEN - 1);
        if luhn_check_digit(body) != check.as_bytes()[0] - b'0' {
            return Err("check digit does not match");
        }
        Ok(Self(text.to_owned()))
    }

    /// The number as stored; for the account's owner, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First four and last four digits: `6222********1234`.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountNumber({})", self.masked())
    }
}

impl fmt::Display for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Keeps the first and last four characters of a number, stars the rest.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// The Luhn check digit for `digits` (ASCII digits only).
pub fn luhn_check_digit(digits: &str) -> u8 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `acc_...`, or `stl_<CUR>` for settlement accounts.
    pub id: String,
    /// See [`AccountNumber`].
    pub number: AccountNumber,
    /// Who owns it.
    pub owner_id: String,
    /// Its only currency.
    pub currency: Currency,
    /// What it is for.
    pub account_type: AccountType,
    /// Where it is in its life.
    pub state: AccountState,
    /// Why it is frozen, or empty.
    pub freeze_reason: String,
    /// Balance in minor units.
    pub balance_minor: i64,
    /// Bumped by every change.
    pub version: i64,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Microseconds since the epoch.
    pub updated_at: i64,
}

impl Account {
    /// The resource name used in error details: `accounts/<id>`.
    pub fn resource(&self) -> String {
        format!("accounts/{}", self.id)
    }

    /// Whether `amount_minor` may be credited (deposited) in `currency`.
    pub fn check_credit(&self, currency: &Currency, amount_minor: i64) -> Result<(), AccountError> {
        self.check_movable(currency)?;
        if self.balance_minor > MAX_BALANCE_MINOR - amount_minor {
            return Err(AccountError::BalanceLimit {
                account_id: self.id.clone(),
            });
        }
        Ok(())
    }

    /// Whether `amount_minor` may be debited (withdrawn) in `currency`.
    pub fn check_debit(&self, currency: &Currency, amount_minor: i64) -> Result<(), AccountError> {
        self.check_movable(currency)?;
        if self.balance_minor < amount_minor {
            return Err(AccountError::InsufficientFunds {
                account_id: self.id.clone(),
            });
        }
        Ok(())
    }

    fn check_movable(&self, currency: &Currency) -> Result<(), AccountError> {
        if self.account_type == AccountType::Settlement {
            return Err(AccountError::SettlementAccount {
                account_id: self.id.clone(),
            });
        }
        match self.state {
            AccountState::Active => {}
            AccountState::Frozen => {
                return Err(AccountError::Frozen {
                    account_id: self.id.clone(),
                });
            }
            AccountState::Closed => {
                return Err(AccountError::Closed {
                    account_id: self.id.clone(),
                });
            }
        }
        if &self.currency != currency {
            return Err(AccountError::CurrencyMismatch {
                account_id: self.id.clone(),
                account_currency: self.currency.to_string(),
                requested: currency.to_string(),
            });
        }
        Ok(())
    }

    /// The account after a state change, or why the change is refused.
    pub fn transition(&self, change: &StateChange) -> Result<(AccountState, String), AccountError> {
        let id = || self.id.clone();
        if self.account_type == AccountType::Settlement {
            return Err(AccountError::SettlementAccount { account_id: id() });
        }
        match (change, self.state) {
            (_, AccountState::Closed) => Err(AccountError::Closed { account_id: id() }),
            (StateChange::Freeze { reason }, AccountState::Active) => {
                Ok((AccountState::Frozen, reason.clone()))
            }
            (StateChange::Freeze { .. }, AccountState::Frozen) => {
                Err(AccountError::AlreadyFrozen { account_id: id() })
            }
            (StateChange::Unfreeze { .. }, AccountState::Frozen) => {
                Ok((AccountState::Active, String::new()))
            }
            (StateChange::Unfreeze { .. }, AccountState::Active) => {
                Err(AccountError::NotFrozen { account_id: id() })
            }
            (StateChange::Close, _) if self.balance_minor != 0 => {
                Err(AccountError::BalanceNotZero { account_id: id() })
            }
            (StateChange::Close, AccountState::Frozen) => {
                Err(AccountError::Frozen { account_id: id() })
            }
            (StateChange::Close, AccountState::Active) => Ok((AccountState::Closed, String::new())),
        }
    }
}

/// A requested change of an account's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// Stop all money movement.
    Freeze {
        /// Why.
        reason: String,
    },
    /// Allow money movement again.
    Unfreeze {
        /// Why.
        reason: String,
    },
    /// Close for good (balance must be zero).
    Close,
}

impl StateChange {
    /// The operation name, for fingerprints and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Freeze { .. } => "freeze",
            Self::Unfreeze { .. } => "unfreeze",
            Self::Close => "close",
        }
    }

    /// Its reason, or empty.
    pub fn reason(&self) -> &str {
        match self {
            Self::Freeze { reason } | Self::Unfreeze { reason } => reason,
            Self::Close => "",
        }
    }
}

/// A validated request to open an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// Who owns it.
    pub owner_id: String,
    /// Its currency.
    pub currency: Currency,
    /// Checking, savings or merchant.
    pub account_type: AccountType,
}

/// Which way money moves between a customer account and settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// Settlement → account.
    Deposit,
    /// Account → settlement.
    Withdrawal,
}

impl Movement {
    /// The stored posting kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "DEPOSIT",
            Self::Withdrawal => "WITHDRAWAL",
        }
    }
}

/// A validated deposit or withdrawal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyMovement {
    /// Which way.
    pub movement: Movement,
    /// The customer account.
    pub account_id: String,
    /// The currency of the amount.
    pub currency: Currency,
    /// Positive, in minor units.
    pub amount_minor: i64,
    /// Caller's text.
    pub memo: String,
}

/// The id of the settlement account of `currency`.
pub fn settlement_account_id(currency: &Currency) -> String {
    format!("stl_{}", currency.as_str())
}

/// One money movement as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// `pst_...`.
    pub id: String,
    /// DEPOSIT, WITHDRAWAL, TRANSFER or REVERSAL.
    pub kind: String,
    /// The customer account (for a transfer, the one debited).
    pub account_id: String,
    /// For a transfer, the account credited; empty otherwise.
    pub counterparty_account_id: String,
    /// Currency of the amount.
    pub currency: Currency,
    /// Positive amount moved.
    pub amount_minor: i64,
    /// Caller's text.
    pub memo: String,
    /// The customer account's balance right after.
    pub balance_after_minor: i64,
    /// For a transfer, the credited account's balance right after; 0 otherwise.
    pub counterparty_balance_after_minor: i64,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// What a transfer posting is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// Customer to customer.
    Transfer,
    /// The compensation of an earlier transfer.
    Reversal,
}

impl TransferKind {
    /// The stored posting kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "TRANSFER",
            Self::Reversal => "REVERSAL",
        }
    }
}

/// A validated transfer between two customer accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPosting {
    /// The owning transfer's id: the posting's idempotency key.
    pub transfer_id: String,
    /// Transfer or reversal.
    pub kind: TransferKind,
    /// Debited.
    pub from_account_id: String,
    /// Credited; never the same as `from_account_id`.
    pub to_account_id: String,
    /// Currency of the amount and of both accounts.
    pub currency: Currency,
    /// Positive, in minor units.
    pub amount_minor: i64,
    /// Caller's text.
    pub memo: String,
}

impl TransferPosting {
    /// The two accounts in the order their rows are locked: by id, the same
    /// order for every posting, so that two transfers in opposite directions
    /// never wait on each other crosswise (no deadlock).
    pub fn lock_order(&self) -> [(&str, i64); 2] {
        let debit = (self.from_account_id.as_str(), -self.amount_minor);
        let credit = (self.to_account_id.as_str(), self.amount_minor);
        if self.from_account_id <= self.to_account_id {
            [debit, credit]
        } else {
            [credit, debit]
        }
    }
}

/// One signed line of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// `ent_...`.
    pub id: String,
    /// Its posting.
    pub posting_id: String,
    /// The account it is on.
    pub account_id: String,
    /// Currency.
    pub currency: Currency,
    /// Signed: credit positive, debit negative.
    pub amount_minor: i64,
    /// The posting's kind.
    pub kind: String,
    /// The account's balance right after this entry.
    pub balance_after_minor: i64,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// A balance and the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// The account.
    pub account_id: String,
    /// Its currency.
    pub currency: Currency,
    /// Minor units.
    pub balance_minor: i64,
    /// The account's version.
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_legs_lock_in_id_order_whatever_the_direction() {
        let mut posting = TransferPosting {
            transfer_id: "trf_1".into(),
            kind: TransferKind::Transfer,
            from_account_id: "acc_b".into(),
            to_account_id: "acc_a".into(),
            currency: Currency::parse("EUR").unwrap(),
            amount_minor: 5,
            memo: String::new(),
        };
        assert_eq!(posting.lock_order(), [("acc_a", 5), ("acc_b", -5)]);
        std::mem::swap(&mut posting.from_account_id, &mut posting.to_account_id);
        assert_eq!(posting.lock_order(), [("acc_a", -5), ("acc_b", 5)]);
    }

    fn account(state: AccountState, balance_minor: i64) -> Account {
        Account {
            id: "acc_1".into(),
            number: AccountNumber::generate(),
            owner_id: "alice".into(),
            currency: Currency::parse("EUR").unwrap(),
            account_type: AccountType::Checking,
            state,
            freeze_reason: String::new(),
            balance_minor,
            version: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn generated_numbers_pass_their_own_check() {
        for _ in 0..1000 {
            let number = AccountNumber::generate();
            assert_eq!(AccountNumber::parse(number.expose()).unwrap(), number);
            assert!(number.expose().starts_with("6222"));
        }
    }

    #[test]
    fn luhn_matches_known_numbers_and_catches_typos() {
        // 4111 1111 1111 1111 is the classic valid test card number.
        assert_eq!(luhn_check_digit("411111111111111"), 1);
        assert_eq!(luhn_check_digit("7992739871"), 3);
        assert!(AccountNumber::parse("4111111111111111").is_ok());
        assert_eq!(
            AccountNumber::parse("4111111111111112"),
            Err("check digit does not match")
        );
        assert_eq!(
            AccountNumber::parse("41111111111111"),
            Err("must be 16 digits")
        );
        assert_eq!(
            AccountNumber::parse("411111111111111x"),
            Err("must be 16 digits")
        );
        // Every single-digit typo is caught.
        let number = AccountNumber::generate();
        let digits = number.expose().as_bytes();
        for i in 0..digits.len() {
            let mut typo = digits.to_vec();
            typo[i] = b'0' + (typo[i] - b'0' + 1) % 10;
            assert!(AccountNumber::parse(std::str::from_utf8(&typo).unwrap()).is_err());
        }
    }

    #[test]
    fn numbers_are_masked_in_debug_display_and_mask() {
        let number = AccountNumber::parse("6222123456781234").unwrap_or_else(|_| {
            let body = "622212345678123";
            AccountNumber::parse(&format!("{body}{}", luhn_check_digit(body))).unwrap()
        });
        let shown = format!("{number} {number:?} {}", number.masked());
        assert!(!shown.contains(number.expose()), "{shown}");
        assert!(number.masked().starts_with("6222********"));
        assert_eq!(mask("1234"), "****");
    }

    #[test]
    fn debits_need_an_active_account_in_the_currency_with_funds() {
        assert!(
            account(AccountState::Active, 100)
                .check_debit(&eur(), 100)
                .is_ok()
        );
        assert!(matches!(
            account(AccountState::Active, 99).check_debit(&eur(), 100),
            Err(AccountError::InsufficientFunds { .. })
        ));
        assert!(matches!(
            account(AccountState::Frozen, 100).check_debit(&eur(), 1),
            Err(AccountError::Frozen { .. })
        ));
        assert!(matches!(
            account(AccountState::Closed, 0).check_credit(&eur(), 1),
            Err(AccountError::Closed { .. })
        ));
        assert!(matches!(
            account(AccountState::Active, 100).check_credit(&Currency::parse("USD").unwrap(), 1),
            Err(AccountError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn balances_stay_inside_the_limit() {
        let nearly_full = account(AccountState::Active, MAX_BALANCE_MINOR - 10);
        assert!(nearly_full.check_credit(&eur(), 10).is_ok());
        assert!(matches!(
            nearly_full.check_credit(&eur(), 11),
            Err(AccountError::BalanceLimit { .. })
        ));
        // A single movement is at most MAX_AMOUNT_MINOR (the contract's
        // bound), so a thousand of them cannot pass the balance limit.
        assert!(
            MAX_AMOUNT_MINOR
                .checked_mul(1000)
                .is_some_and(|m| m <= MAX_BALANCE_MINOR)
        );
    }

    #[test]
    fn state_machine_allows_only_forward_sensible_moves() {
        let freeze = StateChange::Freeze {
            reason: "fraud check".into(),
        };
        let unfreeze = StateChange::Unfreeze {
            reason: "cleared".into(),
        };
        assert_eq!(
            account(AccountState::Active, 0)
                .transition(&freeze)
                .unwrap()
                .0,
            AccountState::Frozen
        );
        assert!(matches!(
            account(AccountState::Frozen, 0).transition(&freeze),
            Err(AccountError::AlreadyFrozen { .. })
        ));
        assert_eq!(
            account(AccountState::Frozen, 0)
                .transition(&unfreeze)
                .unwrap()
                .0,
            AccountState::Active
        );
        assert!(matches!(
            account(AccountState::Active, 0).transition(&unfreeze),
            Err(AccountError::NotFrozen { .. })
        ));
        assert_eq!(
            account(AccountState::Active, 0)
                .transition(&StateChange::Close)
                .unwrap()
                .0,
            AccountState::Closed
        );
        assert!(matches!(
            account(AccountState::Active, 1).transition(&StateChange::Close),
            Err(AccountError::BalanceNotZero { .. })
        ));
        assert!(matches!(
            account(AccountState::Closed, 0).transition(&freeze),
            Err(AccountError::Closed { .. })
        ));
    }
}
