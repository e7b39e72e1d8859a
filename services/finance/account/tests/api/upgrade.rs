//! A ledger database made by the release before the platform migrations
//! (the service's own migrations only, which created `idempotency_keys` and
//! `outbox` themselves) migrates forward without losing a row, and the
//! service starts on it.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::finance::audit::v1 as audit_pb;
use meshwork_runtime::db::Database;
use meshwork_testkit::{Mesh, on_each_backend};

use crate::support::*;

on_each_backend!(async fn a_database_of_the_previous_release_migrates_without_loss(backend) {
    let db = backend.fresh_db_config();
    // What the previous release did: the service's migrations, nothing
    // else; then a claimed request and an event waiting for the relay.
    let old = Database::connect(&db).await.unwrap();
    finance_account::MIGRATOR.run(old.pool()).await.unwrap();
    sqlx::query("INSERT INTO idempotency_keys (request_id, fingerprint, result_id, created_at) VALUES ('request:old', 'f', 'acc_old', 1)")
        .execute(old.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO outbox (event_id, occurred_at, actor, action, resource, outcome, attributes, traceparent) \
         VALUES ('evt_old', 1, 'a', 'account.opened', 'accounts/acc_old', 'OK', '{}', '')",
    )
    .execute(old.pool())
    .await
    .unwrap();
    let tracked = sqlx::query("SELECT count(*) FROM _meshwork_platform_migrations").fetch_one(old.pool()).await;
    assert!(tracked.is_err(), "the previous release had no platform migrations");
    old.close().await;

    // The new release: the platform migrations run after the service's.
    let new = Database::connect(&db).await.unwrap();
    new.migrate(&finance_account::MIGRATOR).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _meshwork_platform_migrations")
        .fetch_one(new.pool())
        .await
        .unwrap();
    let platform = meshwork_runtime::db::platform_migrator().iter().count() as i64;
    assert_eq!(applied, platform, "the platform migrations are recorded");
    let key: String = sqlx::query_scalar("SELECT result_id FROM idempotency_keys WHERE request_id = 'request:old'").fetch_one(new.pool()).await.unwrap();
    let event: String = sqlx::query_scalar("SELECT action FROM outbox WHERE event_id = 'evt_old'").fetch_one(new.pool()).await.unwrap();
    assert_eq!((key.as_str(), event.as_str()), ("acc_old", "account.opened"));
    new.close().await;

    // The service starts on it and works as before; the event the
    // previous release left in the outbox still reaches the audit trail.
    let mesh = Mesh::builder(&backend)
        .await
        .db(finance_account::TARGET, db)
        .start(&[&finance_account::SERVICE, &finance_audit::SERVICE])
        .await;
    let mut trail = finance_audit_client(&mesh).await;
    let delivered = meshwork_testkit::eventually(|| {
        let mut trail = trail.clone();
        async move {
            trail
                .query_audit_log(audit_pb::QueryAuditLogRequest { action: "account.opened".into(), ..Default::default() })
                .await
                .is_ok_and(|r| r.into_inner().records.iter().any(|r| r.event.as_ref().is_some_and(|e| e.event_id == "evt_old")))
        }
    })
    .await;
    assert!(delivered, "the old outbox row never reached the trail");
    let _ = &mut trail;
    let mut client = pb::account_service_client::AccountServiceClient::new(mesh.channel().await);
    let request = pb::CreateAccountRequest {
        request_id: rid(),
        owner_id: "new".into(),
        currency: "EUR".into(),
        r#type: pb::AccountType::Checking as i32,
    };
    let first = client.create_account(request.clone()).await.unwrap().into_inner().account.unwrap();
    let again = client.create_account(request).await.unwrap().into_inner().account.unwrap();
    assert_eq!(again.account_id, first.account_id, "a request id replays");
});

async fn finance_audit_client(
    mesh: &Mesh,
) -> audit_pb::audit_service_client::AuditServiceClient<tonic::transport::Channel> {
    audit_pb::audit_service_client::AuditServiceClient::new(mesh.channel().await)
}
