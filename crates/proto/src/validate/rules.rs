//! protovalidate's standard rules, read once from the descriptors' options
//! into plain Rust values that the evaluator walks and the OpenAPI generator
//! publishes.
//!
//! A rule the evaluator does not implement (CEL, most well-known string
//! formats, timestamp bounds) is an error here, not a silently skipped
//! check: the crate's tests compile the rules of every contract.

use std::collections::HashMap;

use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumDescriptor, ExtensionDescriptor, FieldDescriptor, Kind,
    MessageDescriptor,
};
use regex::Regex;

use crate::buf::validate as pv;

/// When a field's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignore {
    /// protovalidate's default: always for fields without presence (a
    /// proto3 `string`), only when set for fields with presence (messages,
    /// `optional`, oneof members).
    Default,
    /// Not when the field holds its zero value (an optional filter).
    IfZero,
    /// Never.
    Always,
}

/// A bound of a numeric range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound<T> {
    /// Greater than / less than.
    Exclusive(T),
    /// Greater or equal / less or equal.
    Inclusive(T),
}

/// Rules of a numeric field, in a type that holds every protobuf integer
/// (`i128`) or float (`f64`).
#[derive(Debug, Clone, PartialEq)]
pub struct NumberRules<T> {
    /// `const`.
    pub constant: Option<T>,
    /// `gt` / `gte`.
    pub lower: Option<Bound<T>>,
    /// `lt` / `lte`.
    pub upper: Option<Bound<T>>,
    /// `in`.
    pub allowed: Vec<T>,
    /// `not_in`.
    pub refused: Vec<T>,
}

/// Rules of a string field.
#[derive(Debug, Clone, Default)]
pub struct StringRules {
    /// `const`.
    pub constant: Option<String>,
    /// `min_len` (`len` sets both), in characters.
    pub min_len: Option<u64>,
    /// `max_len`, in characters.
    pub max_len: Option<u64>,
    /// `min_bytes`/`max_bytes`.
    pub min_bytes: Option<u64>,
    /// See `min_bytes`.
    pub max_bytes: Option<u64>,
    /// `pattern` (RE2 syntax, matched anywhere unless anchored).
    pub pattern: Option<Regex>,
    /// `prefix`, `suffix`, `contains`, `not_contains`.
    pub prefix: Option<String>,
    /// See `prefix`.
    pub suffix: Option<String>,
    /// See `prefix`.
    pub contains: Option<String>,
    /// See `prefix`.
    pub not_contains: Option<String>,
    /// `in`.
    pub allowed: Vec<String>,
    /// `not_in`.
    pub refused: Vec<String>,
    /// `uuid`: the canonical 8-4-4-4-12 hex form.
    pub uuid: bool,
    /// `example`: documentation only.
    pub examples: Vec<String>,
}

/// Rules of an enum field.
#[derive(Debug, Clone)]
pub struct EnumRules {
    /// The enum.
    pub descriptor: EnumDescriptor,
    /// `const`.
    pub constant: Option<i32>,
    /// `defined_only`.
    pub defined_only: bool,
    /// `in`.
    pub allowed: Vec<i32>,
    /// `not_in`.
    pub refused: Vec<i32>,
}

impl EnumRules {
    /// Whether `number` passes every rule but `defined_only`'s.
    pub fn accepts(&self, number: i32) -> bool {
        self.constant.is_none_or(|c| c == number)
            && (self.allowed.is_empty() || self.allowed.contains(&number))
            && !self.refused.contains(&number)
            && (!self.defined_only || self.descriptor.get_value(number).is_some())
    }

    /// The names of the values that pass, in declaration order.
    pub fn accepted_names(&self) -> Vec<String> {
        self.descriptor
            .values()
            .filter(|v| self.accepts(v.number()))
            .map(|v| v.name().to_owned())
            .collect()
    }
}

/// The rules of one value: the field itself, or one item of a list or map.
#[derive(Debug, Clone)]
pub enum ValueRules {
    /// No rule beyond what a nested message declares.
    None,
    /// See [`StringRules`].
    String(StringRules),
    /// Every integer type.
    Integer(NumberRules<i128>),
    /// `float` and `double`.
    Float(NumberRules<f64>),
    /// `google.protobuf.Duration`, in seconds.
    Duration(NumberRules<f64>),
    /// `bool`: `const`.
    Bool(Option<bool>),
    /// See [`EnumRules`].
    Enum(EnumRules),
}

