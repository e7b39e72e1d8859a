//! The REST edge in front of the real finance.account service: routes,
//! JSON mapping, query parameters, errors and trace continuity, through the
//! axum router exactly as `meshwork up` serves it.

mod auth;
mod echo;
mod errors;
mod routes;
mod support;
mod table;
mod tracing;
