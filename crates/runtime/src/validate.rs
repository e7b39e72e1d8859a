//! Request validation shared by every service: one [`Checks`] collector
//! that gathers every field violation of a request (clients fix all at
//! once), the common limits, and value types every contract uses.
//!
//! A failed check becomes INVALID_ARGUMENT with `google.rpc.BadRequest`
//! field violations, through [`Invalid`].

use std::fmt;

use crate::errors::{self, Violation};

/// Longest accepted id, owner id or request id.
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted freeze/unfreeze reason.
pub const MAX_REASON_LEN: usize = 512;
/// Longest accepted memo.
pub const MAX_MEMO_LEN: usize = 256;
/// Largest amount of one movement of money (10^15 minor units): far above
/// any real movement, far enough below `i64::MAX` that no sum overflows.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;
/// Default and largest page sizes.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// See [`DEFAULT_PAGE_SIZE`].
pub const MAX_PAGE_SIZE: usize = 500;

/// An ISO 4217 alphabetic currency code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    /// Three upper-case ASCII letters.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()))
            .then(|| Self(text.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new id with a type prefix; UUIDv7, so ids sort by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The violations of a request that failed its checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request")]
pub struct Invalid(pub Vec<Violation>);

impl From<Invalid> for tonic::Status {
    fn from(invalid: Invalid) -> Self {
        errors::invalid_argument(&invalid.0)
    }
}

/// Collects field violations of a request.
#[derive(Debug, Default)]
pub struct Checks(Vec<Violation>);

impl Checks {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a violation of `field`.
    pub fn fail(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(Violation::new(field, description));
    }

    /// A required id-like string of at most [`MAX_ID_LEN`] characters.
    pub fn id(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(field, "is required");
        } else if value.len() > MAX_ID_LEN {
            self.fail(field, format!("must be at most {MAX_ID_LEN} characters"));
        } else if value.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        }
    }

    /// A required free text of at most `max` characters. Line breaks and
    /// tabs are text; other control characters are not (PostgreSQL refuses
    /// NUL in text, and none of them belongs in a memo).
    pub fn text(&mut self, field: &str, value: &str, required: bool, max: usize) {
        if required && value.trim().is_empty() {
            self.fail(field, "is required");
        } else if value.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
        } else if value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            self.fail(
                field,
                "must not contain control characters other than line breaks and tabs",
            );
        }
    }

    /// A currency code; `None` when invalid (and recorded).
    pub fn currency(&mut self, field: &str, value: &str) -> Option<Currency> {
        let currency = Currency::parse(value);
        if currency.is_none() {
            self.fail(
                field,
                "must be an ISO 4217 code of three upper-case letters, e.g. EUR",
            );
        }
        currency
    }

    /// A strictly positive amount no larger than [`MAX_AMOUNT_MINOR`].
    pub fn positive_amount(&mut self, field: &str, amount_minor: i64) {
        if amount_minor <= 0 {
            self.fail(
                field,
                "must be greater than zero (minor units, e.g. 1050 for 10.50)",
            );
        } else if amount_minor > MAX_AMOUNT_MINOR {
            self.fail(field, format!("must be at most {MAX_AMOUNT_MINOR}"));
        }
    }

    /// A required positive amount of money (`Money { currency, amount_minor }`,
    /// violations named `field.currency` / `field.amount_minor`): the
    /// currency and the amount when valid.
    pub fn money(
        &mut self,
        field: &str,
        money: Option<&meshwork_proto::meshwork::r#type::v1::Money>,
    ) -> Option<(Currency, i64)> {
        let Some(money) = money else {
            self.fail(field, "is required");
            return None;
        };
        let before = self.0.len();
        self.positive_amount(&format!("{field}.amount_minor"), money.amount_minor);
        let currency = self.currency(&format!("{field}.currency"), &money.currency);
        match (currency, self.0.len() == before) {
            (Some(currency), true) => Some((currency, money.amount_minor)),
            _ => None,
        }
    }

    /// A period `[start, end)` as microseconds: both bounds required or
    /// optional, and the end not before the start (violation on
    /// `end_field`).
    pub fn period(
        &mut self,
        (start_field, start): (&str, Option<&prost_types::Timestamp>),
        (end_field, end): (&str, Option<&prost_types::Timestamp>),
        required: bool,
    ) -> (Option<i64>, Option<i64>) {
        let start = self.timestamp(start_field, start);
        let end = self.timestamp(end_field, end);
        if required {
            if start.is_none() {
                self.fail(start_field, "is required");
            }
            if end.is_none() {
                self.fail(end_field, "is required");
            }
        }
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            self.fail(end_field, format!("must not be before {start_field}"));
        }
        (start, end)
    }

    /// A timestamp in protobuf's valid range (years 1 to 9999, nanos below
    /// a second), as microseconds; `None` when absent or out of range
    /// (recorded). Out-of-range values would otherwise saturate and sort
    /// after everything.
    pub fn timestamp(&mut self, field: &str, at: Option<&prost_types::Timestamp>) -> Option<i64> {
        const MIN_SECONDS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
        const MAX_SECONDS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        let at = at?;
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&at.seconds)
            || !(0..1_000_000_000).contains(&at.nanos)
        {
            self.fail(field, "must be a time between years 1 and 9999");
            return None;
        }
        Some(crate::time::from_timestamp(at))
    }

    /// A page size: 0 means the default; negative or over the maximum is refused.
    pub fn page_size(&mut self, field: &str, value: i32) -> usize {
        match usize::try_from(value) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) if n <= MAX_PAGE_SIZE => n,
            _ => {
                self.fail(field, format!("must be between 0 and {MAX_PAGE_SIZE}"));
                DEFAULT_PAGE_SIZE
            }
        }
    }

    /// A page token: empty, or an id with `prefix` from a previous page.
    pub fn page_token(&mut self, field: &str, value: &str, prefix: &str) -> Option<String> {
        if value.is_empty() {
            return None;
        }
        if !value.starts_with(prefix) || value.len() > MAX_ID_LEN {
            self.fail(field, "is not a token returned by this method");
            return None;
        }
        Some(value.to_owned())
    }

    /// Ok when nothing failed, otherwise every violation at once.
    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }
}

