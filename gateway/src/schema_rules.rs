//! The contracts' `buf.validate` rules as JSON Schema keywords, so that the
//! OpenAPI document calls valid exactly what the services accept: lengths,
//! patterns, ranges, enums, item counts.
//!
//! 64-bit integers are JSON strings in answers and may be strings or
//! numbers in requests (proto3 JSON), so their schema is both: the range as
//! `minimum`/`maximum` for a number and as a `pattern` for a string.

use meshwork_proto::validate::rules::{
    Bound, FieldPlan, Ignore, ItemRules, NumberRules, Shape, StringRules, ValueRules,
};
use prost_reflect::{FieldDescriptor, Kind};
use serde_json::{Map, Value, json};

/// Adds the keywords of `plan` to the schema of its field.
pub(crate) fn constrain(schema: &mut Value, plan: &FieldPlan) {
    if plan.ignore == Ignore::Always {
        return;
    }
    if plan.ignore == Ignore::IfZero
        && let Shape::Single(item) = &plan.shape
    {
        // The zero value skips the rules: "" or 0, or a value that meets them.
        let zero = match &item.rules {
            ValueRules::String(_) => json!(""),
            ValueRules::Integer(_) if is_64_bit(&plan.field.kind()) => json!(["0", 0]),
            ValueRules::Integer(_) | ValueRules::Float(_) => json!([0]),
            // JSON names enum values; the zero value by its name.
            ValueRules::Enum(rules) => json!([rules
                .descriptor
                .get_value(0)
                .map_or_else(String::new, |v| v.name().to_owned())]),
            _ => Value::Null,
        };
        let mut ruled = schema.clone();
        item_keywords(&mut ruled, item, &plan.field);
        match zero {
            // One string schema: "" passes, and the pattern admits it.
            Value::String(_) => {
                if let Value::Object(object) = &mut ruled {
                    object.remove("minLength");
                    if let Some(Value::String(pattern)) = object.get("pattern") {
                        let either = format!("^$|{pattern}");
                        object.insert("pattern".into(), json!(either));
                    }
                }
                *schema = ruled;
            }
            Value::Array(zeros) => *schema = json!({"anyOf": [ruled, {"enum": zeros}]}),
            _ => {}
        }
        return;
    }
    match &plan.shape {
        Shape::Single(item) => item_keywords(schema, item, &plan.field),
        Shape::List {
            min_items,
            max_items,
            unique,
            items,
        } => {
            let Value::Object(object) = schema else {
                return;
            };
            if let Some(min) = min_items {
                object.insert("minItems".into(), json!(min));
            }
            if let Some(max) = max_items {
                object.insert("maxItems".into(), json!(max));
            }
            if *unique {
                object.insert("uniqueItems".into(), json!(true));
            }
            if let Some(inner) = object.get_mut("items") {
                item_keywords(inner, items, &plan.field);
            }
        }
        Shape::Map {
            min_pairs,
            max_pairs,
            keys,
            values,
        } => {
            let Value::Object(object) = schema else {
                return;
            };
            if let Some(min) = min_pairs {
                object.insert("minProperties".into(), json!(min));
            }
            if let Some(max) = max_pairs {
                object.insert("maxProperties".into(), json!(max));
            }
            if let (Some(inner), Kind::Message(entry)) =
                (object.get_mut("additionalProperties"), plan.field.kind())
            {
                item_keywords(inner, values, &entry.map_entry_value_field());
            }
            // JSON object keys are strings: a string key's rules are the
            // names' schema.
            if let ValueRules::String(rules) = &keys.rules {
                let mut names = json!({"type": "string"});
                string(&mut names, rules);
                object.insert("propertyNames".into(), names);
            }
        }
    }
}

fn item_keywords(schema: &mut Value, item: &ItemRules, field: &FieldDescriptor) {
    match &item.rules {
        ValueRules::None | ValueRules::Bool(None) => {}
        ValueRules::Bool(Some(b)) => insert(schema, "const", json!(b)),
        ValueRules::String(rules) => string(schema, rules),
        ValueRules::Integer(rules) => integer(schema, rules, &field.kind()),
        ValueRules::Float(rules) => {
            for (key, value) in number_keywords(rules) {
                insert(schema, &key, value);
            }
        }
        ValueRules::Duration(rules) => duration(schema, rules),
        ValueRules::Enum(rules) => {
            // Inline, since the shared enum schema lists every value.
            let mut inline = json!({"type": "string", "enum": rules.accepted_names()});
            if let Some(description) = schema.get("description") {
                inline["description"] = description.clone();
            }
            *schema = inline;
        }
    }
}

fn insert(schema: &mut Value, key: &str, value: Value) {
    if let Value::Object(object) = schema {
        object.insert(key.to_owned(), value);
    }
}

