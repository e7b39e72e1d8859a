//! finance.account through its public gRPC API: the real server on port 0,
//! the generated client, fresh storage per test, on both backends.

mod accounts;
mod cache;
mod client;
mod health;
mod idempotency;
mod money;
mod support;
mod tracing;
mod transfers;
mod upgrade;
