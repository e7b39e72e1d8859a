//! The trail: masked at the door, duplicates dropped, searchable, and any
//! edit behind the service's back found by VerifyChain.

use meshwork_proto::meshwork::finance::audit::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

on_each_backend!(async fn events_are_masked_numbered_and_deduplicated(backend) {
    let mut h = start(&backend).await;
    let mut clear = event("evt_1", "account.created", 0, &[
        ("account_number", "6222021234567890"),
        ("phone", "13812345678"),
        ("amount_minor", "12345678901234"),
    ]);
    clear.actor = "wang.fang@example.com".into();
    clear.resource = "cards/4111 1111 1111 1111".into();
    let first = record(&mut h.trail, clear.clone()).await;
    assert!(!first.duplicate);
    let stored = first.record.clone().unwrap();
    assert_eq!(stored.sequence, 1);
    let e = stored.event.unwrap();
    assert_eq!(e.actor, "w***@example.com");
    assert_eq!(e.resource, "cards/4111 **** **** 1111");
    assert_eq!(e.attributes["account_number"], "6222********7890");
    assert_eq!(e.attributes["phone"], "138****5678");
    assert_eq!(e.attributes["amount_minor"], "12345678901234", "amounts are not personal data");

    // The same event again (a relay's retry): acknowledged, not appended.
    let again = record(&mut h.trail, clear).await;
    assert!(again.duplicate);
    assert_eq!(again.record, first.record);
    record(&mut h.trail, event("evt_2", "transfer.posted", 1, &[])).await;

    // Searching by the clear number finds the masked record, and nothing
    // clear comes back.
    let found = h.trail
        .query_audit_log(pb::QueryAuditLogRequest { resource: "cards/4111 1111 1111 1111".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.records.len(), 1);
    assert!(!format!("{found:?}").contains("4111 1111 1111 1111"));
    let all = h.trail.query_audit_log(pb::QueryAuditLogRequest { page_size: 1, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(all.records[0].sequence, 1);
    let rest = h.trail
        .query_audit_log(pb::QueryAuditLogRequest { page_size: 1, page_token: all.next_page_token, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.records[0].sequence, 2);
    assert_eq!(rest.records[0].previous_hash, all.records[0].hash);
    let posted = h.trail
        .query_audit_log(pb::QueryAuditLogRequest { action: "transfer.posted".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(posted.records.len(), 1);

    let bad = h.trail.record_event(pb::RecordEventRequest { event: Some(pb::AuditEvent::default()) }).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    // A time past year 9999 would sort after everything: refused.
    let mut far = event("evt_far", "x.y", 0, &[]);
    far.occur_time = Some(prost_types::Timestamp { seconds: i64::MAX, nanos: 0 });
    let far = h.trail.record_event(pb::RecordEventRequest { event: Some(far) }).await.unwrap_err();
    assert_eq!(violated_fields(&far), ["event.occur_time"]);
    assert!(verify(&mut h.trail).await.intact);
});

on_each_backend!(async fn concurrent_duplicates_append_once(backend) {
    let h = start(&backend).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let mut trail = h.trail.clone();
        // Ten events, each sent twice at once.
        tasks.spawn(async move { record(&mut trail, event(&format!("evt_{}", i % 10), "x.y", i, &[])).await });
    }
    let mut appended = 0;
    while let Some(answer) = tasks.join_next().await {
        appended += usize::from(!answer.unwrap().duplicate);
    }
    assert_eq!(appended, 10);
    let mut trail = h.trail.clone();
    let verdict = verify(&mut trail).await;
    assert!(verdict.intact, "{verdict:?}");
    assert_eq!(verdict.records_checked, 10);
});

on_each_backend!(async fn an_edited_row_is_found_by_verify_chain(backend) {
    let mut h = start(&backend).await;
    for i in 1..=4 {
        record(&mut h.trail, event(&format!("evt_{i}"), "transfer.posted", i, &[("amount_minor", "100")])).await;
    }
    assert!(verify(&mut h.trail).await.intact);

    tamper(&h.db, "UPDATE audit_records SET attributes = '{\"amount_minor\":\"1\"}' WHERE sequence = 2").await;
    let verdict = verify(&mut h.trail).await;
    assert!(!verdict.intact);
    assert_eq!(verdict.first_broken_sequence, 2);
    assert!(verdict.problem.contains("changed"), "{}", verdict.problem);
});

on_each_backend!(async fn deleted_and_cut_off_rows_are_found(backend) {
    let mut h = start(&backend).await;
    for i in 1..=4 {
        record(&mut h.trail, event(&format!("evt_{i}"), "transfer.posted", i, &[])).await;
    }
    tamper(&h.db, "DELETE FROM audit_records WHERE sequence = 4").await;
    let verdict = verify(&mut h.trail).await;
    assert_eq!((verdict.intact, verdict.first_broken_sequence), (false, 4), "{verdict:?}");
    tamper(&h.db, "DELETE FROM audit_records WHERE sequence = 2").await;
    let verdict = verify(&mut h.trail).await;
    assert_eq!((verdict.intact, verdict.first_broken_sequence), (false, 2), "{verdict:?}");
});
