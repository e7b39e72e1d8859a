//! An OpenAPI 3.1 document of every REST route, generated from the same
//! descriptors the edge routes with: paths, parameters, request and response
//! schemas, enums, the error schema, and the protos' comments as descriptions.

use std::collections::{BTreeMap, BTreeSet};

use meshwork_proto::validate::Validator;
use prost_reflect::{EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::routes::{BodyRule, Route, RouteTable, is_scalar_like};
use crate::transcode::is_http_body;

/// How deep query parameters reach into nested messages (`a.b.c`).
const MAX_QUERY_DEPTH: usize = 3;

/// The document for `table`.
pub fn document(table: &RouteTable) -> Value {
    // The services check these rules; the document states them. A pool
    // whose rules cannot be evaluated documents none (its servers would
    // not start).
    let rules = table
        .routes()
        .first()
        .and_then(|r| Validator::new(r.method.parent_pool()).ok());
    let mut schemas = Schemas {
        rules,
        ..Schemas::default()
    };
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for route in table.routes() {
        let operation = operation(route, &mut schemas);
        let verb = route.http_method.as_str().to_ascii_lowercase();
        paths
            .entry(openapi_path(route))
            .or_default()
            .insert(verb, operation);
    }
    schemas.error();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Meshwork API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST/JSON edge of the Meshwork gRPC services, generated from their protobuf contracts. \
                            Money is in integer minor units; 64-bit integers are JSON strings in answers \
                            (requests may send strings or numbers).",
        },
        "paths": paths,
        "components": {"schemas": schemas.done},
    })
}

/// The OpenAPI name of a path variable: a nested field path with `_` for
/// `.` (`{rule.rule_id}` → `{rule_rule_id}`), since tools that fill in
/// templates (schemathesis, many client generators) read a dot as attribute
/// access. The URL itself is the same.
fn param_name(field_path: &str) -> String {
    field_path.replace('.', "_")
}

/// `/v1/{name=shelves/*}:verb` → `/v1/{name}:verb`, `{a.b}` → `{a_b}`.
fn openapi_path(route: &Route) -> String {
    let mut out = String::new();
    let mut chars = route.template.as_str().chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' {
            out.push('{');
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                out.push(c);
            }
            let open = out.rfind('{').unwrap_or(0);
            if let Some(eq) = out.rfind('=')
                && eq > open
            {
                out.truncate(eq);
            }
            let name = param_name(&out[open + 1..]);
            out.truncate(open + 1);
            out.push_str(&name);
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

