//! The audit trail as a consumer of the other services' event logs: each
//! producer's `audit` topic is one work subscription, so every event is
//! appended once (its chain record commits with the subscription's cursor),
//! in the order its producer committed it, after masking at the door.

use std::sync::Arc;

use meshwork_proto::meshwork::finance::audit::v1 as pb;
use meshwork_runtime::BoxError;
use meshwork_runtime::events::{Delivery, Handler, Received, Rejected, Subscription};
use meshwork_runtime::outbox::AUDIT_TOPIC;
use meshwork_runtime::service::BoxFuture;
use sqlx::AnyConnection;

use crate::masking::Masking;
use crate::store;

/// The services whose audit events the trail takes.
pub const PRODUCERS: &[&str] = &["finance.account", "finance.payment", "finance.transaction"];

/// The subscription to `producer`'s audit events.
pub fn subscription(producer: &str, masking: Masking) -> Subscription {
    Subscription {
        name: format!("finance.audit<-{producer}"),
        producer: producer.to_owned(),
        topics: vec![AUDIT_TOPIC.to_owned()],
        delivery: Delivery::Work(Arc::new(Trail { masking })),
    }
}

struct Trail {
    masking: Masking,
}

impl Handler for Trail {
    fn handle<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        event: &'a Received,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            // An event that can never be appended is set aside, not retried
            // forever (which would stop the trail).
            let mut audit: pb::AuditEvent = event
                .decode()
                .map_err(|e| Rejected(format!("not an AuditEvent: {e}")))?;
            // The producer is who wrote the log.
            if audit.source.is_empty() {
                audit.source.clone_from(&event.producer);
            }
            crate::api::check_event(&audit).map_err(|invalid| {
                let fields: Vec<String> = invalid.0.iter().map(|v| format!("{v:?}")).collect();
                Rejected(format!("refused: {}", fields.join("; ")))
            })?;
            let (record, duplicate) =
                store::append_in(tx, &crate::api::masked(&self.masking, audit)).await?;
            if !duplicate {
                tracing::info!(sequence = record.sequence, action = %record.event.action, "audit record appended");
            }
            Ok(())
        })
    }
}
