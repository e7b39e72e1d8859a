//! Server-streaming RPCs over HTTP: one JSON object per line
//! (`application/x-ndjson`, grpc-gateway's `{"result": ...}` framing), or
//! Server-Sent Events when the client asks for `text/event-stream`. An error
//! in the middle of the stream is sent as a final `{"error": {...}}` object
//! (an `error` event in SSE), since the HTTP status is long gone by then.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};

use crate::problem::Problem;
use crate::routes::Route;
use crate::transcode::render_response;

/// The streaming response of `route` from `stream`.
pub fn respond(
    route: Route,
    pool: DescriptorPool,
    stream: tonic::Streaming<DynamicMessage>,
    sse: bool,
) -> Response {
    let frames = stream
        .map(move |item| match item {
            Ok(message) => (json!({"result": render_response(&route, &message)}), false),
            Err(status) => {
                let problem = Problem::from_status(&status, &pool);
                let error = json!({"code": problem.code as i32, "message": problem.message, "details": problem.details});
                (json!({"error": error}), true)
            }
        })
        // Nothing follows an error.
        .scan(false, |ended, (frame, is_error)| {
            let out = if *ended { None } else { Some((frame, is_error)) };
            *ended |= is_error;
            std::future::ready(out)
        })
        .map(move |(frame, is_error): (Value, bool)| {
            let text = if sse {
                let event = if is_error { "event: error\n" } else { "" };
                format!("{event}data: {frame}\n\n")
            } else {
                format!("{frame}\n")
            };
            Ok::<_, std::convert::Infallible>(Bytes::from(text))
        });
    let mut response = (StatusCode::OK, axum::body::Body::from_stream(frames)).into_response();
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
