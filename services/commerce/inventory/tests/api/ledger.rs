//! A random mix of every operation, several callers at once, with the clock
//! moving: afterwards the counters, the reservations and the ledger agree.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use meshwork_proto::meshwork::commerce::inventory::v1 as pb;
use meshwork_testkit::on_each_backend;
use pb::ReservationState as S;
use tonic::Code;

use crate::support::*;

// Byte order and a collation that skips punctuation disagree on these.
const SKUS: [&str; 3] = ["TEA-SENCHA-100G", "TEAPOT-CAST-IRON", "TEA-OOLONG"];
const WAREHOUSES: [&str; 2] = ["w1", "w2"];

/// Refusals the operations may meet; anything else fails the test.
fn expected(status: &tonic::Status) -> bool {
    matches!(
        (status.code(), reason(status).as_str()),
        (
            Code::FailedPrecondition,
            "OUT_OF_STOCK"
                | "RESERVATION_EXPIRED"
                | "RESERVATION_RELEASED"
                | "RESERVATION_SHIPPED"
                | "RESERVATION_NOT_COMMITTED"
                | "IDEMPOTENCY_KEY_REUSED"
        ) | (Code::Aborted, "RESERVATION_RELEASED")
            | (Code::NotFound, _)
    )
}

on_each_backend!(async fn after_a_random_mix_of_operations_everything_adds_up(backend) {
    let mut h = start(&backend).await;
    let restocked = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
    for sku in SKUS {
        for warehouse in WAREHOUSES {
            h.restock(sku, warehouse, 10).await;
            *restocked.lock().unwrap().entry(sku.to_owned()).or_default() += 10;
        }
    }
    let ids = 60;
    let workers = (0..4).map(|worker| {
        let mut inventory = h.inventory.clone();
        let clock = h.mesh.clock().clone();
        let restocked = restocked.clone();
        async move {
            let mut rng = fastrand::Rng::with_seed(worker);
            for _ in 0..300 {
                // Ids are shared between workers, so that they race on them.
                let id = format!("r{}", rng.u32(0..ids));
                let answer = match rng.u32(0..100) {
                    0..=39 => {
                        // A random subset in a random order.
                        let mut skus = SKUS.to_vec();
                        rng.shuffle(&mut skus);
                        let lines = skus[..rng.usize(1..=3)]
                            .iter()
                            .map(|sku| line(sku, rng.i64(1..=4)))
                            .collect();
                        inventory.reserve_stock(reserve_request(&id, lines)).await.map(drop)
                    }
                    40..=59 => inventory.commit_reservation(pb::CommitReservationRequest { reservation_id: id }).await.map(drop),
                    60..=74 => inventory.release_reservation(pb::ReleaseReservationRequest { reservation_id: id, reason: String::new() }).await.map(drop),
                    75..=89 => inventory.ship_reservation(pb::ShipReservationRequest { reservation_id: id }).await.map(drop),
                    90..=96 => {
                        let (sku, warehouse, quantity) = (SKUS[rng.usize(0..3)], WAREHOUSES[rng.usize(0..2)], rng.i64(1..=5));
                        let done = inventory
                            .restock_item(pb::RestockItemRequest { request_id: rid(), sku: sku.into(), warehouse_id: warehouse.into(), quantity })
                            .await;
                        if done.is_ok() {
                            *restocked.lock().unwrap().entry(sku.to_owned()).or_default() += quantity;
                        }
                        done.map(drop)
                    }
                    // Time passes: reservations older than 15 minutes expire.
                    _ => {
                        clock.advance(5 * 60 * 1_000_000);
                        Ok(())
                    }
                };
                if let Err(status) = answer {
                    assert!(expected(&status), "unexpected refusal: {status:?}");
                }
            }
        }
    });
    futures::future::join_all(workers).await;

    // What the reservations hold, by state.
    let mut held = HashMap::<(S, String), i64>::new();
    for i in 0..ids {
        let found = h.inventory.get_reservation(pb::GetReservationRequest { reservation_id: format!("r{i}") }).await;
        let Ok(found) = found else { continue };
        let r = found.into_inner().reservation.unwrap();
        for l in &r.lines {
            *held.entry((state(&r), l.sku.clone())).or_default() += l.quantity;
        }
    }
    let of = |s: S, sku: &str| held.get(&(s, sku.to_owned())).copied().unwrap_or(0);
    for sku in SKUS {
        let total = h.total(sku).await;
        let restocked = restocked.lock().unwrap()[sku];
        assert_eq!(total.on_hand, restocked - of(S::Shipped, sku), "{sku}: on_hand = received - shipped");
        assert_eq!(total.reserved, of(S::Active, sku), "{sku}: reserved = what ACTIVE reservations hold");
        assert_eq!(total.committed, of(S::Committed, sku), "{sku}: committed = what COMMITTED reservations hold");
    }
    h.check_invariants(&SKUS).await;
});
