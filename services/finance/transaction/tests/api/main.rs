//! finance.transaction through its public gRPC API, with the real ledger
//! (finance.account) behind it: both servers on port 0, each on fresh
//! storage of its own, on both backends.

mod audit;
mod bank;
mod risk;
mod settler;
mod statement;
mod support;
mod transfers;