fn operation(route: &Route, schemas: &mut Schemas) -> Value {
    let method = &route.method;
    let service = method.parent_service();
    let input = method.input();
    let bound: BTreeSet<String> = route.template.field_paths().map(str::to_owned).collect();
    let mut parameters = Vec::new();
    for path in &bound {
        if let Ok(field) = crate::routes::resolve(&input, path) {
            parameters.push(json!({
                "name": param_name(path),
                "in": "path",
                "required": true,
                "description": field_comment(&field).unwrap_or_default(),
                "schema": non_null(schemas.ruled_field(&field).0),
            }));
        }
    }
    let skip_body_field = match &route.body {
        BodyRule::All => None,
        BodyRule::Field(field) => Some(field.name().to_owned()),
        BodyRule::None => Some(String::new()),
    };
    if let Some(skip) = skip_body_field {
        query_parameters(&input, "", &bound, &skip, 0, schemas, &mut parameters);
    }
    let mut op = Map::new();
    op.insert(
        "operationId".into(),
        json!(format!("{}_{}", service.name(), method.name())),
    );
    op.insert("tags".into(), json!([service.name()]));
    if let Some(comment) = comment(&method.parent_file(), method.path()) {
        op.insert("summary".into(), json!(first_sentence(&comment)));
        op.insert("description".into(), json!(comment));
    }
    op.insert("parameters".into(), Value::Array(parameters));
    // A google.api.HttpBody is the raw body, of any media type.
    let raw = json!({"*/*": {"schema": {"type": "string", "format": "binary"}}});
    // A body that may be empty (every field optional) is not required.
    let body_content = match &route.body {
        BodyRule::None => None,
        BodyRule::All if is_http_body(&input) => Some((raw.clone(), true)),
        BodyRule::All => {
            let schema = schemas.body(&input, &bound);
            let resolved = match schema["$ref"].as_str() {
                Some(r) => &schemas.done[r.trim_start_matches("#/components/schemas/")],
                None => &schema,
            };
            let required = resolved["required"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
            Some((json!({"application/json": {"schema": schema}}), required))
        }
        BodyRule::Field(field) if field.kind().as_message().is_some_and(is_http_body) => {
            Some((raw.clone(), true))
        }
        BodyRule::Field(field) => {
            let (schema, required) = schemas.ruled_field(field);
            Some((json!({"application/json": {"schema": schema}}), required))
        }
    };
    if let Some((content, required)) = body_content {
        op.insert(
            "requestBody".into(),
            json!({"required": required, "content": content}),
        );
    }
    let response_content = match &route.response_body {
        None if is_http_body(&method.output()) => raw,
        Some(field) if field.kind().as_message().is_some_and(is_http_body) => raw,
        Some(field) => json!({"application/json": {"schema": schemas.field(field)}}),
        None => json!({"application/json": {"schema": schemas.message(&method.output())}}),
    };
    let mut responses = Map::new();
    responses.insert(
        route.success.as_u16().to_string(),
        json!({"description": "Success.", "content": response_content}),
    );
    responses.insert(
        "default".into(),
        json!({
            "description": "An error: the gRPC status mapped to HTTP, with google.rpc details.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}},
        }),
    );
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn query_parameters(
    message: &MessageDescriptor,
    prefix: &str,
    bound: &BTreeSet<String>,
    body_field: &str,
    depth: usize,
    schemas: &mut Schemas,
    out: &mut Vec<Value>,
) {
    for field in message.fields() {
        let name = format!("{prefix}{}", field.name());
        if bound.contains(&name) || (depth == 0 && field.name() == body_field) || field.is_map() {
            continue;
        }
        match field.kind() {
            Kind::Message(inner) if !is_scalar_like(&inner) => {
                if !field.is_list() && depth + 1 < MAX_QUERY_DEPTH {
                    query_parameters(
                        &inner,
                        &format!("{name}."),
                        bound,
                        body_field,
                        depth + 1,
                        schemas,
                        out,
                    );
                }
            }
            _ => {
                let (schema, required) = schemas.ruled_field(&field);
                let schema = non_null(schema);
                out.push(json!({
                    "name": name,
                    "in": "query",
                    "required": required && depth == 0,
                    "description": field_comment(&field).unwrap_or_default(),
                    "schema": schema,
                    "explode": true,
                }))
            }
        }
    }
}

/// Schemas under construction, by full proto name.
#[derive(Default)]
struct Schemas {
    done: BTreeMap<String, Value>,
    /// The contracts' validation rules.
    rules: Option<Validator>,
}

impl Schemas {
    fn reference(name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn message(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if !self.done.contains_key(&name) {
            self.done.insert(name.clone(), Value::Null); // placeholder against recursion
            let mut properties = Map::new();
            let mut required = Vec::new();
            for field in message.fields() {
                let (mut schema, needed) = self.ruled_field(&field);
                if let (Some(description), Value::Object(object)) =
                    (field_comment(&field), &mut schema)
                {
                    object.insert("description".into(), json!(description));
                }
                if needed {
                    required.push(json!(field.json_name()));
                } else {
                    // proto3 JSON reads null as the field's default.
                    schema = nullable(schema);
                }
                properties.insert(field.json_name().to_owned(), schema);
            }
            let mut schema =
                json!({"type": "object", "properties": properties, "additionalProperties": false});
            if !required.is_empty() {
                schema["required"] = Value::Array(required);
            }
            if let Some(plan) = self
                .rules
                .as_ref()
                .and_then(|r| r.plan(message.full_name()))
            {
                let choices: Vec<Value> = plan
                    .required_oneofs
                    .iter()
                    .map(|oneof| {
                        json!({"oneOf": oneof.fields.iter()
                            .map(|f| json!({
                                "required": [f.json_name()],
                                "properties": {f.json_name(): {"not": {"type": "null"}}},
                            }))
                            .collect::<Vec<_>>()})
                    })
                    .collect();
                if !choices.is_empty() {
                    schema["allOf"] = Value::Array(choices);
                }
            }
            if let Some(description) = comment(&message.parent_file(), message.path()) {
                schema["description"] = json!(description);
            }
            self.done.insert(name.clone(), schema);
        }
        Self::reference(&name)
    }

    /// A field's schema with its contract's rules, and whether the field
    /// must be given.
    fn ruled_field(&mut self, field: &FieldDescriptor) -> (Value, bool) {
        let plan = self
            .rules
            .as_ref()
            .and_then(|r| r.plan(field.parent_message().full_name()))
            .and_then(|p| p.field(field.name()))
            .cloned();
        let needed = match (&self.rules, &plan) {
            (Some(rules), Some(plan)) => rules.needs_value(plan),
            _ => false,
        };
        let mut schema = self.field(field);
        if needed
            && let Kind::Message(message) = field.kind()
            && !field.is_list()
            && !field.is_map()
        {
            // Given, so never null.
            schema = self.message(&message);
        }
        if let Some(plan) = &plan {
            crate::schema_rules::constrain(&mut schema, plan);
        }
        (schema, needed)
    }

    /// The body of a `body: "*"` route: the request without the fields its
    /// path binds.
    fn body(&mut self, input: &MessageDescriptor, bound: &BTreeSet<String>) -> Value {
        let reference = self.message(input);
        if bound.is_empty() {
            return reference;
        }
        let mut schema = self.done[input.full_name()].clone();
        for path in bound {
            let Some(field) = input.get_field_by_name(path) else {
                continue;
            };
            let name = field.json_name();
            if let Some(Value::Object(properties)) = schema.get_mut("properties") {
                properties.remove(name);
            }
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|r| r != name);
            }
        }
        if schema["required"].as_array().is_some_and(Vec::is_empty) {
            schema.as_object_mut().map(|o| o.remove("required"));
        }
        schema
    }

    fn enumeration(&mut self, en: &EnumDescriptor) -> Value {
        let name = en.full_name().to_owned();
        if !self.done.contains_key(&name) {
            let values: Vec<String> = en.values().map(|v| v.name().to_owned()).collect();
            let mut schema = json!({"type": "string", "enum": values});
            if let Some(description) = comment(&en.parent_file(), en.path()) {
                schema["description"] = json!(description);
            }
            self.done.insert(name.clone(), schema);
        }
        Self::reference(&name)
    }

    fn field(&mut self, field: &FieldDescriptor) -> Value {
        let single = match field.kind() {
            Kind::Message(message) => {
                let schema = self.message(&message);
                // An unset message field is emitted as null (and null is
                // read as unset).
                if field.is_list() || field.is_map() || is_wrapper(&message) {
                    schema
                } else {
                    json!({"anyOf": [schema, {"type": "null"}]})
                }
            }
            Kind::Enum(en) => self.enumeration(&en),
            kind => scalar(&kind),
        };
        if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field(),
                _ => return json!({"type": "object"}),
            };
            let value_schema = self.field(&value);
            json!({"type": "object", "additionalProperties": value_schema})
        } else if field.is_list() {
            json!({"type": "array", "items": single})
        } else {
            single
        }
    }

    /// `google.rpc.Status` as the edge sends it.
    fn error(&mut self) {
        self.done.insert(
            "google.rpc.Status".into(),
            json!({
                "type": "object",
                "description": "An error: the gRPC code, a message for developers, and google.rpc details.",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "integer", "description": "The google.rpc.Code."},
                    "message": {"type": "string"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["@type"],
                            "properties": {"@type": {"type": "string"}},
                            "additionalProperties": true,
                        },
                    },
                },
            }),
        );
    }
}

