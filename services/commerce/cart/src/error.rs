//! Everything that can go wrong in commerce.cart, and the one mapping of it
//! to gRPC statuses. Reasons in `ErrorInfo` are stable.

use meshwork_runtime::errors;
use tonic::Status;

use crate::domain::Refusal;
use crate::store::StoreError;

/// A cart service error.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// A SKU the catalogue does not have.
    #[error("product {0} not found")]
    UnknownProduct(String),
    /// A cap was reached, or the product's currency is not the cart's.
    #[error("{0}")]
    Capped(&'static str, String),
    /// The catalogue could not be asked.
    #[error("catalogue: {0}")]
    Catalogue(String),
    /// The cart store could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CartError {
    /// A refusal of the domain.
    pub fn refused(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Full => CartError::Capped(
                "CART_FULL",
                format!("a cart holds at most {} lines", crate::domain::MAX_LINES),
            ),
            Refusal::QuantityCap => CartError::Capped(
                "QUANTITY_CAP",
                format!("a line holds at most {} units", crate::domain::MAX_QUANTITY),
            ),
            Refusal::CurrencyMismatch => CartError::Capped(
                "CURRENCY_MISMATCH",
                "the product is priced in another currency than the cart's lines".to_owned(),
            ),
        }
    }
}

impl From<CartError> for Status {
    fn from(error: CartError) -> Self {
        use CartError::*;
        match &error {
            UnknownProduct(sku) => errors::not_found("product", &format!("products/{sku}")),
            Capped(reason, message) => errors::failed_precondition(reason, "cart", message),
            Catalogue(cause) => errors::unavailable("commerce.product", cause),
            Store(cause) => errors::unavailable("cart store", cause),
        }
    }
}
