//! finance.audit through its public gRPC API: the real server on port 0 on
//! fresh storage, both backends.

mod report;
mod support;
mod trail;
