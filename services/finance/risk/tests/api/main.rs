//! finance.risk through its public gRPC API: the real server on port 0 with
//! the ledger beside it, fresh storage and counters per test, both backends.

mod assess;
mod rules;
mod support;
