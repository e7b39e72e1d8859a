//! How a call to another finance service failed, in payments' terms: a
//! definite refusal (the request itself, or the state it met, is refused:
//! asking again changes nothing) or no answer (asking again may).

use tonic::Code;

use crate::error::PaymentError;

/// A call that did not succeed.
#[derive(Debug)]
pub enum Failed {
    /// Refused for good: the service's message, and the same as an
    /// upstream failure for a caller that expects no refusal.
    Refused {
        /// The service's message.
        message: String,
        /// As [`unanswered`] would have it.
        upstream: PaymentError,
    },
    /// No answer that decides anything: try again later.
    Unanswered(PaymentError),
}

impl From<Failed> for PaymentError {
    /// A refusal where none was expected is an upstream failure too.
    fn from(failed: Failed) -> Self {
        match failed {
            Failed::Unanswered(error)
            | Failed::Refused {
                upstream: error, ..
            } => error,
        }
    }
}

/// `status` from `service` as a [`Failed`].
pub(crate) fn failed(service: &'static str, status: &tonic::Status) -> Failed {
    if matches!(
        status.code(),
        Code::FailedPrecondition | Code::InvalidArgument | Code::NotFound | Code::OutOfRange
    ) {
        Failed::Refused {
            message: status.message().to_owned(),
            upstream: unanswered(service, status),
        }
    } else {
        Failed::Unanswered(unanswered(service, status))
    }
}

/// `status` from `service` as an upstream failure.
pub(crate) fn unanswered(service: &'static str, status: &tonic::Status) -> PaymentError {
    PaymentError::Upstream {
        service,
        cause: format!("{:?}: {}", status.code(), status.message()),
    }
}
