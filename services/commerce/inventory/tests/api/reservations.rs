//! A reservation's life, its idempotency, and the refusals a caller meets.

use meshwork_proto::meshwork::commerce::inventory::v1 as pb;
use meshwork_testkit::{on_each_backend, violated_fields};
use pb::ReservationState as S;
use tonic::Code;

use crate::support::*;

on_each_backend!(async fn a_reservation_is_held_committed_and_shipped_once(backend) {
    let mut h = start(&backend).await;
    h.restock("MUG-1", "eu-central", 10).await;
    let reserved = h.inventory.reserve_stock(reserve_request("res-1", vec![line("MUG-1", 3)])).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!(state(&reserved), S::Active);
    assert_eq!(reserved.lines, vec![pb::ReservationLine { sku: "MUG-1".into(), quantity: 3, warehouse_id: "eu-central".into() }]);
    // The default TTL is 15 minutes, on the service's clock.
    assert_eq!(reserved.expire_time.unwrap().seconds, T0 / 1_000_000 + 900);
    let total = h.total("MUG-1").await;
    assert_eq!((total.on_hand, total.reserved, total.committed, total.available), (10, 3, 0, 7));

    for _ in 0..2 {
        let committed = h.inventory.commit_reservation(pb::CommitReservationRequest { reservation_id: "res-1".into() }).await.unwrap().into_inner().reservation.unwrap();
        assert_eq!(state(&committed), S::Committed);
    }
    let total = h.total("MUG-1").await;
    assert_eq!((total.on_hand, total.reserved, total.committed, total.available), (10, 0, 3, 7), "committed once");
    for _ in 0..2 {
        let shipped = h.inventory.ship_reservation(pb::ShipReservationRequest { reservation_id: "res-1".into() }).await.unwrap().into_inner().reservation.unwrap();
        assert_eq!(state(&shipped), S::Shipped);
    }
    let total = h.total("MUG-1").await;
    assert_eq!((total.on_hand, total.reserved, total.committed, total.available), (7, 0, 0, 7), "shipped once");
    // Committing a shipped reservation again is no change either.
    let again = h.inventory.commit_reservation(pb::CommitReservationRequest { reservation_id: "res-1".into() }).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!(state(&again), S::Shipped);

    let late = h.inventory.release_reservation(pb::ReleaseReservationRequest { reservation_id: "res-1".into(), reason: "too late".into() }).await.unwrap_err();
    assert_eq!((late.code(), reason(&late)), (Code::FailedPrecondition, "RESERVATION_SHIPPED".into()));
    let kinds: Vec<String> = all_movements(&mut h.inventory, "MUG-1").await.into_iter().map(|m| m.kind).collect();
    assert_eq!(kinds, ["SHIP", "COMMIT", "RESERVE", "RESTOCK"], "newest first, one per change");
    h.check_invariants(&["MUG-1"]).await;
});

on_each_backend!(async fn only_a_committed_reservation_ships_and_a_released_one_never_commits(backend) {
    let mut h = start(&backend).await;
    h.restock("MUG-1", "eu-central", 5).await;
    h.inventory.reserve_stock(reserve_request("res-a", vec![line("MUG-1", 2)])).await.unwrap();
    let early = h.inventory.ship_reservation(pb::ShipReservationRequest { reservation_id: "res-a".into() }).await.unwrap_err();
    assert_eq!((early.code(), reason(&early)), (Code::FailedPrecondition, "RESERVATION_NOT_COMMITTED".into()));

    let released = h.inventory.release_reservation(pb::ReleaseReservationRequest { reservation_id: "res-a".into(), reason: "payment declined".into() }).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!((state(&released), released.release_reason.as_str()), (S::Released, "payment declined"));
    let refused = h.inventory.commit_reservation(pb::CommitReservationRequest { reservation_id: "res-a".into() }).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused)), (Code::FailedPrecondition, "RESERVATION_RELEASED".into()));
    let unknown = h.inventory.commit_reservation(pb::CommitReservationRequest { reservation_id: "res-nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(h.total("MUG-1").await.available, 5);
    h.check_invariants(&["MUG-1"]).await;
});

on_each_backend!(async fn releasing_a_paid_reservation_restocks_it(backend) {
    let mut h = start(&backend).await;
    h.restock("MUG-1", "eu-central", 5).await;
    h.inventory.reserve_stock(reserve_request("res-b", vec![line("MUG-1", 4)])).await.unwrap();
    h.inventory.commit_reservation(pb::CommitReservationRequest { reservation_id: "res-b".into() }).await.unwrap();
    assert_eq!(h.total("MUG-1").await.available, 1);
    for _ in 0..3 {
        let released = h.inventory.release_reservation(pb::ReleaseReservationRequest { reservation_id: "res-b".into(), reason: "carrier refused the address".into() }).await.unwrap().into_inner().reservation.unwrap();
        assert_eq!(state(&released), S::Released);
    }
    let total = h.total("MUG-1").await;
    assert_eq!((total.on_hand, total.committed, total.available), (5, 0, 5), "restocked once");
    h.check_invariants(&["MUG-1"]).await;
});

