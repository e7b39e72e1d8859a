//! Everything that can go wrong in commerce.product, and the one mapping of
//! it to gRPC statuses. Reasons in `ErrorInfo` are stable.

use meshwork_runtime::errors::{self, Common};
use tonic::Status;

/// A product service error.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// No such product (or it was deleted).
    #[error("product {0} not found")]
    NotFound(String),
    /// CreateProduct of a SKU the catalogue has.
    #[error("product {0} already exists")]
    AlreadyExists(String),
    /// UpdateProduct quoted an old version.
    #[error("product {sku} is at version {current}, not {expected}")]
    VersionMismatch {
        sku: String,
        current: i64,
        expected: i64,
    },
    /// What every service shares: invalid requests, reused request ids,
    /// the database, anything else.
    #[error(transparent)]
    Common(Common),
}

meshwork_runtime::common_errors!(ProductError);

impl ProductError {
    /// The status a caller gets.
    pub fn status(&self) -> Status {
        use ProductError::*;
        match self {
            Common(common) => common.status(),
            NotFound(sku) => errors::not_found("product", &format!("products/{sku}")),
            AlreadyExists(_) => errors::already_exists("PRODUCT_EXISTS", &self.to_string()),
            VersionMismatch { .. } => errors::aborted("VERSION_MISMATCH", &self.to_string()),
        }
    }
}

impl From<ProductError> for Status {
    fn from(error: ProductError) -> Self {
        error.status()
    }
}