fn string(schema: &mut Value, rules: &StringRules) {
    let Value::Object(object) = schema else {
        return;
    };
    if let Some(min) = rules.min_len {
        object.insert("minLength".into(), json!(min));
    }
    if let Some(max) = rules.max_len {
        object.insert("maxLength".into(), json!(max));
    }
    if let Some(pattern) = &rules.pattern {
        object.insert("pattern".into(), json!(pattern.as_str()));
    } else if let Some(prefix) = &rules.prefix {
        object.insert(
            "pattern".into(),
            json!(format!("^{}", regex::escape(prefix))),
        );
    }
    if let Some(constant) = &rules.constant {
        object.insert("const".into(), json!(constant));
    }
    if !rules.allowed.is_empty() {
        object.insert("enum".into(), json!(rules.allowed));
    }
    if !rules.refused.is_empty() {
        object.insert("not".into(), json!({"enum": rules.refused}));
    }
    if rules.uuid {
        object.insert("format".into(), json!("uuid"));
    }
    if !rules.examples.is_empty() {
        object.insert("examples".into(), json!(rules.examples));
    }
}

fn number_keywords<T: Copy + Into<f64>>(rules: &NumberRules<T>) -> Map<String, Value> {
    let mut out = Map::new();
    let n = |v: T| {
        let f: f64 = v.into();
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            json!(f as i64)
        } else {
            json!(f)
        }
    };
    // protovalidate's "outside a range" form (gt > lt) has no JSON Schema
    // keyword; it is left to the server.
    let inverted = match (&rules.lower, &rules.upper) {
        (Some(l), Some(u)) => {
            let (l, u): (f64, f64) = (bound(l).into(), bound(u).into());
            l > u
        }
        _ => false,
    };
    if !inverted {
        match rules.lower {
            Some(Bound::Inclusive(v)) => {
                out.insert("minimum".into(), n(v));
            }
            Some(Bound::Exclusive(v)) => {
                out.insert("exclusiveMinimum".into(), n(v));
            }
            None => {}
        }
        match rules.upper {
            Some(Bound::Inclusive(v)) => {
                out.insert("maximum".into(), n(v));
            }
            Some(Bound::Exclusive(v)) => {
                out.insert("exclusiveMaximum".into(), n(v));
            }
            None => {}
        }
    }
    if let Some(c) = rules.constant {
        out.insert("const".into(), n(c));
    }
    if !rules.allowed.is_empty() {
        out.insert(
            "enum".into(),
            Value::Array(rules.allowed.iter().map(|v| n(*v)).collect()),
        );
    }
    if !rules.refused.is_empty() {
        out.insert(
            "not".into(),
            json!({"enum": rules.refused.iter().map(|v| n(*v)).collect::<Vec<_>>()}),
        );
    }
    out
}

fn bound<T: Copy>(b: &Bound<T>) -> T {
    match *b {
        Bound::Inclusive(v) | Bound::Exclusive(v) => v,
    }
}

/// An `i128` as `f64` for the keyword values (contracts' bounds are far
/// inside the exact range).
#[derive(Clone, Copy)]
struct Wide(i128);

impl From<Wide> for f64 {
    fn from(w: Wide) -> f64 {
        w.0 as f64
    }
}

fn wide(rules: &NumberRules<i128>) -> NumberRules<Wide> {
    let b = |b: &Bound<i128>| match *b {
        Bound::Inclusive(v) => Bound::Inclusive(Wide(v)),
        Bound::Exclusive(v) => Bound::Exclusive(Wide(v)),
    };
    NumberRules {
        constant: rules.constant.map(Wide),
        lower: rules.lower.as_ref().map(b),
        upper: rules.upper.as_ref().map(b),
        allowed: rules.allowed.iter().copied().map(Wide).collect(),
        refused: rules.refused.iter().copied().map(Wide).collect(),
    }
}

impl PartialEq for Wide {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// The inclusive range of an integer field, from its bounds and its type.
fn inclusive_range(rules: &NumberRules<i128>, kind: &Kind) -> (i128, i128) {
    let (min, max) = match kind {
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => (i128::from(i64::MIN), i128::from(i64::MAX)),
        Kind::Uint64 | Kind::Fixed64 => (0, i128::from(u64::MAX)),
        Kind::Uint32 | Kind::Fixed32 => (0, i128::from(u32::MAX)),
        _ => (i128::from(i32::MIN), i128::from(i32::MAX)),
    };
    let lo = match rules.lower {
        Some(Bound::Inclusive(v)) => v.max(min),
        Some(Bound::Exclusive(v)) => (v + 1).max(min),
        None => min,
    };
    let hi = match rules.upper {
        Some(Bound::Inclusive(v)) => v.min(max),
        Some(Bound::Exclusive(v)) => (v - 1).min(max),
        None => max,
    };
    (lo, hi)
}

fn integer(schema: &mut Value, rules: &NumberRules<i128>, kind: &Kind) {
    let keywords = number_keywords(&wide(rules));
    let is_64 = is_64_bit(kind);
    let Value::Object(object) = schema else {
        return;
    };
    object.extend(keywords);
    let inverted =
        matches!((&rules.lower, &rules.upper), (Some(l), Some(u)) if bound(l) > bound(u));
    if is_64 && !inverted && rules.allowed.is_empty() && rules.constant.is_none() {
        // A number within the range, or a string spelling one.
        let (lo, hi) = inclusive_range(rules, kind);
        if lo > hi {
            // No integer passes: the bounds say it, no pattern is needed.
            return;
        }
        object.insert("type".into(), json!(["integer", "string"]));
        object.insert(
            "pattern".into(),
            json!(format!("^{}$", range_regex(lo, hi))),
        );
    }
}

fn is_64_bit(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64
    )
}

