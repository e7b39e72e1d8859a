//! commerce.inventory through its public gRPC API: the real server on port
//! 0, fresh storage per test, both backends.

mod contention;
mod expiry;
mod ledger;
mod reservations;
mod support;
