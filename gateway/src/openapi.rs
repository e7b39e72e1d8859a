//! An OpenAPI 3.1 document of every REST route, generated from the same
//! descriptors the edge routes with: paths, parameters, request and response
//! schemas, enums, the error schema, and the protos' comments as descriptions.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::routes::{BodyRule, Route, RouteTable, is_scalar_like};
use crate::transcode::is_http_body;

/// How deep query parameters reach into nested messages (`a.b.c`).
const MAX_QUERY_DEPTH: usize = 3;

/// The document for `table`.
pub fn document(table: &RouteTable) -> Value {
    let mut schemas = Schemas::default();
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
                            Money is in integer minor units; 64-bit integers are JSON strings.",
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
                "schema": schemas.field(&field),
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
        op.insert(
            "summary".into(),
            json!(comment.lines().next().unwrap_or_default()),
        );
        op.insert("description".into(), json!(comment));
    }
    op.insert("parameters".into(), Value::Array(parameters));
    // A google.api.HttpBody is the raw body, of any media type.
    let raw = json!({"*/*": {"schema": {"type": "string", "format": "binary"}}});
    let body_content = match &route.body {
        BodyRule::None => None,
        BodyRule::All if is_http_body(&input) => Some(raw.clone()),
        BodyRule::All => Some(json!({"application/json": {"schema": schemas.message(&input)}})),
        BodyRule::Field(field) if field.kind().as_message().is_some_and(is_http_body) => {
            Some(raw.clone())
        }
        BodyRule::Field(field) => {
            Some(json!({"application/json": {"schema": schemas.field(field)}}))
        }
    };
    if let Some(content) = body_content {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": content}),
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
            _ => out.push(json!({
                "name": name,
                "in": "query",
                "required": false,
                "description": field_comment(&field).unwrap_or_default(),
                "schema": schemas.field(&field),
                "explode": true,
            })),
        }
    }
}

/// Schemas under construction, by full proto name.
#[derive(Default)]
struct Schemas {
    done: BTreeMap<String, Value>,
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
            for field in message.fields() {
                let mut schema = self.field(&field);
                if let (Some(description), Value::Object(object)) =
                    (field_comment(&field), &mut schema)
                {
                    object.insert("description".into(), json!(description));
                }
                properties.insert(field.json_name().to_owned(), schema);
            }
            let mut schema =
                json!({"type": "object", "properties": properties, "additionalProperties": false});
            if let Some(description) = comment(&message.parent_file(), message.path()) {
                schema["description"] = json!(description);
            }
            self.done.insert(name.clone(), schema);
        }
        Self::reference(&name)
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
                // An unset message field is emitted as null.
                if field.is_list() || field.is_map() || is_scalar_like(&message) {
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
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"})
        }
        Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "string", "format": "uint64", "pattern": "^[0-9]+$"})
        }
        Kind::Float | Kind::Double => json!({"type": "number"}),
        Kind::Message(_) | Kind::Enum(_) => json!({}),
    }
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
        assert_eq!(account["properties"]["createTime"]["format"], "date-time");
        assert_eq!(
            schemas["meshwork.finance.account.v1.AccountState"]["enum"][1],
            "ACCOUNT_STATE_ACTIVE"
        );
        assert_eq!(
            schemas["meshwork.type.v1.Money"]["properties"]["amountMinor"]["format"],
            "int64"
        );
        assert!(schemas["google.rpc.Status"].is_object());
    }
}
