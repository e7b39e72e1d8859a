//! Test support shared by every service's integration tests.
//!
//! - [`Backend`]: where a test's storage lives. Every storage test runs on
//!   the embedded defaults (a fresh SQLite file, the in-process cache) and on
//!   real servers (a fresh PostgreSQL schema, a fresh Redis namespace) from
//!   `MESHWORK_TEST_DATABASE_URL` and `MESHWORK_TEST_REDIS_URL`. Without
//!   those the server variants are skipped with a message, except under
//!   `CI=true`, where they fail: CI never skips silently.
//! - [`Mesh`]: any set of targets started from their descriptors as `meshwork
//!   up` starts them, on 127.0.0.1:0 with fresh storage, optionally behind
//!   the REST edge.
//! - [`TestServer`]: the real gRPC server on 127.0.0.1:0, for a service that
//!   is no target (the edge's test services).
//! - [`traces`]: an in-memory span exporter behind the real telemetry setup.
//! - [`TcpProxy`]: a proxy that can cut a service off from its database.
//! - [`reason`], [`violated_fields`], [`eventually`]: reading refusals and
//!   waiting for background work.

mod backend;
mod mesh;
mod proxy;
mod server;
mod serving;
mod status;
mod traces;

pub use backend::Backend;
pub use mesh::{Mesh, MeshBuilder};
pub use proxy::{TcpProxy, target_of, with_host_port};
pub use server::TestServer;
pub use status::{eventually, reason, violated_fields};
pub use traces::{spans_of_trace, traces};

/// Defines `mod $name` with one test per backend, `embedded` and `servers`,
/// both running the same body.
///
/// ```ignore
/// on_each_backend!(async fn deposit_is_visible(backend) { ... });
/// ```
#[macro_export]
macro_rules! on_each_backend {
    ($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($backend: $crate::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                run($crate::Backend::Embedded).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn servers() {
                if let Some(backend) = $crate::Backend::servers() {
                    run(backend).await
                }
            }
        }
    };
}
