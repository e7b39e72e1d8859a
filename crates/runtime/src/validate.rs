//! What is left of request validation in Rust. A request's stateless rules
//! live in its contract (`buf.validate` annotations in `proto/`) and are
//! checked by the server's codec before a handler runs
//! ([`meshwork_proto::validate`]); handlers keep only what a contract
//! cannot say (a field compared with another, a time in range) in one
//! [`Checks`] collector, so that clients still get every violation at once,
//! and convert the checked values into domain types with the functions
//! here.
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

impl Invalid {
    /// One violation of `field`.
    pub fn field(field: &str, description: impl Into<String>) -> Self {
        Self(vec![Violation::new(field, description)])
    }
}

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

    /// `value` by the contract's rules of `field` in the request `M`,
    /// named `path`: where a shared message cannot state a rule that one
    /// method needs (UpdateRule's `rule.rule_id` is an id like
    /// EnableRule's `rule_id`), the rule is the contract's, not a copy.
    pub fn as_field_of<M: prost::Name>(&mut self, path: &str, field: &str, value: &str) {
        self.0
            .extend(meshwork_proto::validate::contracts().check_as(
                &M::full_name(),
                field,
                value,
                path,
            ));
    }

    /// The contract's rules of `message`, its violations named under
    /// `prefix`: for a message that no server's codec checked (one read
    /// from an event log, a nested message handed on).
    pub fn contract<M: prost::Message + prost::Name>(&mut self, prefix: &str, message: &M) {
        for mut violation in meshwork_proto::validate::contracts().check_typed(message) {
            violation.field = format!("{prefix}.{}", violation.field);
            self.0.push(violation);
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

    /// Ok when nothing failed, otherwise every violation at once.
    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }
}

// Conversions of values the contract's rules have checked: they cannot
// fail for a request that reached a handler through the server, and answer
// `Invalid` rather than panic when called with an unchecked one.

/// A required field's value.
pub fn required<T>(field: &str, value: Option<T>) -> Result<T, Invalid> {
    value.ok_or_else(|| Invalid::field(field, "is required"))
}

/// A currency field (`^[A-Z]{3}$` in the contract).
pub fn currency(field: &str, value: &str) -> Result<Currency, Invalid> {
    Currency::parse(value).ok_or_else(|| {
        Invalid::field(
            field,
            "must be an ISO 4217 code of three upper-case letters, e.g. EUR",
        )
    })
}

/// A required amount to move (`meshwork.type.v1.PositiveMoney`): its
/// currency and its amount in minor units.
pub fn amount(
    field: &str,
    money: Option<&meshwork_proto::meshwork::r#type::v1::PositiveMoney>,
) -> Result<(Currency, i64), Invalid> {
    let money = required(field, money)?;
    let currency = currency(&format!("{field}.currency"), &money.currency)?;
    if !(1..=MAX_AMOUNT_MINOR).contains(&money.amount_minor) {
        return Err(Invalid::field(
            &format!("{field}.amount_minor"),
            format!("must be greater than 0 and at most {MAX_AMOUNT_MINOR}"),
        ));
    }
    Ok((currency, money.amount_minor))
}

/// A page size (0 to [`MAX_PAGE_SIZE`] in the contract): 0 means
/// [`DEFAULT_PAGE_SIZE`].
pub fn page_size(value: i32) -> usize {
    match usize::try_from(value) {
        Ok(0) | Err(_) => DEFAULT_PAGE_SIZE,
        Ok(n) => n.min(MAX_PAGE_SIZE),
    }
}

/// A page token: `None` when empty (the first page).
pub fn page_token(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
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
    use meshwork_proto::meshwork::r#type::v1::PositiveMoney;

    #[test]
    fn amounts_periods_and_pages() {
        let eur = PositiveMoney {
            currency: "EUR".into(),
            amount_minor: 5,
        };
        assert_eq!(amount("amount", Some(&eur)).map(|m| m.1), Ok(5));
        let bad = PositiveMoney {
            currency: "eur".into(),
            amount_minor: 5,
        };
        assert_eq!(
            amount("amount", Some(&bad)).unwrap_err().0[0].field,
            "amount.currency"
        );
        let zero = PositiveMoney {
            currency: "EUR".into(),
            amount_minor: 0,
        };
        assert_eq!(
            amount("amount", Some(&zero)).unwrap_err().0[0].field,
            "amount.amount_minor"
        );
        assert_eq!(amount("fee", None).unwrap_err().0[0].field, "fee");

        let mut checks = Checks::new();
        let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        assert_eq!(
            checks.period(("from", Some(&at(2))), ("to", Some(&at(1))), false),
            (Some(2_000_000), Some(1_000_000))
        );
        assert_eq!(
            checks.period(("from", None), ("to", None), false),
            (None, None)
        );
        checks.period(("since", None), ("until", None), true);
        let far = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(checks.timestamp("when", Some(&far)), None);
        checks.fail("other", "is wrong");
        let Err(Invalid(violations)) = checks.finish() else {
            panic!("expected violations")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["to", "since", "until", "when", "other"]);
        assert!(Checks::new().finish().is_ok());

        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(-1), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(10_000), MAX_PAGE_SIZE);
        assert_eq!(page_token(""), None);
        assert_eq!(page_token("acc_1").as_deref(), Some("acc_1"));

        let mut rows = vec![1, 2, 3];
        assert_eq!(next_page_token(&mut rows, 2, |r| r.to_string()), "2");
        assert_eq!(rows, [1, 2]);
        assert_eq!(next_page_token(&mut rows, 2, |r| r.to_string()), "");
    }

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_some());
        for bad in ["eur", "EURO", "EU", "", "E1R"] {
            assert!(Currency::parse(bad).is_none(), "{bad}");
            assert!(currency("currency", bad).is_err());
        }
    }

    #[test]
    fn a_value_meets_another_fields_rules() {
        use meshwork_proto::meshwork::finance::risk::v1::EnableRuleRequest;
        let mut checks = Checks::new();
        checks.as_field_of::<EnableRuleRequest>("rule.rule_id", "rule_id", "rul_1");
        assert!(checks.finish().is_ok());
        for bad in ["", "has space", "nul\0", &"x".repeat(129)] {
            let mut checks = Checks::new();
            checks.as_field_of::<EnableRuleRequest>("rule.rule_id", "rule_id", bad);
            let Err(Invalid(violations)) = checks.finish() else {
                panic!("{bad:?} passed")
            };
            assert_eq!(violations[0].field, "rule.rule_id", "{bad:?}");
        }
    }

    /// The contract's rules and these constants say the same thing.
    #[test]
    fn the_contract_states_the_limits() {
        let validator = meshwork_proto::validate::contracts();
        let money = validator.plan("meshwork.type.v1.PositiveMoney").unwrap();
        let amount = money.field("amount_minor").unwrap();
        let meshwork_proto::validate::rules::Shape::Single(item) = &amount.shape else {
            panic!("a single field")
        };
        let meshwork_proto::validate::rules::ValueRules::Integer(rules) = &item.rules else {
            panic!("integer rules")
        };
        assert_eq!(
            rules.upper,
            Some(meshwork_proto::validate::rules::Bound::Inclusive(
                i128::from(MAX_AMOUNT_MINOR)
            ))
        );
    }
}
