//! commerce.cart through its public gRPC API, with the catalogue beside it:
//! the real servers on port 0, fresh Redis namespaces (or in-process carts)
//! per test, a fixed clock.

mod carts;
mod support;