fn scalar(kind: &Kind) -> Value {
    match kind {
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        // A string in answers; a string or a number in requests.
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({"type": ["integer", "string"], "format": "int64", "pattern": "^-?[0-9]+$",
                   "minimum": i64::MIN, "maximum": i64::MAX})
        }
        Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": ["integer", "string"], "format": "uint64", "pattern": "^[0-9]+$",
                   "minimum": 0, "maximum": u64::MAX})
        }
        Kind::Float | Kind::Double => json!({"type": "number"}),
        Kind::Message(_) | Kind::Enum(_) => json!({}),
    }
}

/// `schema`, or null.
fn nullable(mut schema: Value) -> Value {
    let null = json!({"type": "null"});
    if schema["anyOf"]
        .as_array()
        .is_some_and(|a| a.contains(&null))
    {
        return schema;
    }
    match schema.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            schema["type"] = json!([t, "null"]);
            schema
        }
        Some(Value::Array(types)) => {
            if !types.contains(&json!("null")) {
                types.push(json!("null"));
            }
            schema
        }
        _ => json!({"anyOf": [schema, {"type": "null"}]}),
    }
}

/// A parameter's schema: a query string or a path has no null.
fn non_null(schema: Value) -> Value {
    if let Some([first, Value::Object(null)]) = schema["anyOf"].as_array().map(Vec::as_slice)
        && null.get("type") == Some(&json!("null"))
    {
        return first.clone();
    }
    schema
}