/// Durations are strings such as `"90s"` or `"1.5s"`: bounds of whole
/// seconds become a pattern.
fn duration(schema: &mut Value, rules: &NumberRules<f64>) {
    let whole = |v: f64| v.fract() == 0.0;
    // Both bounds inclusive and whole (a negative duration is a string
    // the pattern would have to spell too).
    let Some(Bound::Inclusive(lo)) = rules.lower else {
        return;
    };
    if !whole(lo) || lo < 0.0 {
        return;
    }
    let lo = lo as i128;
    let Some(Bound::Inclusive(hi)) = rules.upper else {
        return;
    };
    if !whole(hi) || hi as i128 <= lo {
        return;
    }
    let hi = hi as i128;
    insert(
        schema,
        "pattern",
        json!(format!(
            "^({}(\\.[0-9]{{1,9}})?|{hi})s$",
            range_regex(lo, hi - 1)
        )),
    );
}

/// A regular expression (no anchors) matching exactly the decimal integers
/// from `lo` to `hi`, without leading zeros.
pub(crate) fn range_regex(lo: i128, hi: i128) -> String {
    let mut parts = Vec::new();
    if lo < 0 {
        let negative_hi = hi.min(-1);
        let inner = unsigned_ranges(-negative_hi, -lo);
        parts.push(format!("-({})", inner.join("|")));
    }
    if hi >= 0 {
        parts.extend(unsigned_ranges(lo.max(0), hi));
    }
    format!("({})", parts.join("|"))
}

fn unsigned_ranges(lo: i128, hi: i128) -> Vec<String> {
    if lo > hi {
        return Vec::new();
    }
    let (a, b) = (lo.to_string(), hi.to_string());
    if a.len() < b.len() {
        let top = 10i128.pow(a.len() as u32) - 1;
        let mut out = unsigned_ranges(lo, top);
        out.extend(unsigned_ranges(top + 1, hi));
        return out;
    }
    same_length(&a, &b)
}

/// Numbers written with as many digits as `a` and `b`, from `a` to `b`.
fn same_length(a: &str, b: &str) -> Vec<String> {
    if a == b {
        return vec![a.to_owned()];
    }
    let (x, y) = (a.as_bytes()[0] - b'0', b.as_bytes()[0] - b'0');
    if a.len() == 1 {
        return vec![format!("[{x}-{y}]")];
    }
    let (rest_a, rest_b) = (&a[1..], &b[1..]);
    if x == y {
        return same_length(rest_a, rest_b)
            .into_iter()
            .map(|r| format!("{x}{r}"))
            .collect();
    }
    let n = rest_a.len();
    let mut out = Vec::new();
    let mut first_full = x;
    if rest_a.bytes().any(|c| c != b'0') {
        out.extend(
            same_length(rest_a, &"9".repeat(n))
                .into_iter()
                .map(|r| format!("{x}{r}")),
        );
        first_full = x + 1;
    }
    let all_nines = rest_b.bytes().all(|c| c == b'9');
    let last_full = if all_nines { y } else { y - 1 };
    if first_full <= last_full {
        let digit = if first_full == last_full {
            first_full.to_string()
        } else {
            format!("[{first_full}-{last_full}]")
        };
        out.push(format!("{digit}[0-9]{{{n}}}"));
    }
    if !all_nines {
        out.extend(
            same_length(&"0".repeat(n), rest_b)
                .into_iter()
                .map(|r| format!("{y}{r}")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_patterns_match_exactly_their_range() {
        for (lo, hi) in [
            (0, 9),
            (1, 1_000_000_000_000_000),
            (60, 604_799),
            (-840, 840),
            (0, 500),
            (17, 17),
            (-5, -3),
            (1, i128::from(i64::MAX)),
        ] {
            let re = regex::Regex::new(&format!("^{}$", range_regex(lo, hi))).unwrap();
            let probes = [
                lo - 1,
                lo,
                lo + 1,
                hi - 1,
                hi,
                hi + 1,
                0,
                -1,
                10,
                99,
                100,
                (lo + hi) / 2,
            ];
            for n in probes {
                assert_eq!(
                    re.is_match(&n.to_string()),
                    (lo..=hi).contains(&n),
                    "{n} in [{lo}, {hi}] by {}",
                    re.as_str()
                );
            }
            assert!(!re.is_match("007"), "no leading zeros");
        }
    }
}
