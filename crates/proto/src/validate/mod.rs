//! Request validation from the contracts: the `buf.validate` rules declared
//! in `proto/` are evaluated for every request a server decodes (see
//! [`codec`]), so that no handler sees a request its contract calls invalid
//! and every violation comes back at once as `google.rpc.BadRequest`.
//!
//! The rules are protovalidate's standard ones ([`rules`] lists what is
//! evaluated); the same plans feed the REST edge's OpenAPI document.

#![warn(missing_docs)]

pub mod codec;
pub mod rules;

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, ReflectMessage as _, Value};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use rules::{Bound, FieldPlan, Ignore, ItemRules, MessagePlan, NumberRules, Shape, ValueRules};

/// The `ErrorInfo.domain` of every Meshwork error.
pub const ERROR_DOMAIN: &str = "meshwork.dev";

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field in the request, e.g. `amount.amount_minor`,
    /// `account_ids[2]`.
    pub field: String,
    /// What is wrong with it, for the developer calling the API.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// INVALID_ARGUMENT with every violation as a `google.rpc.BadRequest` field
/// violation, and `ErrorInfo` reason `INVALID_ARGUMENT`.
pub fn invalid_argument(violations: &[Violation]) -> Status {
    let message = match violations {
        [one] => format!("invalid {}: {}", clip(&one.field), clip(&one.description)),
        many if many.len() > MAX_VIOLATIONS => format!(
            "{} invalid fields (the first {MAX_VIOLATIONS} are listed)",
            many.len()
        ),
        many => format!("{} invalid fields", many.len()),
    };
    // The details travel in a header, which HTTP/2 bounds: a thousand bad
    // items of a batch must not turn a refusal into a protocol error.
    let mut details = ErrorDetails::with_bad_request(
        violations
            .iter()
            .take(MAX_VIOLATIONS)
            .map(|v| Violation::new(&clip(&v.field), clip(&v.description)))
            .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
            .collect::<Vec<_>>(),
    );
    details.set_error_info("INVALID_ARGUMENT", ERROR_DOMAIN, []);
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// At most this many characters of a field path or description in a
/// status (a map key from the request is part of its path).
const MAX_TEXT: usize = 200;

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Field violations listed in one status at most.
pub const MAX_VIOLATIONS: usize = 50;

/// The compiled rules of a descriptor pool.
#[derive(Debug)]
pub struct Validator {
    plans: HashMap<String, MessagePlan>,
    /// Messages that some RPC takes as its request.
    inputs: HashSet<String>,
}

/// The validator of every Meshwork contract.
///
/// # Panics
/// When a contract declares a rule the evaluator does not implement; the
/// crate's tests compile every contract, so such a contract cannot land.
pub fn contracts() -> &'static Validator {
    static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
        let pool = DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
            .expect("the contracts' descriptor set decodes");
        Validator::new(&pool).unwrap_or_else(|errors| {
            panic!(
                "contract rules that cannot be evaluated: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
    });
    &VALIDATOR
}

impl Validator {
    /// Compiles the rules of every message in `pool`.
    pub fn new(pool: &DescriptorPool) -> Result<Self, Vec<rules::RuleError>> {
        let plans = rules::compile(pool)?;
        let inputs = pool
            .services()
            .flat_map(|s| {
                s.methods()
                    .map(|m| m.input().full_name().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Self { plans, inputs })
    }

    /// The rules of `message` (a full name), when it or a message it holds
    /// has any.
    pub fn plan(&self, message: &str) -> Option<&MessagePlan> {
        self.plans.get(message)
    }

    /// The plan of a request message, when it has rules: responses are not
    /// checked (a client decoding an answer finds no plan here).
    pub fn request_plan(&self, message: &str) -> Option<&MessagePlan> {
        if self.inputs.contains(message) {
            self.plans.get(message)
        } else {
            None
        }
    }

    /// Whether a field must hold a value other than its zero value for its
    /// message to pass: `required`, or rules its zero value breaks (an id's
    /// `min_len`, an enum's `not_in: [0]`, a list's `min_items`). The
    /// OpenAPI document lists such fields as `required`.
    pub fn needs_value(&self, plan: &FieldPlan) -> bool {
        if plan.ignore == Ignore::Always {
            return false;
        }
        if plan.required {
            return true;
        }
        if plan.ignore != Ignore::Default || plan.field.supports_presence() {
            return false;
        }
        match &plan.shape {
            Shape::List { min_items, .. } => min_items.is_some_and(|m| m > 0),
            Shape::Map { min_pairs, .. } => min_pairs.is_some_and(|m| m > 0),
            Shape::Single(item) => {
                let zero = Value::default_value_for_field(&plan.field);
                let mut out = Vec::new();
                self.item(item, &zero, "", &mut out);
                !out.is_empty()
            }
        }
    }

    /// Every violation of `message`'s rules, in field order.
    pub fn check(&self, message: &DynamicMessage) -> Vec<Violation> {
        let mut out = Vec::new();
        if let Some(plan) = self.plans.get(message.descriptor().full_name()) {
            self.message(plan, message, "", &mut out);
        }
        out
    }

    /// The violations of the string `value` by the rules of `field` of `message` (a
    /// full name), named `path`: for a value that must meet a field's rules
    /// where its own message cannot state them (a field of a shared
    /// message that one method requires). No rules, no violations.
    pub fn check_as(&self, message: &str, field: &str, value: &str, path: &str) -> Vec<Violation> {
        let Some(plan) = self.plans.get(message) else {
            return Vec::new();
        };
        let Some(field_plan) = plan.field(field) else {
            return Vec::new();
        };
        let mut holder = DynamicMessage::new(plan.descriptor.clone());
        if holder
            .try_set_field(&field_plan.field, Value::String(value.to_owned()))
            .is_err()
        {
            return vec![Violation::new(
                path,
                format!("is not a {}", field_plan.field.name()),
            )];
        }
        let mut out = Vec::new();
        self.field(field_plan, &holder, "", &mut out);
        for violation in &mut out {
            violation.field = violation.field.replacen(field, path, 1);
        }
        out
    }

    /// Checks a typed message (in tests and in-process calls).
    pub fn check_typed<M: prost::Message + prost::Name>(&self, message: &M) -> Vec<Violation> {
        let Some(plan) = self.plans.get(&M::full_name()) else {
            return Vec::new();
        };
        let Ok(dynamic) =
            DynamicMessage::decode(plan.descriptor.clone(), message.encode_to_vec().as_slice())
        else {
            return vec![Violation::new("", "does not match its contract")];
        };
        let mut out = Vec::new();
        self.message(plan, &dynamic, "", &mut out);
        out
    }

    fn message(
        &self,
        plan: &MessagePlan,
        message: &DynamicMessage,
        prefix: &str,
        out: &mut Vec<Violation>,
    ) {
        for field in &plan.fields {
            self.field(field, message, prefix, out);
        }
        for oneof in &plan.required_oneofs {
            if !oneof.fields.iter().any(|f| message.has_field(f)) {
                let names: Vec<&str> = oneof.fields.iter().map(|f| f.name()).collect();
                out.push(Violation::new(
                    path(prefix, &oneof.name),
                    format!("is required: set one of {}", names.join(", ")),
                ));
            }
        }
    }

    fn field(
        &self,
        plan: &FieldPlan,
        message: &DynamicMessage,
        prefix: &str,
        out: &mut Vec<Violation>,
    ) {
        let name = path(prefix, plan.field.name());
        if plan.ignore == Ignore::Always {
            return;
        }
        let set = message.has_field(&plan.field);
        if !set {
            if plan.required {
                out.push(Violation::new(name, "is required"));
                return;
            }
            // Unset: a field with presence has nothing to check; an
            // optional filter's zero value neither. A proto3 scalar's zero
            // value is checked like any value (min_len 1 refuses "").
            // (Lists and maps have no presence: an empty one meets
            // `min_items`' check below.)
            if plan.ignore == Ignore::IfZero || plan.field.supports_presence() {
                return;
            }
        }
        let value = message.get_field(&plan.field);
        match (&plan.shape, value.as_ref()) {
            (Shape::Single(item), value) => self.item(item, value, &name, out),
            (
                Shape::List {
                    min_items,
                    max_items,
                    unique,
                    items,
                },
                Value::List(values),
            ) => {
                let n = values.len() as u64;
                if let Some(min) = *min_items
                    && n < min
                {
                    out.push(Violation::new(
                        &name,
                        if min == 1 {
                            "is required: give at least one item".to_owned()
                        } else {
                            format!("must have at least {min} items")
                        },
                    ));
                }
                if let Some(max) = *max_items
                    && n > max
                {
                    out.push(Violation::new(
                        &name,
                        format!("must have at most {max} items"),
                    ));
                }
                if *unique && has_duplicates(values) {
                    out.push(Violation::new(&name, "must not repeat an item"));
                }
                for (i, value) in values.iter().enumerate() {
                    self.item(items, value, &format!("{name}[{i}]"), out);
                }
            }
            (
                Shape::Map {
                    min_pairs,
                    max_pairs,
                    keys,
                    values,
                },
                Value::Map(map),
            ) => {
                let n = map.len() as u64;
                if let Some(min) = *min_pairs
                    && n < min
                {
                    out.push(Violation::new(
                        &name,
                        format!("must have at least {min} entries"),
                    ));
                }
                if let Some(max) = *max_pairs
                    && n > max
                {
                    out.push(Violation::new(
                        &name,
                        format!("must have at most {max} entries"),
                    ));
                }
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (key, value) in entries {
                    let at = format!("{name}[{}]", key_text(key));
                    self.item(keys, &map_key_value(key), &format!("{at} (key)"), out);
                    self.item(values, value, &at, out);
                }
            }
            _ => {}
        }
    }

    fn item(&self, item: &ItemRules, value: &Value, name: &str, out: &mut Vec<Violation>) {
        match (&item.rules, value) {
            (ValueRules::None, _) => {}
            (ValueRules::String(rules), Value::String(s)) => string(rules, s, name, out),
            (ValueRules::Integer(rules), value) => {
                if let Some(n) = integer(value) {
                    number(rules, n, name, out);
                }
            }
            (ValueRules::Duration(rules), Value::Message(d)) => {
                let part = |name: &str| d.get_field_by_name(name).and_then(|v| integer(&v));
                let seconds =
                    part("seconds").unwrap_or(0) as f64 + part("nanos").unwrap_or(0) as f64 / 1e9;
                let before = out.len();
                number(rules, seconds, name, out);
                for violation in &mut out[before..] {
                    violation.description.push_str(" seconds");
                }
            }
            (ValueRules::Float(rules), Value::F64(n)) => number(rules, *n, name, out),
            (ValueRules::Float(rules), Value::F32(n)) => number(rules, f64::from(*n), name, out),
            (ValueRules::Bool(Some(want)), Value::Bool(b)) if b != want => {
                out.push(Violation::new(name, format!("must be {want}")));
            }
            (ValueRules::Enum(rules), Value::EnumNumber(n)) => {
                if !rules.accepts(*n) {
                    out.push(Violation::new(
                        name,
                        format!("must be one of {}", rules.accepted_names().join(", ")),
                    ));
                }
            }
            _ => {}
        }
        if let (Some(nested), Value::Message(message)) = (&item.nested, value)
            && let Some(plan) = self.plans.get(nested)
        {
            self.message(plan, message, name, out);
        }
    }
}

fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn integer(value: &Value) -> Option<i128> {
    Some(match value {
        Value::I32(n) => i128::from(*n),
        Value::I64(n) => i128::from(*n),
        Value::U32(n) => i128::from(*n),
        Value::U64(n) => i128::from(*n),
        _ => return None,
    })
}

fn key_text(key: &MapKey) -> String {
    match key {
        MapKey::String(s) => format!("{s:?}"),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

fn map_key_value(key: &MapKey) -> Value {
    match key {
        MapKey::String(s) => Value::String(s.clone()),
        MapKey::Bool(b) => Value::Bool(*b),
        MapKey::I32(n) => Value::I32(*n),
        MapKey::I64(n) => Value::I64(*n),
        MapKey::U32(n) => Value::U32(*n),
        MapKey::U64(n) => Value::U64(*n),
    }
}

fn has_duplicates(values: &[Value]) -> bool {
    values
        .iter()
        .enumerate()
        .any(|(i, v)| values[..i].contains(v))
}

fn string(rules: &rules::StringRules, s: &str, name: &str, out: &mut Vec<Violation>) {
    let chars = s.chars().count() as u64;
    let mut fail = |description: String| out.push(Violation::new(name, description));
    if let Some(c) = &rules.constant
        && s != c
    {
        fail(format!("must be {c:?}"));
    }
    match (rules.min_len, rules.max_len) {
        (Some(min), Some(max)) if min == max && chars != min => {
            fail(format!("must be exactly {min} characters"))
        }
        (Some(1), _) if chars == 0 => fail("is required".to_owned()),
        (Some(min), _) if chars < min => fail(format!("must be at least {min} characters")),
        (_, Some(max)) if chars > max => fail(format!("must be at most {max} characters")),
        _ => {}
    }
    let bytes = s.len() as u64;
    if let Some(min) = rules.min_bytes
        && bytes < min
    {
        fail(format!("must be at least {min} bytes"));
    }
    if let Some(max) = rules.max_bytes
        && bytes > max
    {
        fail(format!("must be at most {max} bytes"));
    }
    // An empty value already failed `min_len`; the pattern adds nothing.
    if let Some(pattern) = &rules.pattern
        && !(chars == 0 && rules.min_len.is_some_and(|m| m > 0))
        && !pattern.is_match(s)
    {
        fail(match rules.examples.first() {
            Some(example) => format!("must match {} (e.g. {example:?})", pattern.as_str()),
            None => format!("must match {}", pattern.as_str()),
        });
    }
    if let Some(prefix) = &rules.prefix
        && !s.starts_with(prefix.as_str())
    {
        fail(format!("must start with {prefix:?}"));
    }
    if let Some(suffix) = &rules.suffix
        && !s.ends_with(suffix.as_str())
    {
        fail(format!("must end with {suffix:?}"));
    }
    if let Some(part) = &rules.contains
        && !s.contains(part.as_str())
    {
        fail(format!("must contain {part:?}"));
    }
    if let Some(part) = &rules.not_contains
        && s.contains(part.as_str())
    {
        fail(format!("must not contain {part:?}"));
    }
    if !rules.allowed.is_empty() && !rules.allowed.iter().any(|a| a == s) {
        fail(format!("must be one of {}", rules.allowed.join(", ")));
    }
    if rules.refused.iter().any(|r| r == s) {
        fail(format!("must not be {s:?}"));
    }
    // The hyphenated 8-4-4-4-12 form only, as protovalidate has it.
    let hyphens = s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-');
    if rules.uuid && (!hyphens || uuid::Uuid::try_parse(s).is_err()) {
        fail("must be a UUID".to_owned());
    }
}

fn number<T>(rules: &NumberRules<T>, n: T, name: &str, out: &mut Vec<Violation>)
where
    T: PartialOrd + Copy + std::fmt::Display,
{
    let mut fail = |description: String| out.push(Violation::new(name, description));
    if let Some(c) = rules.constant
        && n != c
    {
        fail(format!("must be {c}"));
    }
    let above = |bound: &Bound<T>| match *bound {
        Bound::Exclusive(b) => n > b,
        Bound::Inclusive(b) => n >= b,
    };
    let below = |bound: &Bound<T>| match *bound {
        Bound::Exclusive(b) => n < b,
        Bound::Inclusive(b) => n <= b,
    };
    let text = |bound: &Bound<T>, over: bool| match (*bound, over) {
        (Bound::Exclusive(b), true) => format!("greater than {b}"),
        (Bound::Inclusive(b), true) => format!("at least {b}"),
        (Bound::Exclusive(b), false) => format!("less than {b}"),
        (Bound::Inclusive(b), false) => format!("at most {b}"),
    };
    match (&rules.lower, &rules.upper) {
        (Some(lower), Some(upper)) => {
            let (l, u) = (value_of(lower), value_of(upper));
            if l <= u {
                if !(above(lower) && below(upper)) {
                    fail(format!(
                        "must be {} and {}",
                        text(lower, true),
                        text(upper, false)
                    ));
                }
            } else if !(above(lower) || below(upper)) {
                // protovalidate's exclusive form: outside [upper, lower].
                fail(format!(
                    "must be {} or {}",
                    text(lower, true),
                    text(upper, false)
                ));
            }
        }
        (Some(lower), None) if !above(lower) => fail(format!("must be {}", text(lower, true))),
        (None, Some(upper)) if !below(upper) => fail(format!("must be {}", text(upper, false))),
        _ => {}
    }
    if !rules.allowed.is_empty() && !rules.allowed.contains(&n) {
        let list: Vec<String> = rules.allowed.iter().map(ToString::to_string).collect();
        fail(format!("must be one of {}", list.join(", ")));
    }
    if rules.refused.contains(&n) {
        fail(format!("must not be {n}"));
    }
}

fn value_of<T: Copy>(bound: &Bound<T>) -> T {
    match *bound {
        Bound::Exclusive(b) | Bound::Inclusive(b) => b,
    }
}

#[cfg(test)]
mod tests;
