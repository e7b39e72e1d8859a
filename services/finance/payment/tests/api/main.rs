//! finance.payment through its public interfaces, wired as in production:
//! the ledger, risk control, transfers and the audit trail behind it, the
//! sandbox provider in front of it, and the REST edge between the sandbox's
//! notifications and the service.

mod flows;
mod refunds;
mod refusals;
mod support;