/// Wrapper types, whose schema already allows null.
fn is_wrapper(message: &MessageDescriptor) -> bool {
    message.full_name().ends_with("Value") && message.package_name() == "google.protobuf"
}

fn well_known(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"})
        }
        "google.protobuf.FieldMask" => json!({"type": "string"}),
        "google.protobuf.StringValue" => json!({"type": ["string", "null"]}),
        "google.protobuf.BytesValue" => {
            json!({"type": ["string", "null"], "contentEncoding": "base64"})
        }
        "google.protobuf.BoolValue" => json!({"type": ["boolean", "null"]}),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            json!({"type": ["integer", "null"]})
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": ["string", "null"]})
        }
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => {
            json!({"type": ["number", "null"]})
        }
        "google.protobuf.Struct" => json!({"type": "object"}),
        "google.protobuf.Value" | "google.protobuf.Any" => json!({}),
        "google.protobuf.Empty" => json!({"type": "object", "additionalProperties": false}),
        _ => return None,
    })
}

/// The first sentence of a comment's first paragraph, on one line: a
/// summary cut at the comment's line break would stop mid-sentence.
fn first_sentence(comment: &str) -> String {
    let paragraph = comment
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match paragraph.find(". ") {
        Some(end) => paragraph[..=end].to_owned(),
        None => paragraph,
    }
}

fn field_comment(field: &FieldDescriptor) -> Option<String> {
    comment(&field.parent_file(), field.path())
}

