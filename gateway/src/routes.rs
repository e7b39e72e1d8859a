//! The route table: every `google.api.http` rule of every method in the
//! descriptor pool (with its `additional_bindings`), checked at start-up.
//!
//! Nothing here is per service: a newly annotated RPC is a route after a
//! rebuild. Start-up fails, naming both methods, when two rules of the same
//! HTTP method can never be told apart, and when a rule names fields the
//! request or response does not have.

use http::{Method, StatusCode};
use meshwork_proto::google::api::{HttpRule, http_rule::Pattern};
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};

use crate::template::{PathTemplate, TemplateError};

/// Where the request message comes from besides the path.
#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body; fields not bound by the path come from the query string.
    None,
    /// `body: "*"`: every field not bound by the path comes from the body.
    All,
    /// `body: "field"`: that field is the body, the rest from the query.
    Field(FieldDescriptor),
}

/// One HTTP binding of one gRPC method.
#[derive(Debug, Clone)]
pub struct Route {
    /// GET, POST, ... (or a custom verb).
    pub http_method: Method,
    /// The path template.
    pub template: PathTemplate,
    /// Where the rest of the request comes from.
    pub body: BodyRule,
    /// `response_body`: the one response field sent as the body.
    pub response_body: Option<FieldDescriptor>,
    /// The gRPC method.
    pub method: MethodDescriptor,
    /// `/package.Service/Method`.
    pub grpc_path: String,
    /// The status of a successful answer (`meshwork.api.v1.http_success_code`).
    pub success: StatusCode,
    /// Served without a bearer token (`meshwork.api.v1.public_route`).
    pub public: bool,
    /// Request headers passed on as metadata for this method
    /// (`meshwork.api.v1.forwarded_headers`).
    pub forwarded_headers: Vec<http::HeaderName>,
}

/// What a method's own options (`meshwork.api.v1`) say about its routes.
#[derive(Debug, Clone)]
struct MethodContract {
    success: StatusCode,
    public: bool,
    forwarded_headers: Vec<http::HeaderName>,
}

/// What looking up a request found.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route, and the decoded path variables.
    Found(&'a Route, Vec<(String, String)>),
    /// The path exists, with other HTTP methods.
    MethodNotAllowed(Vec<Method>),
    /// No route has this path.
    NotFound,
}

/// A rule that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// See [`TemplateError`].
    #[error("{method}: {source}")]
    Template {
        method: String,
        source: TemplateError,
    },
    /// Two rules that match the same requests.
    #[error("{first} and {second} both bind {http_method} {shape}")]
    Conflict {
        first: String,
        second: String,
        http_method: Method,
        shape: String,
    },
    /// A rule names a field the message lacks (or cannot bind).
    #[error("{method}: {problem}")]
    Field { method: String, problem: String },
}