/// Cuts rows fetched with one extra (`page_size + 1`) to `page_size`; the
/// next page token is the last row's key when there was more.
pub fn next_page_token<T>(
    rows: &mut Vec<T>,
    page_size: usize,
    key: impl Fn(&T) -> String,
) -> String {
    if rows.len() > page_size {
        rows.truncate(page_size);
        rows.last().map(key).unwrap_or_default()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_periods_and_pages() {
        use meshwork_proto::meshwork::r#type::v1::Money;
        let mut checks = Checks::new();
        let eur = Money {
            currency: "EUR".into(),
            amount_minor: 5,
        };
        assert_eq!(checks.money("amount", Some(&eur)).map(|m| m.1), Some(5));
        let bad = Money {
            currency: "eur".into(),
            amount_minor: 0,
        };
        assert_eq!(checks.money("amount", Some(&bad)), None);
        assert_eq!(checks.money("fee", None), None);
        let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        assert_eq!(
            checks.period(("from", Some(&at(2))), ("to", Some(&at(1))), false),
            (Some(2_000_000), Some(1_000_000))
        );
        assert_eq!(
            checks.period(("from", None), ("to", None), false),
            (None, None)
        );
        let far = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(checks.timestamp("when", Some(&far)), None);
        let Err(Invalid(violations)) = checks.finish() else {
            panic!("expected violations")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "amount.amount_minor",
                "amount.currency",
                "fee",
                "to",
                "when"
            ]
        );

        let mut rows = vec![1, 2, 3];
        assert_eq!(next_page_token(&mut rows, 2, |r| r.to_string()), "2");
        assert_eq!(rows, [1, 2]);
        assert_eq!(next_page_token(&mut rows, 2, |r| r.to_string()), "");
    }

    #[test]
    fn free_text_keeps_line_breaks_and_refuses_other_controls() {
        let mut checks = Checks::new();
        checks.text("memo", "two\nlines\tand a tab", false, 64);
        assert!(checks.finish().is_ok());
        let mut checks = Checks::new();
        checks.text("memo", "nul\0inside", false, 64);
        checks.text("reason", "bell\u{7}", true, 64);
        let Err(Invalid(violations)) = checks.finish() else {
            panic!("expected violations")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["memo", "reason"]);
    }

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_some());
        for bad in ["eur", "EURO", "EU", "", "E1R"] {
            assert!(Currency::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn checks_collect_every_violation() {
        let mut checks = Checks::new();
        checks.id("owner_id", "");
        checks.currency("currency", "euro");
        checks.positive_amount("amount.amount_minor", 0);
        checks.positive_amount("other", MAX_AMOUNT_MINOR + 1);
        assert_eq!(checks.page_size("page_size", 501), DEFAULT_PAGE_SIZE);
        let Err(Invalid(violations)) = checks.finish() else {
            panic!("expected violations")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "owner_id",
                "currency",
                "amount.amount_minor",
                "other",
                "page_size"
            ]
        );
        assert!(Checks::new().finish().is_ok());
    }
}