/// The leading comment at `path` in `file`'s source info.
fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?.trim();
    (!text.is_empty()).then(|| text.lines().map(str::trim).collect::<Vec<_>>().join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;

    #[test]
    fn documents_every_route_with_schemas_and_comments() {
        let pool = DescriptorPool::decode(meshwork_proto::FILE_DESCRIPTOR_SET).unwrap();
        let doc = document(&RouteTable::from_pool(&pool).unwrap());
        assert_eq!(doc["openapi"], "3.1.0");
        let create = &doc["paths"]["/v1/accounts"]["post"];
        assert_eq!(create["operationId"], "AccountService_CreateAccount");
        assert!(create["responses"]["201"].is_object(), "{create}");
        assert!(
            create["description"]
                .as_str()
                .unwrap()
                .contains("Opens an account")
        );
        // A summary is a whole sentence, however the comment wraps.
        let deposit = &doc["paths"]["/v1/accounts/{account_id}:deposit"]["post"];
        assert_eq!(
            deposit["summary"],
            "Credits an account from the currency's settlement account (money entering the system), \
             as one journaled double-entry posting."
        );
        assert_eq!(first_sentence("One. Two\nthree.\n\nOther."), "One.");
        assert_eq!(first_sentence("No stop\nat all"), "No stop at all");
        let freeze = &doc["paths"]["/v1/accounts/{account_id}:freeze"]["post"];
        assert_eq!(freeze["parameters"][0]["in"], "path");
        let update = &doc["paths"]["/v1/risk/rules/{rule_rule_id}"]["patch"];
        assert_eq!(update["parameters"][0]["name"], "rule_rule_id");
        let list = &doc["paths"]["/v1/accounts"]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["owner_id", "page_size", "page_token"]);
        let schemas = &doc["components"]["schemas"];
        let account = &schemas["meshwork.finance.account.v1.Account"];
        assert_eq!(
            account["properties"]["createTime"]["anyOf"][0]["format"],
            "date-time"
        );
        // The contracts' rules: required fields, lengths, patterns, ranges;
        // the body of a path-bound route without its path fields.
        let body = &create["requestBody"];
        assert_eq!(body["required"], true);
        let request = &schemas["meshwork.finance.account.v1.CreateAccountRequest"];
        assert_eq!(
            request["required"],
            json!(["requestId", "ownerId", "currency", "type"])
        );
        assert_eq!(request["properties"]["currency"]["pattern"], "^[A-Z]{3}$");
        assert_eq!(request["properties"]["ownerId"]["maxLength"], 128);
        assert_eq!(
            request["properties"]["type"]["enum"],
            json!([
                "ACCOUNT_TYPE_CHECKING",
                "ACCOUNT_TYPE_SAVINGS",
                "ACCOUNT_TYPE_MERCHANT"
            ])
        );
        let freeze_body = &freeze["requestBody"]["content"]["application/json"]["schema"];
        assert!(
            freeze_body["properties"]["accountId"].is_null(),
            "{freeze_body}"
        );
        assert_eq!(freeze_body["required"], json!(["requestId", "reason"]));
        let amount = &schemas["meshwork.type.v1.PositiveMoney"]["properties"]["amountMinor"];
        assert_eq!(amount["exclusiveMinimum"], 0);
        assert_eq!(amount["maximum"], 1_000_000_000_000_000_i64);
        let size = list["parameters"][1]["schema"].clone();
        assert_eq!(
            (size["minimum"].clone(), size["maximum"].clone()),
            (json!(0), json!(500))
        );
        // An optional filter's zero value passes.
        let owner = &list["parameters"][0]["schema"];
        assert!(
            owner["pattern"].as_str().unwrap().starts_with("^$|"),
            "{owner}"
        );
        assert_eq!(
            schemas["meshwork.finance.account.v1.AccountState"]["enum"][1],
            "ACCOUNT_STATE_ACTIVE"
        );
        assert_eq!(
            schemas["meshwork.type.v1.Money"]["properties"]["amountMinor"]["format"],
            "int64"
        );
        assert!(schemas["google.rpc.Status"].is_object());
        // JSON Schema has no place for a bare null (a `null` slipped into a
        // json! macro once, as the literal rather than a variable).
        fn nulls(value: &Value, at: &str, out: &mut Vec<String>) {
            match value {
                Value::Null => out.push(at.to_owned()),
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        nulls(v, &format!("{at}/{i}"), out)
                    }
                }
                Value::Object(map) => {
                    for (k, v) in map {
                        nulls(v, &format!("{at}/{k}"), out)
                    }
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        nulls(&doc, "", &mut found);
        assert_eq!(found, Vec::<String>::new());
    }
}