/// Every route, most specific first.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Reads every method's `google.api.http` rule from `pool`.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Self, RouteError> {
        let Some(http) = pool.get_extension_by_name("google.api.http") else {
            return Ok(Self { routes: Vec::new() });
        };
        let success_code = pool.get_extension_by_name("meshwork.api.v1.http_success_code");
        let public_route = pool.get_extension_by_name("meshwork.api.v1.public_route");
        let forwarded = pool.get_extension_by_name("meshwork.api.v1.forwarded_headers");
        let mut routes = Vec::new();
        for service in pool.services() {
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&http) {
                    continue;
                }
                if method.is_client_streaming() {
                    // Only unary and server-streaming methods map onto one HTTP request.
                    tracing::warn!(
                        method = method.full_name(),
                        "client-streaming method not exposed over REST"
                    );
                    continue;
                }
                let rule: HttpRule = match options.get_extension(&http).as_message() {
                    Some(message) => message.transcode_to().map_err(|e| RouteError::Field {
                        method: method.full_name().to_owned(),
                        problem: format!("unreadable google.api.http rule: {e}"),
                    })?,
                    None => continue,
                };
                let success = success_code
                    .as_ref()
                    .filter(|ext| options.has_extension(ext))
                    .and_then(|ext| options.get_extension(ext).as_i32())
                    .and_then(|code| StatusCode::from_u16(u16::try_from(code).ok()?).ok())
                    .unwrap_or(StatusCode::OK);
                let public = public_route
                    .as_ref()
                    .filter(|ext| options.has_extension(ext))
                    .and_then(|ext| options.get_extension(ext).as_bool())
                    .unwrap_or(false);
                let mut forwarded_headers = Vec::new();
                if let Some(ext) = forwarded.as_ref().filter(|ext| options.has_extension(ext))
                    && let Some(names) = options.get_extension(ext).as_list()
                {
                    for name in names.iter().filter_map(|v| v.as_str()) {
                        let header =
                            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                                RouteError::Field {
                                    method: method.full_name().to_owned(),
                                    problem: format!(
                                        "forwarded_headers: {name:?} is not a header name"
                                    ),
                                }
                            })?;
                        forwarded_headers.push(header);
                    }
                }
                let contract = MethodContract {
                    success,
                    public,
                    forwarded_headers,
                };
                let bindings =
                    std::iter::once(rule.clone()).chain(rule.additional_bindings.iter().cloned());
                for binding in bindings {
                    routes.push(route(&method, &binding, &contract)?);
                }
            }
        }
        routes.sort_by_key(|route| std::cmp::Reverse(route.template.specificity()));
        for (i, a) in routes.iter().enumerate() {
            for b in &routes[i + 1..] {
                if a.http_method == b.http_method && a.template.shape() == b.template.shape() {
                    return Err(RouteError::Conflict {
                        first: a.method.full_name().to_owned(),
                        second: b.method.full_name().to_owned(),
                        http_method: a.http_method.clone(),
                        shape: a.template.as_str().to_owned(),
                    });
                }
            }
        }
        Ok(Self { routes })
    }

    /// Every route.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `path` (percent-encoded, no query).
    pub fn find(&self, method: &Method, path: &str) -> Lookup<'_> {
        let mut allowed = Vec::new();
        let mut verb_matched = false;
        for route in &self.routes {
            if let Some(bindings) = route.template.matches(path) {
                // A path that names a custom verb belongs to the verb's
                // routes: `GET /x/1:freeze` is not `GET /x/{id}` with id "1:freeze".
                if verb_matched && !route.template.has_verb() {
                    break;
                }
                verb_matched |= route.template.has_verb();
                if route.http_method == *method {
                    return Lookup::Found(route, bindings);
                }
                if !allowed.contains(&route.http_method) {
                    allowed.push(route.http_method.clone());
                }
            }
        }
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::MethodNotAllowed(allowed)
        }
    }
}

fn route(
    method: &MethodDescriptor,
    rule: &HttpRule,
    contract: &MethodContract,
) -> Result<Route, RouteError> {
    let name = method.full_name().to_owned();
    let field_error = |problem: String| RouteError::Field {
        method: name.clone(),
        problem,
    };
    let (http_method, template) = match &rule.pattern {
        Some(Pattern::Get(t)) => (Method::GET, t.clone()),
        Some(Pattern::Put(t)) => (Method::PUT, t.clone()),
        Some(Pattern::Post(t)) => (Method::POST, t.clone()),
        Some(Pattern::Delete(t)) => (Method::DELETE, t.clone()),
        Some(Pattern::Patch(t)) => (Method::PATCH, t.clone()),
        Some(Pattern::Custom(custom)) => (
            Method::from_bytes(custom.kind.as_bytes())
                .map_err(|_| field_error(format!("bad custom method {:?}", custom.kind)))?,
            custom.path.clone(),
        ),
        None => return Err(field_error("google.api.http rule without a pattern".into())),
    };
    let template = PathTemplate::parse(&template).map_err(|source| RouteError::Template {
        method: name.clone(),
        source,
    })?;
    let input = method.input();
    for path in template.field_paths() {
        let field = resolve(&input, path).map_err(&field_error)?;
        if field.is_list()
            || field.is_map()
            || matches!(field.kind(), Kind::Message(ref m) if !is_scalar_like(m))
        {
            return Err(field_error(format!(
                "path variable {path} must be a singular scalar field"
            )));
        }
    }
    let body = match rule.body.as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::All,
        field => BodyRule::Field(input.get_field_by_name(field).ok_or_else(|| {
            field_error(format!(
                "body field {field} is not in {}",
                input.full_name()
            ))
        })?),
    };
    let response_body = match rule.response_body.as_str() {
        "" => None,
        field => Some(method.output().get_field_by_name(field).ok_or_else(|| {
            field_error(format!(
                "response_body field {field} is not in {}",
                method.output().full_name()
            ))
        })?),
    };
    Ok(Route {
        http_method,
        template,
        body,
        response_body,
        grpc_path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
        method: method.clone(),
        success: contract.success,
        public: contract.public,
        forwarded_headers: contract.forwarded_headers.clone(),
    })
}