/// The rules of a value plus, for a message, whether its own fields have
/// rules (then the evaluator descends into it).
#[derive(Debug, Clone)]
pub struct ItemRules {
    /// The value's own rules.
    pub rules: ValueRules,
    /// The nested message's full name, when it has rules of its own.
    pub nested: Option<String>,
}

/// What a field's rules look like, by the field's cardinality.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A singular field.
    Single(ItemRules),
    /// A repeated field.
    List {
        /// `min_items`.
        min_items: Option<u64>,
        /// `max_items`.
        max_items: Option<u64>,
        /// `unique` (scalars only).
        unique: bool,
        /// Rules of every item.
        items: ItemRules,
    },
    /// A map field.
    Map {
        /// `min_pairs`.
        min_pairs: Option<u64>,
        /// `max_pairs`.
        max_pairs: Option<u64>,
        /// Rules of every key.
        keys: ItemRules,
        /// Rules of every value.
        values: ItemRules,
    },
}

/// One field of a message with its rules.
#[derive(Debug, Clone)]
pub struct FieldPlan {
    /// The field.
    pub field: FieldDescriptor,
    /// `required`.
    pub required: bool,
    /// `ignore`.
    pub ignore: Ignore,
    /// Its rules.
    pub shape: Shape,
}

/// A oneof that must be set.
#[derive(Debug, Clone)]
pub struct RequiredOneof {
    /// The oneof's name.
    pub name: String,
    /// Its fields.
    pub fields: Vec<FieldDescriptor>,
}

/// The rules of one message.
#[derive(Debug, Clone)]
pub struct MessagePlan {
    /// The message.
    pub descriptor: MessageDescriptor,
    /// Fields with rules, or with nested messages that have rules.
    pub fields: Vec<FieldPlan>,
    /// Oneofs with `(buf.validate.oneof).required`.
    pub required_oneofs: Vec<RequiredOneof>,
}

impl MessagePlan {
    /// The plan of `field`, if it has rules.
    pub fn field(&self, name: &str) -> Option<&FieldPlan> {
        self.fields.iter().find(|f| f.field.name() == name)
    }
}

/// Why a contract's rules cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{element}: {problem}")]
pub struct RuleError {
    /// The field, message or oneof.
    pub element: String,
    /// What is unsupported or inconsistent.
    pub problem: String,
}

fn unsupported(element: &str, problem: impl Into<String>) -> RuleError {
    RuleError {
        element: element.to_owned(),
        problem: problem.into(),
    }
}

/// The rule extensions, when the pool has `buf/validate/validate.proto`.
struct Extensions {
    field: ExtensionDescriptor,
    message: ExtensionDescriptor,
    oneof: ExtensionDescriptor,
}

impl Extensions {
    fn of(pool: &DescriptorPool) -> Option<Self> {
        Some(Self {
            field: pool.get_extension_by_name("buf.validate.field")?,
            message: pool.get_extension_by_name("buf.validate.message")?,
            oneof: pool.get_extension_by_name("buf.validate.oneof")?,
        })
    }
}

fn extension<T: prost::Message + Default>(
    options: &DynamicMessage,
    extension: &ExtensionDescriptor,
    element: &str,
) -> Result<Option<T>, RuleError> {
    if !options.has_extension(extension) {
        return Ok(None);
    }
    let value = options.get_extension(extension);
    let message = value
        .as_message()
        .ok_or_else(|| unsupported(element, "rule option is not a message"))?;
    message
        .transcode_to::<T>()
        .map(Some)
        .map_err(|e| unsupported(element, format!("unreadable rules: {e}")))
}

/// Every message's plan in `pool`, by full name: only messages with rules
/// (their own, or in a nested message) have one.
pub fn compile(pool: &DescriptorPool) -> Result<HashMap<String, MessagePlan>, Vec<RuleError>> {
    let (plans, errors) = compile_all(pool);
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(errors)
    }
}

/// The plans of the messages whose rules can be evaluated, the others left
/// out (for the tests of the evaluator itself).
#[cfg(test)]
pub(crate) fn compile_lenient(pool: &DescriptorPool) -> HashMap<String, MessagePlan> {
    compile_all(pool).0
}

