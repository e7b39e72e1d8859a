//! Errors the edge answers with: gRPC statuses from upstream, and the edge's
//! own refusals, all as HTTP status + `google.rpc.Status`-shaped JSON
//! `{"code", "message", "details"}` with typed details (`@type`).

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Value, json};
use tonic::Code;

/// A refusal or failure to send back.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// The gRPC code it stands for.
    pub code: Code,
    /// For the developer calling the API.
    pub message: String,
    /// `google.rpc` details as JSON objects with `@type`.
    pub details: Vec<Value>,
    /// Extra headers (Allow, ...).
    pub headers: Vec<(http::HeaderName, String)>,
}

impl Problem {
    /// A problem with no details.
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// 400 INVALID_ARGUMENT.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, message)
    }

    /// 400 INVALID_ARGUMENT with a `BadRequest` naming `field`.
    pub fn bad_field(field: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        let mut problem = Self::bad_request(format!("invalid {field}: {description}"));
        problem.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": field, "description": description}],
        }));
        problem
    }

    /// The HTTP form of a gRPC status from upstream, details decoded from
    /// `grpc-status-details-bin` through `pool`.
    pub fn from_status(status: &tonic::Status, pool: &DescriptorPool) -> Self {
        let mut problem = Self::new(http_status(status.code()), status.code(), status.message());
        problem.details = details(status.details(), pool);
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body =
            json!({"code": self.code as i32, "message": self.message, "details": self.details});
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = value.parse() {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// grpc-gateway's mapping of gRPC codes to HTTP statuses, but for one
/// code: FAILED_PRECONDITION is 409 Conflict, not 400. Meshwork answers it
/// when a well-formed request meets the wrong state (an account frozen, a
/// payment already paid, a request id reused with another payload), which
/// is what 409 says; 400 stays for requests that are wrong in themselves,
/// so that a client (or schemathesis) can tell the two apart.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `details` of an encoded `google.rpc.Status`, as typed JSON.
fn details(encoded: &[u8], pool: &DescriptorPool) -> Vec<Value> {
    if encoded.is_empty() {
        return Vec::new();
    }
    let Some(descriptor) = pool.get_message_by_name("google.rpc.Status") else {
        return Vec::new();
    };
    let Ok(status) = DynamicMessage::decode(descriptor, encoded) else {
        return Vec::new();
    };
    let options = SerializeOptions::new().skip_default_fields(true);
    match status.serialize_with_options(serde_json::value::Serializer, &options) {
        Ok(Value::Object(mut object)) => match object.remove("details") {
            Some(Value::Array(details)) => details,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_grpc_code_like_grpc_gateway() {
        let table = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 409),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, want) in table {
            assert_eq!(http_status(code).as_u16(), want, "{code:?}");
        }
    }

    #[test]
    fn decodes_rich_details_as_typed_json() {
        use tonic_types::{ErrorDetails, StatusExt};
        let pool = DescriptorPool::decode(meshwork_proto::FILE_DESCRIPTOR_SET).unwrap();
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "bad",
            ErrorDetails::with_bad_request_violation("currency", "must be 3 letters"),
        );
        let problem = Problem::from_status(&status, &pool);
        assert_eq!(problem.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            problem.details[0]["@type"],
            "type.googleapis.com/google.rpc.BadRequest"
        );
        assert_eq!(
            problem.details[0]["fieldViolations"][0]["field"],
            "currency"
        );
    }
}
