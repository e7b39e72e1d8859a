//! finance.payment: the payment gateway (in progress).
//!
//! So far: the channel protocols, as each provider documents them (see
//! [`channels`]), on the SHA256withRSA primitive of [`keys`], with
//! known-answer tests from vectors made outside this code; and the payment
//! rules of [`domain`] (forward-only states, reports checked against the
//! payment, refunds bounded by what was paid); and [`notifications`], each
//! channel's verified notification read into a report in minor units. The
//! service itself (RPCs, storage, the sandbox provider, the notification
//! endpoints, status sync, settlement) builds on these.

pub mod channels;
pub mod domain;
pub mod keys;
pub mod notifications;
