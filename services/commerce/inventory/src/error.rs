//! Everything that can go wrong in commerce.inventory, and the one mapping
//! of it to gRPC statuses. Reasons in `ErrorInfo` are stable.

use meshwork_runtime::errors::{self, Common};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{Shortage, State};

/// An inventory service error.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// No reservation with this id.
    #[error("reservation {0} not found")]
    NotFound(String),
    /// One or more lines cannot be served; nothing was held.
    #[error("out of stock: {}", describe(.0))]
    OutOfStock(Vec<Shortage>),
    /// The id was released before it was ever reserved.
    #[error("reservation {0} was released before it was reserved; use a new id")]
    Tombstoned(String),
    /// Committing an expired reservation whose units are gone.
    #[error("reservation {0} expired and its stock is no longer available")]
    Expired(String),
    /// Committing a released reservation.
    #[error("reservation {0} was released")]
    Released(String),
    /// Releasing a shipped reservation.
    #[error("reservation {0} has shipped; its goods have left the warehouse")]
    Shipped(String),
    /// Shipping a reservation that is not committed.
    #[error("reservation {reservation_id} is {}, not COMMITTED", .state.as_str())]
    NotCommitted {
        reservation_id: String,
        state: State,
    },
    /// The reservation kept changing while a transition looked at it.
    #[error("reservation {0} is being changed by another request; retry")]
    Contended(String),
    /// What every service shares: invalid requests, reused request ids,
    /// the database, anything else.
    #[error(transparent)]
    Common(Common),
}

meshwork_runtime::common_errors!(InventoryError);

fn describe(shortages: &[Shortage]) -> String {
    shortages
        .iter()
        .map(|s| {
            format!(
                "{} ({} requested, {} available)",
                s.sku, s.requested, s.available
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<InventoryError> for Status {
    fn from(error: InventoryError) -> Self {
        use InventoryError::*;
        let resource = |id: &str| format!("reservations/{id}");
        let message = error.to_string();
        match &error {
            Common(common) => common.status(),
            NotFound(id) => errors::not_found("reservation", &resource(id)),
            // FAILED_PRECONDITION, not RESOURCE_EXHAUSTED: the state of the
            // stock refuses the request, and a client backing off and
            // retrying (what RESOURCE_EXHAUSTED and HTTP 429 tell it) would
            // not help. One violation per short SKU.
            OutOfStock(shortages) => {
                let mut details = ErrorDetails::new();
                for s in shortages {
                    details.add_precondition_failure_violation(
                        "OUT_OF_STOCK",
                        format!("inventory/{}", s.sku),
                        format!("{} requested, {} available", s.requested, s.available),
                    );
                }
                details.set_error_info("OUT_OF_STOCK", errors::DOMAIN, []);
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            Tombstoned(_) => errors::aborted("RESERVATION_RELEASED", &message),
            Contended(_) => errors::aborted("CONCURRENT_UPDATE", &message),
            Expired(id) => {
                errors::failed_precondition("RESERVATION_EXPIRED", &resource(id), &message)
            }
            Released(id) => {
                errors::failed_precondition("RESERVATION_RELEASED", &resource(id), &message)
            }
            Shipped(id) => {
                errors::failed_precondition("RESERVATION_SHIPPED", &resource(id), &message)
            }
            NotCommitted { reservation_id, .. } => errors::failed_precondition(
                "RESERVATION_NOT_COMMITTED",
                &resource(reservation_id),
                &message,
            ),
        }
    }
}
