//! commerce.product through its public gRPC API: the real server on port 0,
//! fresh storage per test, both backends (and two replicas, or a Redis
//! that goes away, where the test is about Redis).

mod cache;
mod catalogue;
mod support;
