//! JSON ↔ protobuf for one route: the request message from the path
//! variables, the query string and the body; the response body from the
//! response message. Conversions follow the protobuf JSON mapping
//! (prost-reflect): lowerCamelCase names out and both spellings in, int64 as
//! strings, enums by name (or number on input), well-known types in their JSON
//! forms, zero values emitted.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::problem::Problem;
use crate::routes::{BodyRule, Route, is_scalar_like, resolve};

/// Strictness switches (both strict by default, as grpc-gateway can be).
#[derive(Debug, Clone, Copy)]
pub struct TranscodeOptions {
    /// Refuse query parameters that name no field (400), instead of ignoring them.
    pub reject_unknown_query: bool,
    /// Refuse JSON fields that the message does not have (400).
    pub reject_unknown_fields: bool,
}

impl Default for TranscodeOptions {
    fn default() -> Self {
        Self {
            reject_unknown_query: true,
            reject_unknown_fields: true,
        }
    }
}

/// Builds the gRPC request of `route`.
pub fn build_request(
    route: &Route,
    bindings: &[(String, String)],
    query: Option<&str>,
    body: &[u8],
    content_type: Option<&str>,
    options: TranscodeOptions,
) -> Result<DynamicMessage, Problem> {
    let input = route.method.input();
    let mut root = Map::new();

    // A google.api.HttpBody takes the body as it is (bytes and content
    // type), for payloads that are not JSON: forms, XML, files.
    let raw = || {
        json!({
            "contentType": content_type.unwrap_or("application/octet-stream"),
            "data": base64::engine::general_purpose::STANDARD.encode(body),
        })
    };
    let has_body = body.iter().any(|b| !b.is_ascii_whitespace());
    match (&route.body, has_body) {
        (BodyRule::All, _) if is_http_body(&input) => {
            if let Value::Object(object) = raw() {
                root = object;
            }
        }
        (BodyRule::Field(field), _) if field.kind().as_message().is_some_and(is_http_body) => {
            root.insert(field.name().to_owned(), raw());
        }
        (_, false) => {}
        (BodyRule::None, true) => {
            return Err(Problem::bad_request("this method takes no request body"));
        }
        (BodyRule::All, true) => match parse_json(body)? {
            Value::Object(object) => root = object,
            _ => {
                return Err(Problem::bad_request(
                    "the request body must be a JSON object",
                ));
            }
        },
        (BodyRule::Field(field), true) => {
            root.insert(field.name().to_owned(), parse_json(body)?);
        }
    }

    for (path, text) in bindings {
        let field = resolve(&input, path).map_err(Problem::bad_request)?;
        let value = scalar_json(&field, text)
            .map_err(|e| Problem::bad_field(path, format!("path value {text:?}: {e}")))?;
        set_path(&mut root, &input, path, value);
    }

    if let Some(query) = query {
        let mut collected: Vec<(String, FieldDescriptor, Vec<String>)> = Vec::new();
        for (key, text) in form_urlencoded::parse(query.as_bytes()) {
            let key = key.into_owned();
            let field = match resolve(&input, &key) {
                Ok(field) => field,
                Err(_) if !options.reject_unknown_query => continue,
                Err(_) => {
                    return Err(Problem::bad_field(
                        &key,
                        format!("unknown query parameter {key:?}"),
                    ));
                }
            };
            if matches!(route.body, BodyRule::All) {
                return Err(Problem::bad_field(
                    &key,
                    "this method takes its fields from the body, not the query",
                ));
            }
            if let BodyRule::Field(body_field) = &route.body
                && key.split('.').next() == Some(body_field.name())
            {
                return Err(Problem::bad_field(
                    &key,
                    "this field comes from the request body",
                ));
            }
            if bindings
                .iter()
                .any(|(bound, _)| same_path(&input, bound, &key))
            {
                return Err(Problem::bad_field(&key, "this field is bound by the path"));
            }
            if field.is_map() || matches!(field.kind(), Kind::Message(ref m) if !is_scalar_like(m))
            {
                return Err(Problem::bad_field(
                    &key,
                    "a message field cannot be set from the query; name its fields",
                ));
            }
            match collected.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, _, values)) => values.push(text.into_owned()),
                None => collected.push((key, field, vec![text.into_owned()])),
            }
        }
        for (key, field, values) in collected {
            let value = if field.is_list() {
                let items: Result<Vec<_>, _> =
                    values.iter().map(|v| scalar_json(&field, v)).collect();
                Value::Array(items.map_err(|e| Problem::bad_field(&key, e))?)
            } else {
                let [single] = values.as_slice() else {
                    return Err(Problem::bad_field(
                        &key,
                        "given more than once for a singular field",
                    ));
                };
                scalar_json(&field, single)
                    .map_err(|e| Problem::bad_field(&key, format!("{single:?}: {e}")))?
            };
            set_path(&mut root, &input, &key, value);
        }
    }

    let root = Value::Object(root);
    if let Some(path) = inexact_integer(&input, &root, "") {
        return Err(Problem::bad_field(
            &path,
            "a 64-bit integer beyond what a JSON number holds exactly; send it as a string",
        ));
    }
    let deserialize = DeserializeOptions::new().deny_unknown_fields(options.reject_unknown_fields);
    DynamicMessage::deserialize_with_options(input, root, &deserialize)
        .map_err(|e| Problem::bad_request(format!("invalid request: {e}")))
}

