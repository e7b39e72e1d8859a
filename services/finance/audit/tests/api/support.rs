//! The audit service, its database (to tamper with) and helpers.

use std::collections::HashMap;

use meshwork_proto::meshwork::finance::audit::v1 as pb;
use meshwork_runtime::db::{Database, DbConfig};
use meshwork_testkit::{Backend, Mesh};
use tonic::transport::Channel;

pub type Trail = pb::audit_service_client::AuditServiceClient<Channel>;

pub struct Harness {
    #[allow(dead_code)]
    pub server: Mesh,
    pub trail: Trail,
    pub db: DbConfig,
}

pub async fn start(backend: &Backend) -> Harness {
    let server = Mesh::start(backend, &[&finance_audit::SERVICE]).await;
    Harness {
        trail: Trail::new(server.channel().await),
        db: server.db_config(finance_audit::TARGET),
        server,
    }
}

/// Runs SQL on the service's database behind its back.
pub async fn tamper(db: &DbConfig, sql: &str) {
    let database = Database::connect(db).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(database.pool())
        .await
        .expect("tamper");
    database.close().await;
}

/// 2026-11-25T10:00:00Z.
pub const T0: i64 = 1_795_600_800;

pub fn event(id: &str, action: &str, seconds: i64, attributes: &[(&str, &str)]) -> pb::AuditEvent {
    pb::AuditEvent {
        event_id: id.to_owned(),
        source: "finance.test".to_owned(),
        actor: "alice".to_owned(),
        action: action.to_owned(),
        resource: format!("things/{id}"),
        outcome: "OK".to_owned(),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        occur_time: Some(prost_types::Timestamp {
            seconds: T0 + seconds,
            nanos: 0,
        }),
        trace_id: "5af7651916cd43dd8448eb211c80319c".to_owned(),
    }
}

pub async fn record(trail: &mut Trail, event: pb::AuditEvent) -> pb::RecordEventResponse {
    trail
        .record_event(pb::RecordEventRequest { event: Some(event) })
        .await
        .expect("record event")
        .into_inner()
}

pub async fn verify(trail: &mut Trail) -> pb::VerifyChainResponse {
    trail
        .verify_chain(pb::VerifyChainRequest {})
        .await
        .expect("verify")
        .into_inner()
}
pub use meshwork_testkit::violated_fields;
