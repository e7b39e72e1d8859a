//! A server for the test-only `meshwork.testing.v1.EchoService`: every
//! method answers with its request bytes and request metadata, so tests see
//! exactly what the edge sent.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use meshwork_gateway::edge::{Gateway, GatewayConfig};
use meshwork_gateway::{Readiness, router};
use meshwork_testkit::TestServer;
use prost_reflect::DescriptorPool;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::support::Edge;

/// The echo contract, compiled at test time with the real google/api files.
pub fn pool() -> DescriptorPool {
    let dir = env!("CARGO_MANIFEST_DIR");
    let mut compiler =
        protox::Compiler::new([format!("{dir}/tests/proto"), format!("{dir}/../proto")])
            .expect("compiler");
    compiler.include_imports(true);
    compiler
        .open_file("meshwork/testing/v1/echo.proto")
        .expect("echo.proto compiles");
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice()).expect("descriptors")
}

/// The gateway over an echo server.
pub async fn start() -> Edge {
    start_with(GatewayConfig::default()).await
}

/// The gateway over an echo server, configured.
pub async fn start_with(config: GatewayConfig) -> Edge {
    let server = TestServer::start(|grpc, _| {
        grpc.add_service(EchoServer);
    })
    .await;
    let gateway = Gateway::from_pool(pool(), |_| server.mesh_channel(), config).expect("routes");
    let (reporter, _) = tonic_health::server::health_reporter();
    Edge {
        router: router(Readiness::local(reporter), Some(Arc::new(gateway))),
        _server: Box::new(server),
    }
}

#[derive(Clone)]
struct EchoServer;

impl NamedService for EchoServer {
    const NAME: &'static str = "meshwork.testing.v1.EchoService";
}

impl tower::Service<http::Request<tonic::body::Body>> for EchoServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let streaming = request.uri().path().ends_with("/EchoStream");
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            Ok(if streaming {
                grpc.server_streaming(EchoStream, request).await
            } else {
                grpc.unary(Echo, request).await
            })
        })
    }
}

struct Echo;

impl UnaryService<Bytes> for Echo {
    type Response = Bytes;
    type Future = Ready<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let metadata = request.metadata().clone();
        let mut response = Response::new(request.into_inner());
        for key in metadata.keys() {
            if let tonic::metadata::KeyRef::Ascii(key) = key
                && !key.as_str().starts_with("grpc-")
                && !matches!(
                    key.as_str(),
                    "te" | "content-type" | "user-agent" | "traceparent" | "tracestate"
                )
                && let Some(value) = metadata.get(key.as_str())
            {
                response.metadata_mut().insert(key.clone(), value.clone());
            }
        }
        ready(Ok(response))
    }
}

/// Sends the request back `count` times, then fails with ABORTED if `flag`.
struct EchoStream;

impl tonic::server::ServerStreamingService<Bytes> for EchoStream {
    type Response = Bytes;
    type ResponseStream = futures::stream::Iter<std::vec::IntoIter<Result<Bytes, Status>>>;
    type Future = Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let bytes = request.into_inner();
        let descriptor = pool()
            .get_message_by_name("meshwork.testing.v1.EchoMessage")
            .expect("EchoMessage");
        let message = prost_reflect::DynamicMessage::decode(descriptor, bytes.clone())
            .expect("an EchoMessage");
        let count = message
            .get_field_by_name("count")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let fail = message
            .get_field_by_name("flag")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let mut items: Vec<Result<Bytes, Status>> = (0..count).map(|_| Ok(bytes.clone())).collect();
        if fail {
            items.push(Err(Status::aborted("the stream was cut short")));
        }
        ready(Ok(Response::new(futures::stream::iter(items))))
    }
}

#[derive(Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let remaining = src.remaining();
        Ok(Some(src.copy_to_bytes(remaining)))
    }
}