/// The path of a 64-bit integer field given as a JSON number that is not an
/// exact integer: serde_json reads `-9223372036854775809` as a float, which
/// would otherwise saturate to `i64::MIN` without a word. (`5.0` is an
/// integer, as JSON Schema has it; so is a float below 2^52, where every
/// value a literal rounds to is the literal's own.)
fn inexact_integer(message: &MessageDescriptor, value: &Value, prefix: &str) -> Option<String> {
    let Value::Object(object) = value else {
        return None;
    };
    for (key, value) in object {
        let Some(field) = message
            .get_field_by_json_name(key)
            .or_else(|| message.get_field_by_name(key))
        else {
            continue;
        };
        let path = format!("{prefix}{}", field.name());
        let values: Vec<&Value> = match value {
            Value::Array(items) if field.is_list() => items.iter().collect(),
            Value::Object(entries) if field.is_map() => entries.values().collect(),
            other => vec![other],
        };
        for value in values {
            match (field.kind(), value) {
                (
                    Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64,
                    Value::Number(n),
                ) if n
                    .as_f64()
                    .is_some_and(|f| f.fract() != 0.0 || f.abs() >= 4_503_599_627_370_496.0)
                    && n.is_f64() =>
                {
                    return Some(path);
                }
                (Kind::Message(inner), Value::Object(_)) if !field.is_map() => {
                    if let Some(found) = inexact_integer(&inner, value, &format!("{path}.")) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// Whether a message is `google.api.HttpBody`.
pub fn is_http_body(message: &prost_reflect::MessageDescriptor) -> bool {
    message.full_name() == "google.api.HttpBody"
}

/// The raw body and content type of a response that is a
/// `google.api.HttpBody`: the whole message, or the `response_body` field
/// when that is one.
pub fn raw_response(route: &Route, message: &DynamicMessage) -> Option<(String, Vec<u8>)> {
    let field_value;
    let message = match &route.response_body {
        None if is_http_body(&prost_reflect::ReflectMessage::descriptor(message)) => message,
        Some(field) if field.kind().as_message().is_some_and(is_http_body) => {
            field_value = message.get_field(field);
            field_value.as_message()?
        }
        _ => return None,
    };
    let content_type = message
        .get_field_by_name("content_type")
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let data = message
        .get_field_by_name("data")
        .and_then(|v| v.as_bytes().map(|b| b.to_vec()))
        .unwrap_or_default();
    Some((content_type, data))
}

/// A unary response as the bytes of its JSON body: serialised straight from
/// the message when the whole message is the body (no intermediate tree).
pub fn render_response_bytes(route: &Route, message: &DynamicMessage) -> Vec<u8> {
    if route.response_body.is_some() {
        return serde_json::to_vec(&render_response(route, message)).unwrap_or_default();
    }
    let options = SerializeOptions::new().skip_default_fields(false);
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::new(&mut out);
    match message.serialize_with_options(&mut serializer, &options) {
        Ok(()) => out,
        Err(e) => serde_json::to_vec(&Value::String(format!("unserializable response: {e}")))
            .unwrap_or_default(),
    }
}

/// A response message as JSON (the `response_body` field of it, when the
/// route names one).
pub fn render_response(route: &Route, message: &DynamicMessage) -> Value {
    let options = SerializeOptions::new().skip_default_fields(false);
    let value = message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or_else(|e| Value::String(format!("unserializable response: {e}")));
    match &route.response_body {
        Some(field) => value.get(field.json_name()).cloned().unwrap_or(Value::Null),
        None => value,
    }
}

fn parse_json(body: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request(format!("malformed JSON body: {e}")))
}

/// A path or query value as the JSON the field's type expects.
fn scalar_json(field: &FieldDescriptor, text: &str) -> Result<Value, String> {
    let kind = match field.kind() {
        Kind::Message(m) if m.full_name() == "google.protobuf.BoolValue" => Kind::Bool,
        other => other,
    };
    Ok(match kind {
        Kind::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err("expected true or false".into()),
        },
        Kind::Enum(en) => match text.parse::<i32>() {
            Ok(number) => Value::from(number),
            Err(_) if en.get_value_by_name(text).is_some() => Value::String(text.to_owned()),
            Err(_) => return Err(format!("not a value of {}", en.full_name())),
        },
        // Numbers go as strings, which the JSON mapping accepts for every
        // numeric type and which keeps 64-bit values exact; checked here so
        // that the error names the field.
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => number::<i32>(text, "a 32-bit integer")?,
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => number::<i64>(text, "a 64-bit integer")?,
        Kind::Uint32 | Kind::Fixed32 => number::<u32>(text, "an unsigned 32-bit integer")?,
        Kind::Uint64 | Kind::Fixed64 => number::<u64>(text, "an unsigned 64-bit integer")?,
        Kind::Float | Kind::Double => match text {
            "NaN" | "Infinity" | "-Infinity" => Value::String(text.to_owned()),
            _ => number::<f64>(text, "a number")?,
        },
        _ => Value::String(text.to_owned()),
    })
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<Value, String> {
    text.parse::<T>()
        .map(|_| Value::String(text.to_owned()))
        .map_err(|_| format!("expected {what}"))
}

/// Whether two dotted paths name the same field (either spelling).
fn same_path(message: &MessageDescriptor, a: &str, b: &str) -> bool {
    match (resolve(message, a), resolve(message, b)) {
        (Ok(x), Ok(y)) => x == y && a.split('.').count() == b.split('.').count(),
        _ => false,
    }
}

/// Sets `value` at the dotted `path` under proto field names, replacing what
/// was there under either spelling (path values win over the body).
fn set_path(root: &mut Map<String, Value>, message: &MessageDescriptor, path: &str, value: Value) {
    let mut object = root;
    let mut descriptor = message.clone();
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(field) = descriptor
            .get_field_by_name(part)
            .or_else(|| descriptor.get_field_by_json_name(part))
        else {
            return;
        };
        let json_name = field.json_name().to_owned();
        let name = field.name().to_owned();
        if i + 1 == parts.len() {
            object.remove(&json_name);
            object.insert(name, value);
            return;
        }
        let existing = object.remove(&json_name).or_else(|| object.remove(&name));
        let next = match existing {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        object.insert(name.clone(), Value::Object(next));
        let Some(Value::Object(inner)) = object.get_mut(&name) else {
            return;
        };
        object = inner;
        let Kind::Message(next_descriptor) = field.kind() else {
            return;
        };
        descriptor = next_descriptor;
    }
}