fn compile_all(pool: &DescriptorPool) -> (HashMap<String, MessagePlan>, Vec<RuleError>) {
    let Some(extensions) = Extensions::of(pool) else {
        return (HashMap::new(), Vec::new());
    };
    let mut own = HashMap::new();
    let mut errors = Vec::new();
    for message in pool.all_messages() {
        match own_rules(&message, &extensions) {
            Ok(plan) => {
                own.insert(message.full_name().to_owned(), plan);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    // A message needs a plan when it, or a message it holds, has rules:
    // iterate to a fixed point (contracts may be recursive).
    let mut with_rules: std::collections::HashSet<String> = own
        .iter()
        .filter(|(_, p)| p.has_own_rules)
        .map(|(n, _)| n.clone())
        .collect();
    loop {
        let before = with_rules.len();
        for (name, plan) in &own {
            if !with_rules.contains(name)
                && plan
                    .message_fields
                    .iter()
                    .any(|m| with_rules.contains(m.as_str()))
            {
                with_rules.insert(name.clone());
            }
        }
        if with_rules.len() == before {
            break;
        }
    }
    let nested = |item: &mut ItemRules, kind: Kind| {
        if let Kind::Message(m) = kind
            && with_rules.contains(m.full_name())
        {
            item.nested = Some(m.full_name().to_owned());
        }
    };
    let mut plans = HashMap::new();
    for (name, mut draft) in own {
        if !with_rules.contains(&name) {
            continue;
        }
        for plan in &mut draft.plan.fields {
            match &mut plan.shape {
                Shape::Single(item) | Shape::List { items: item, .. } => {
                    nested(item, plan.field.kind())
                }
                Shape::Map { values, .. } => {
                    if let Kind::Message(entry) = plan.field.kind() {
                        nested(values, entry.map_entry_value_field().kind());
                    }
                }
            }
        }
        // Keep fields with rules, or whose messages have rules.
        draft.plan.fields.retain(|f| {
            f.required
                || f.ignore == Ignore::Always
                || match &f.shape {
                    Shape::Single(item) => item.nested.is_some() || !item.rules.is_none(),
                    Shape::List {
                        min_items,
                        max_items,
                        unique,
                        items,
                    } => {
                        min_items.is_some()
                            || max_items.is_some()
                            || *unique
                            || items.nested.is_some()
                            || !items.rules.is_none()
                    }
                    Shape::Map {
                        min_pairs,
                        max_pairs,
                        keys,
                        values,
                    } => {
                        min_pairs.is_some()
                            || max_pairs.is_some()
                            || !keys.rules.is_none()
                            || values.nested.is_some()
                            || !values.rules.is_none()
                    }
                }
        });
        plans.insert(name, draft.plan);
    }
    (plans, errors)
}

impl ValueRules {
    fn is_none(&self) -> bool {
        matches!(self, ValueRules::None)
    }
}

struct Draft {
    plan: MessagePlan,
    has_own_rules: bool,
    /// Full names of the message types its fields (and map values) hold.
    message_fields: Vec<String>,
}

fn own_rules(message: &MessageDescriptor, ext: &Extensions) -> Result<Draft, Vec<RuleError>> {
    let mut errors = Vec::new();
    let mut has_own_rules = false;
    let name = message.full_name();
    let options = message.options();
    if let Some(rules) =
        extension::<pv::MessageRules>(&options, &ext.message, name).map_err(|e| vec![e])?
        && (!rules.cel.is_empty() || !rules.cel_expression.is_empty() || !rules.oneof.is_empty())
    {
        errors.push(unsupported(
            name,
            "message rules (CEL, oneof groups) are not evaluated",
        ));
    }
    let mut required_oneofs = Vec::new();
    for oneof in message.oneofs() {
        let element = format!("{name}.{}", oneof.name());
        match extension::<pv::OneofRules>(&oneof.options(), &ext.oneof, &element) {
            Ok(Some(rules)) if rules.required() => {
                has_own_rules = true;
                required_oneofs.push(RequiredOneof {
                    name: oneof.name().to_owned(),
                    fields: oneof.fields().collect(),
                });
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    let mut fields = Vec::new();
    let mut message_fields = Vec::new();
    for field in message.fields() {
        let element = format!("{name}.{}", field.name());
        match field.kind() {
            Kind::Message(m) if field.is_map() => {
                if let Kind::Message(v) = m.map_entry_value_field().kind() {
                    message_fields.push(v.full_name().to_owned());
                }
            }
            Kind::Message(m) => message_fields.push(m.full_name().to_owned()),
            _ => {}
        }
        let rules = match extension::<pv::FieldRules>(&field.options(), &ext.field, &element) {
            Ok(rules) => rules,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match field_plan(&field, rules.as_ref(), &element) {
            Ok(plan) => {
                has_own_rules |= rules.is_some();
                fields.push(plan);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Draft {
        plan: MessagePlan {
            descriptor: message.clone(),
            fields,
            required_oneofs,
        },
        has_own_rules,
        message_fields,
    })
}

fn field_plan(
    field: &FieldDescriptor,
    rules: Option<&pv::FieldRules>,
    element: &str,
) -> Result<FieldPlan, RuleError> {
    let empty = pv::FieldRules::default();
    let rules = rules.unwrap_or(&empty);
    if !rules.cel.is_empty() || !rules.cel_expression.is_empty() {
        return Err(unsupported(element, "CEL rules are not evaluated"));
    }
    let ignore = match rules.ignore() {
        pv::Ignore::Unspecified => Ignore::Default,
        pv::Ignore::IfZeroValue => Ignore::IfZero,
        pv::Ignore::Always => Ignore::Always,
    };
    use pv::field_rules::Type;
    let shape = if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("a map field holds entries")
        };
        let (key, value) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        match &rules.r#type {
            None => Shape::Map {
                min_pairs: None,
                max_pairs: None,
                keys: item(&key, None, element)?,
                values: item(&value, None, element)?,
            },
            Some(Type::Map(map)) => Shape::Map {
                min_pairs: map.min_pairs,
                max_pairs: map.max_pairs,
                keys: item(&key, map.keys.as_deref(), &format!("{element} keys"))?,
                values: item(&value, map.values.as_deref(), &format!("{element} values"))?,
            },
            Some(_) => return Err(unsupported(element, "a map takes `map` rules")),
        }
    } else if field.is_list() {
        match &rules.r#type {
            None => Shape::List {
                min_items: None,
                max_items: None,
                unique: false,
                items: item(field, None, element)?,
            },
            Some(Type::Repeated(list)) => Shape::List {
                min_items: list.min_items,
                max_items: list.max_items,
                unique: list.unique(),
                items: item(field, list.items.as_deref(), &format!("{element} items"))?,
            },
            Some(_) => return Err(unsupported(element, "a list takes `repeated` rules")),
        }
    } else {
        Shape::Single(item(field, Some(rules), element)?)
    };
    Ok(FieldPlan {
        field: field.clone(),
        required: rules.required(),
        ignore,
        shape,
    })
}

macro_rules! integers {
    ($rules:expr, $module:path) => {{
        use $module as m;
        let r = $rules;
        ValueRules::Integer(NumberRules {
            constant: r.r#const.map(i128::from),
            lower: r.greater_than.as_ref().map(|g| match g {
                m::GreaterThan::Gt(v) => Bound::Exclusive(i128::from(*v)),
                m::GreaterThan::Gte(v) => Bound::Inclusive(i128::from(*v)),
            }),
            upper: r.less_than.as_ref().map(|l| match l {
                m::LessThan::Lt(v) => Bound::Exclusive(i128::from(*v)),
                m::LessThan::Lte(v) => Bound::Inclusive(i128::from(*v)),
            }),
            allowed: r.r#in.iter().copied().map(i128::from).collect(),
            refused: r.not_in.iter().copied().map(i128::from).collect(),
        })
    }};
}

macro_rules! floats {
    ($rules:expr, $module:path, $element:expr) => {{
        use $module as m;
        let r = $rules;
        if r.finite.unwrap_or(false) {
            return Err(unsupported($element, "`finite` is not evaluated"));
        }
        ValueRules::Float(NumberRules {
            constant: r.r#const.map(f64::from),
            lower: r.greater_than.as_ref().map(|g| match g {
                m::GreaterThan::Gt(v) => Bound::Exclusive(f64::from(*v)),
                m::GreaterThan::Gte(v) => Bound::Inclusive(f64::from(*v)),
            }),
            upper: r.less_than.as_ref().map(|l| match l {
                m::LessThan::Lt(v) => Bound::Exclusive(f64::from(*v)),
                m::LessThan::Lte(v) => Bound::Inclusive(f64::from(*v)),
            }),
            allowed: r.r#in.iter().copied().map(f64::from).collect(),
            refused: r.not_in.iter().copied().map(f64::from).collect(),
        })
    }};
}

/// The value rules of `rules` for a value of `field`'s kind.
fn item(
    field: &FieldDescriptor,
    rules: Option<&pv::FieldRules>,
    element: &str,
) -> Result<ItemRules, RuleError> {
    use pv::field_rules::Type;
    let kind = field.kind();
    if let Some(rules) = rules
        && (!rules.cel.is_empty() || !rules.cel_expression.is_empty())
    {
        return Err(unsupported(element, "CEL rules are not evaluated"));
    }
    let value = match (rules.and_then(|r| r.r#type.as_ref()), &kind) {
        (None, _) => ValueRules::None,
        (Some(Type::String(s)), Kind::String) => ValueRules::String(string_rules(s, element)?),
        (Some(Type::Bool(b)), Kind::Bool) => ValueRules::Bool(b.r#const),
        (Some(Type::Enum(e)), Kind::Enum(descriptor)) => ValueRules::Enum(EnumRules {
            descriptor: descriptor.clone(),
            constant: e.r#const,
            defined_only: e.defined_only(),
            allowed: e.r#in.clone(),
            refused: e.not_in.clone(),
        }),
        (Some(Type::Int32(r)), Kind::Int32) => integers!(r, pv::int32_rules),
        (Some(Type::Int64(r)), Kind::Int64) => integers!(r, pv::int64_rules),
        (Some(Type::Uint32(r)), Kind::Uint32) => integers!(r, pv::u_int32_rules),
        (Some(Type::Uint64(r)), Kind::Uint64) => integers!(r, pv::u_int64_rules),
        (Some(Type::Sint32(r)), Kind::Sint32) => integers!(r, pv::s_int32_rules),
        (Some(Type::Sint64(r)), Kind::Sint64) => integers!(r, pv::s_int64_rules),
        (Some(Type::Fixed32(r)), Kind::Fixed32) => integers!(r, pv::fixed32_rules),
        (Some(Type::Fixed64(r)), Kind::Fixed64) => integers!(r, pv::fixed64_rules),
        (Some(Type::Sfixed32(r)), Kind::Sfixed32) => integers!(r, pv::s_fixed32_rules),
        (Some(Type::Sfixed64(r)), Kind::Sfixed64) => integers!(r, pv::s_fixed64_rules),
        (Some(Type::Duration(r)), Kind::Message(m))
            if m.full_name() == "google.protobuf.Duration" =>
        {
            use pv::duration_rules as d;
            let nanos = |d: &prost_types::Duration| d.seconds as f64 + f64::from(d.nanos) / 1e9;
            ValueRules::Duration(NumberRules {
                constant: r.r#const.as_ref().map(nanos),
                lower: r.greater_than.as_ref().map(|g| match g {
                    d::GreaterThan::Gt(v) => Bound::Exclusive(nanos(v)),
                    d::GreaterThan::Gte(v) => Bound::Inclusive(nanos(v)),
                }),
                upper: r.less_than.as_ref().map(|l| match l {
                    d::LessThan::Lt(v) => Bound::Exclusive(nanos(v)),
                    d::LessThan::Lte(v) => Bound::Inclusive(nanos(v)),
                }),
                allowed: r.r#in.iter().map(nanos).collect(),
                refused: r.not_in.iter().map(nanos).collect(),
            })
        }
        (Some(Type::Double(r)), Kind::Double) => floats!(r, pv::double_rules, element),
        (Some(Type::Float(r)), Kind::Float) => floats!(r, pv::float_rules, element),
        (Some(_), _) => {
            return Err(unsupported(
                element,
                format!("these rules do not apply to a {kind:?} field, or are not evaluated"),
            ));
        }
    };
    Ok(ItemRules {
        rules: value,
        nested: None,
    })
}

fn string_rules(s: &pv::StringRules, element: &str) -> Result<StringRules, RuleError> {
    use pv::string_rules::WellKnown;
    let uuid = match &s.well_known {
        None => false,
        Some(WellKnown::Uuid(true)) => true,
        Some(other) => {
            return Err(unsupported(
                element,
                format!("the well-known string rule {other:?} is not evaluated"),
            ));
        }
    };
    if let Some(p) = &s.pattern
        && perl_class(p)
    {
        return Err(unsupported(
            element,
            "a Perl class (\\s, \\d, \\w, \\b) is ASCII in RE2 and Unicode here; spell the characters out",
        ));
    }
    let pattern = s
        .pattern
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(|e| unsupported(element, format!("bad pattern: {e}")))?;
    Ok(StringRules {
        constant: s.r#const.clone(),
        min_len: s.len.or(s.min_len),
        max_len: s.len.or(s.max_len),
        min_bytes: s.len_bytes.or(s.min_bytes),
        max_bytes: s.len_bytes.or(s.max_bytes),
        pattern,
        prefix: s.prefix.clone(),
        suffix: s.suffix.clone(),
        contains: s.contains.clone(),
        not_contains: s.not_contains.clone(),
        allowed: s.r#in.clone(),
        refused: s.not_in.clone(),
        uuid,
        examples: s.example.clone(),
    })
}

/// Whether `pattern` uses `\s`, `\d`, `\w` or `\b` (either case).
fn perl_class(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('s' | 'S' | 'd' | 'D' | 'w' | 'W' | 'b' | 'B') => return true,
                _ => {}
            }
        }
    }
    false
}
