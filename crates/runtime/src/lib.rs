//! What every Meshwork service shares, written once.
//!
//! A service crate builds its domain on top of these pieces and never
//! re-implements them:
//! - [`config`]: flags with `MESHWORK_*` environment fallbacks;
//! - [`contracts`]: which methods exist and which may be retried;
//! - [`telemetry`]: `tracing` + OpenTelemetry (OTLP from `OTEL_*`), W3C
//!   propagation, JSON logs carrying trace ids;
//! - [`metrics`]: RED metrics per RPC, exposed in Prometheus text format;
//! - [`server`]: the gRPC server bootstrap (health, reflection, limits, the
//!   server trace layer, graceful shutdown);
//! - [`client`]: channels to other services with the client trace layer,
//!   deadline propagation and retries of idempotent methods;
//! - [`deadline`]: the caller's deadline, carried across hops as `grpc-timeout`;
//! - [`caller`]: who a call is for (the edge's verified subject), carried
//!   across hops;
//! - [`health`]: dependency-aware `grpc.health.v1` statuses;
//! - [`db`], [`idempotency`], [`cache`]: storage, request-id claims, the
//!   multi-level cache; [`claimed`]: the claimed transaction every
//!   idempotent mutation runs in (claim, replay, work, record, events,
//!   commit);
//! - [`counters`]: expiring shared counters (Redis or in-process) for
//!   sliding-window limits;
//! - [`storage`]: a service's database and cache, opened one way;
//! - [`outbox`]: events written with the change they report, relayed to the
//!   audit trail (by a supervised job) until acknowledged;
//! - [`events`]: typed events between services (a per-producer log that
//!   consumers pull, work and broadcast subscriptions);
//! - [`errors`]: `tonic::Status` with `google.rpc` details;
//! - [`service`]: a service's one registration (its descriptor) and the
//!   start context it is started with; [`node`] starts a set of them on one
//!   port, the same way in every mode; [`placement`] says where their
//!   storage and their peers are;
//! - [`jobs`]: supervised background work (restarted with backoff, counted,
//!   visible in health);
//! - [`shutdown`]: one cancellation signal for the whole process;
//! - [`validate`]: request checks gathered into field violations, shared
//!   limits and value types (currency codes, ids).

pub mod cache;
pub mod caller;
pub mod claimed;
pub mod client;
pub mod config;
pub mod contracts;
pub mod counters;
pub mod db;
pub mod deadline;
pub mod errors;
pub mod events;
pub mod health;
pub mod http_client;
pub mod idempotency;
pub mod jobs;
pub mod metrics;
pub mod node;
pub mod outbox;
pub mod placement;
pub mod propagation;
pub mod redis_conn;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
pub mod time;
pub mod validate;

/// The boxed error type used at start-up boundaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