on_each_backend!(async fn a_reservation_id_makes_one_reservation_and_a_released_unknown_id_stays_dead(backend) {
    let mut h = start(&backend).await;
    h.restock("MUG-1", "eu-central", 20).await;
    // Ten concurrent copies of one request: one reservation, one hold.
    let copies = (0..10).map(|_| {
        let mut inventory = h.inventory.clone();
        async move { inventory.reserve_stock(reserve_request("res-dup", vec![line("MUG-1", 5)])).await.map(|r| r.into_inner().reservation.unwrap()) }
    });
    let answers = futures::future::join_all(copies).await;
    let first = answers[0].as_ref().unwrap().clone();
    for answer in &answers {
        assert_eq!(answer.as_ref().unwrap(), &first);
    }
    assert_eq!(h.total("MUG-1").await.reserved, 5);
    // The same id for another request is refused.
    let other = h.inventory.reserve_stock(reserve_request("res-dup", vec![line("MUG-1", 6)])).await.unwrap_err();
    assert_eq!((other.code(), reason(&other)), (Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED".into()));

    // Released three times: the units come back once.
    for _ in 0..3 {
        h.inventory.release_reservation(pb::ReleaseReservationRequest { reservation_id: "res-dup".into(), reason: String::new() }).await.unwrap();
    }
    assert_eq!(h.total("MUG-1").await.available, 20);
    // A replay of the first request answers the reservation as it is now.
    let replay = h.inventory.reserve_stock(reserve_request("res-dup", vec![line("MUG-1", 5)])).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!(state(&replay), S::Released);
    assert_eq!(h.total("MUG-1").await.available, 20, "a replay holds nothing");

    // Released before it was reserved (a compensation that overtook its
    // step): OK, and the late reserve is refused.
    let tombstone = h.inventory.release_reservation(pb::ReleaseReservationRequest { reservation_id: "res-late".into(), reason: "saga cancelled".into() }).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!((state(&tombstone), tombstone.lines.len()), (S::Released, 0));
    let late = h.inventory.reserve_stock(reserve_request("res-late", vec![line("MUG-1", 1)])).await.unwrap_err();
    assert_eq!((late.code(), reason(&late)), (Code::Aborted, "RESERVATION_RELEASED".into()));
    assert_eq!(h.total("MUG-1").await.available, 20);
    h.check_invariants(&["MUG-1"]).await;
});

on_each_backend!(async fn a_reservation_holds_every_line_or_none(backend) {
    let mut h = start(&backend).await;
    h.restock("A", "w1", 5).await;
    h.restock("B", "w1", 1).await;
    let short = h.inventory.reserve_stock(reserve_request("res-c", vec![line("A", 2), line("B", 3), line("C", 1)])).await.unwrap_err();
    assert_eq!((short.code(), reason(&short)), (Code::FailedPrecondition, "OUT_OF_STOCK".into()));
    let details = tonic_types::StatusExt::get_error_details(&short);
    let subjects: Vec<(String, String)> = details.precondition_failure().unwrap().violations.iter().map(|v| (v.subject.clone(), v.description.clone())).collect();
    assert_eq!(subjects, [
        ("inventory/B".to_owned(), "3 requested, 1 available".to_owned()),
        ("inventory/C".to_owned(), "1 requested, 0 available".to_owned()),
    ]);
    assert_eq!(h.total("A").await.available, 5, "the line that fitted was not held");
    let nothing = h.inventory.get_reservation(pb::GetReservationRequest { reservation_id: "res-c".into() }).await.unwrap_err();
    assert_eq!(nothing.code(), Code::NotFound, "the id stays free");
    // Once the stock is there, the same id succeeds.
    h.restock("B", "w1", 2).await;
    h.restock("C", "w2", 1).await;
    let held = h.inventory.reserve_stock(reserve_request("res-c", vec![line("A", 2), line("B", 3), line("C", 1)])).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!(held.lines.len(), 3);
    h.check_invariants(&["A", "B", "C"]).await;
});

on_each_backend!(async fn a_line_goes_to_the_first_warehouse_with_enough_or_the_one_named(backend) {
    let mut h = start(&backend).await;
    h.restock("A", "w1", 2).await;
    h.restock("A", "w2", 5).await;
    let chosen = h.inventory.reserve_stock(reserve_request("r1", vec![line("A", 3)])).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!(chosen.lines[0].warehouse_id, "w2", "w1 has only 2");
    let chosen = h.inventory.reserve_stock(reserve_request("r2", vec![line("A", 2)])).await.unwrap().into_inner().reservation.unwrap();
    assert_eq!(chosen.lines[0].warehouse_id, "w1");
    let pinned = pb::ReservationLine { sku: "A".into(), quantity: 1, warehouse_id: "w1".into() };
    let empty = h.inventory.reserve_stock(reserve_request("r3", vec![pinned])).await.unwrap_err();
    assert_eq!(reason(&empty), "OUT_OF_STOCK", "w1 is empty now; w2 is not asked");
    // Lines are not split over warehouses: 3 units exist, but not in one.
    h.restock("A", "w1", 1).await;
    let split = h.inventory.reserve_stock(reserve_request("r4", vec![line("A", 3)])).await.unwrap_err();
    assert_eq!(reason(&split), "OUT_OF_STOCK");
    let details = tonic_types::StatusExt::get_error_details(&split);
    assert_eq!(details.precondition_failure().unwrap().violations[0].description, "3 requested, 2 available", "the best single warehouse");
    // A SKU left to the service may not also be named with a warehouse.
    let pinned = pb::ReservationLine { sku: "A".into(), quantity: 1, warehouse_id: "w2".into() };
    let mixed = h.inventory.reserve_stock(reserve_request("r5", vec![pinned, line("A", 1)])).await.unwrap_err();
    assert_eq!((mixed.code(), violated_fields(&mixed)), (Code::InvalidArgument, vec!["lines[1]".to_owned()]));
    let stock = h.inventory.get_stock(pb::GetStockRequest { sku: "A".into() }).await.unwrap().into_inner().stock.unwrap();
    let levels: Vec<(String, i64)> = stock.levels.iter().map(|l| (l.warehouse_id.clone(), l.available)).collect();
    assert_eq!(levels, [("w1".to_owned(), 1), ("w2".to_owned(), 2)]);
    assert_eq!(stock.total.unwrap().available, 3);
    h.check_invariants(&["A"]).await;
});

on_each_backend!(async fn stock_reads_restocks_and_bad_requests(backend) {
    let mut h = start(&backend).await;
    let request = pb::RestockItemRequest { request_id: "rs-1".into(), sku: "A".into(), warehouse_id: "w1".into(), quantity: 4 };
    let first = h.inventory.restock_item(request.clone()).await.unwrap().into_inner().level.unwrap();
    h.restock("A", "w1", 1).await;
    let replay = h.inventory.restock_item(request).await.unwrap().into_inner().level.unwrap();
    assert_eq!(replay, first, "a repeat answers what the first did, and adds nothing");
    assert_eq!(h.total("A").await.on_hand, 5);

    let batch = h.inventory.batch_get_stock(pb::BatchGetStockRequest { skus: vec!["Z".into(), "A".into()] }).await.unwrap().into_inner().stocks;
    let totals: Vec<(String, i64, usize)> = batch.iter().map(|s| (s.sku.clone(), s.total.as_ref().unwrap().on_hand, s.levels.len())).collect();
    assert_eq!(totals, [("Z".to_owned(), 0, 0), ("A".to_owned(), 5, 1)], "in the order asked");

    let twice = h.inventory.reserve_stock(reserve_request("r1", vec![line("A", 1), line("A", 1)])).await.unwrap_err();
    assert_eq!((twice.code(), violated_fields(&twice)), (Code::InvalidArgument, vec!["lines[1]".to_owned()]));
    let zero = h.inventory.reserve_stock(reserve_request("r1", vec![line("A", 0)])).await.unwrap_err();
    assert_eq!((zero.code(), violated_fields(&zero)), (Code::InvalidArgument, vec!["lines[0].quantity".to_owned()]));
    let bad_sku = h.inventory.get_stock(pb::GetStockRequest { sku: "a b".into() }).await.unwrap_err();
    assert_eq!(bad_sku.code(), Code::InvalidArgument);
    let mut long = reserve_request("r1", vec![line("A", 1)]);
    long.ttl = Some(prost_types::Duration { seconds: 2 * 86_400, nanos: 0 });
    let long = h.inventory.reserve_stock(long).await.unwrap_err();
    assert_eq!(violated_fields(&long), ["ttl"]);
    assert_eq!(h.total("A").await.reserved, 0, "nothing was held by a refused request");
});
