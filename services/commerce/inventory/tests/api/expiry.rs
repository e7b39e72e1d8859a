//! Reservations nobody commits in time give their units back, and a late
//! commit never counts a unit twice.

use meshwork_proto::meshwork::commerce::inventory::v1 as pb;
use meshwork_testkit::on_each_backend;
use pb::ReservationState as S;
use tonic::Code;

use crate::support::*;

fn one_second(mut request: pb::ReserveStockRequest) -> pb::ReserveStockRequest {
    request.ttl = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    request
}

async fn expired(h: &mut Harness, id: &str) -> bool {
    let inventory = h.inventory.clone();
    eventually(|| {
        let (mut inventory, id) = (inventory.clone(), id.to_owned());
        async move {
            let r = inventory
                .get_reservation(pb::GetReservationRequest { reservation_id: id })
                .await
                .unwrap()
                .into_inner()
                .reservation
                .unwrap();
            state(&r) == S::Expired
        }
    })
    .await
}

on_each_backend!(async fn the_sweeper_expires_what_is_due_on_the_services_clock(backend) {
    let mut h = start(&backend).await;
    h.restock("A", "w1", 10).await;
    h.inventory.reserve_stock(one_second(reserve_request("short", vec![line("A", 5)]))).await.unwrap();
    h.inventory.reserve_stock(reserve_request("long", vec![line("A", 2)])).await.unwrap();
    assert_eq!(h.total("A").await.available, 3);
    // The clock stands still: however often the sweeper runs, nothing is due.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(h.total("A").await.available, 3);

    h.mesh.clock().advance(2_000_000);
    assert!(expired(&mut h, "short").await, "swept after its TTL");
    let total = h.total("A").await;
    assert_eq!((total.reserved, total.available), (2, 8), "only the due one gave its units back");
    let long = h.inventory.get_reservation(pb::GetReservationRequest { reservation_id: "long".into() }).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!(state(&long), S::Active);
    // Releasing an expired reservation moves no units (they are back) but
    // marks it, so that a late commit cannot take them again.
    let released = h.inventory.release_reservation(pb::ReleaseReservationRequest { reservation_id: "short".into(), reason: "saga cancelled".into() }).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!((state(&released), released.release_reason.as_str()), (S::Released, "saga cancelled"));
    assert_eq!(h.total("A").await.available, 8);
    let late = h.inventory.commit_reservation(pb::CommitReservationRequest { reservation_id: "short".into() }).await.unwrap_err();
    assert_eq!((late.code(), reason(&late)), (Code::FailedPrecondition, "RESERVATION_RELEASED".into()));
    assert_eq!(h.total("A").await.available, 8);
    h.check_invariants(&["A"]).await;
});

on_each_backend!(async fn a_commit_after_expiry_takes_the_units_again_or_is_refused(backend) {
    let mut h = start(&backend).await;
    h.restock("A", "w1", 6).await;
    h.inventory.reserve_stock(one_second(reserve_request("late-but-lucky", vec![line("A", 3)]))).await.unwrap();
    h.inventory.reserve_stock(one_second(reserve_request("late-and-unlucky", vec![line("A", 3)]))).await.unwrap();
    h.mesh.clock().advance(2_000_000);
    assert!(expired(&mut h, "late-but-lucky").await && expired(&mut h, "late-and-unlucky").await);
    assert_eq!(h.total("A").await.available, 6);

    // Someone else takes 3 meanwhile.
    h.inventory.reserve_stock(reserve_request("other", vec![line("A", 3)])).await.unwrap();
    let lucky = h.inventory.commit_reservation(pb::CommitReservationRequest { reservation_id: "late-but-lucky".into() }).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!(state(&lucky), S::Committed, "the units were still there");
    let unlucky = h.inventory.commit_reservation(pb::CommitReservationRequest { reservation_id: "late-and-unlucky".into() }).await.unwrap_err();
    assert_eq!((unlucky.code(), reason(&unlucky)), (Code::FailedPrecondition, "RESERVATION_EXPIRED".into()));
    let total = h.total("A").await;
    assert_eq!((total.on_hand, total.reserved, total.committed, total.available), (6, 3, 3, 0), "nothing counted twice");
    // The committed one no longer expires.
    h.mesh.clock().advance(3_600_000_000);
    assert!(expired(&mut h, "other").await);
    let total = h.total("A").await;
    assert_eq!((total.reserved, total.committed, total.available), (0, 3, 3));
    h.check_invariants(&["A"]).await;
});