/// The field at a dotted path of proto field names.
pub fn resolve(message: &MessageDescriptor, path: &str) -> Result<FieldDescriptor, String> {
    let mut current = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = current
            .get_field_by_name(part)
            .or_else(|| current.get_field_by_json_name(part))
            .ok_or_else(|| format!("{path}: no field {part} in {}", current.full_name()))?;
        if parts.peek().is_none() {
            return Ok(field);
        }
        match field.kind() {
            Kind::Message(next) if !field.is_list() && !field.is_map() => current = next,
            _ => return Err(format!("{path}: {part} is not a message field")),
        }
    }
    Err(format!("empty field path {path:?}"))
}

/// Well-known types whose JSON form is a string or number, so a path or query
/// value can set them.
pub fn is_scalar_like(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.BoolValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let pool = DescriptorPool::decode(meshwork_proto::FILE_DESCRIPTOR_SET).unwrap();
        RouteTable::from_pool(&pool).unwrap()
    }

    #[test]
    fn every_annotated_account_method_is_routed() {
        let table = table();
        let route = |m: Method, p: &str| match table.find(&m, p) {
            Lookup::Found(route, bindings) => (route.method.name().to_owned(), bindings),
            other => panic!("{m} {p}: {other:?}"),
        };
        assert_eq!(route(Method::POST, "/v1/accounts").0, "CreateAccount");
        assert_eq!(route(Method::GET, "/v1/accounts").0, "ListAccounts");
        assert_eq!(
            route(Method::POST, "/v1/accounts:lookup").0,
            "LookupAccount"
        );
        let (name, bindings) = route(Method::POST, "/v1/accounts/acc_1:freeze");
        assert_eq!(
            (name.as_str(), bindings),
            (
                "FreezeAccount",
                vec![("account_id".to_owned(), "acc_1".to_owned())]
            )
        );
        assert_eq!(route(Method::GET, "/v1/accounts/acc_1").0, "GetAccount");
        assert_eq!(
            route(Method::GET, "/v1/accounts/acc_1/balance").0,
            "GetBalance"
        );
        assert!(
            matches!(table.find(&Method::DELETE, "/v1/accounts/acc_1"), Lookup::MethodNotAllowed(m) if m == [Method::GET])
        );
        assert!(matches!(
            table.find(&Method::GET, "/v2/nothing"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn creates_answer_201_from_the_contract() {
        let table = table();
        let Lookup::Found(create, _) = table.find(&Method::POST, "/v1/accounts") else {
            panic!()
        };
        assert_eq!(create.success, StatusCode::CREATED);
        let Lookup::Found(get, _) = table.find(&Method::GET, "/v1/accounts/a") else {
            panic!()
        };
        assert_eq!(get.success, StatusCode::OK);
    }

    #[test]
    fn the_contract_makes_callbacks_public_and_names_their_headers() {
        let table = table();
        let Lookup::Found(wechat, _) =
            table.find(&Method::POST, "/v1/payment-notifications/wechat-pay")
        else {
            panic!()
        };
        assert!(wechat.public);
        let names: Vec<&str> = wechat
            .forwarded_headers
            .iter()
            .map(|h| h.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "wechatpay-signature",
                "wechatpay-timestamp",
                "wechatpay-nonce",
                "wechatpay-serial"
            ]
        );
        let Lookup::Found(create, _) = table.find(&Method::POST, "/v1/payments") else {
            panic!()
        };
        assert!(!create.public && create.forwarded_headers.is_empty());
    }
}
