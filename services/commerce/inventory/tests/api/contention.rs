//! Many buyers at once: no oversell, no partial hold, no deadlock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use meshwork_proto::meshwork::commerce::inventory::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

on_each_backend!(async fn two_hundred_buyers_of_fifty_units_make_fifty_reservations(backend) {
    let mut h = start(&backend).await;
    h.restock("HOT", "w1", 50).await;
    let buyers = (0..200).map(|i| {
        let mut inventory = h.inventory.clone();
        async move { inventory.reserve_stock(reserve_request(&format!("buyer-{i}"), vec![line("HOT", 1)])).await }
    });
    let answers = futures::future::join_all(buyers).await;
    let won = answers.iter().filter(|a| a.is_ok()).count();
    let refused: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert_eq!(won, 50);
    assert_eq!(refused.len(), 150);
    for status in refused {
        assert_eq!((status.code(), reason(status)), (Code::FailedPrecondition, "OUT_OF_STOCK".into()), "{status:?}");
    }
    let total = h.total("HOT").await;
    assert_eq!((total.available, total.reserved, total.committed), (0, 50, 0));
    let reserves = all_movements(&mut h.inventory, "HOT").await.into_iter().filter(|m| m.kind == "RESERVE").count();
    assert_eq!(reserves, 50);
    h.check_invariants(&["HOT"]).await;
});

on_each_backend!(async fn random_quantities_never_take_stock_below_zero(backend) {
    let mut h = start(&backend).await;
    h.restock("HOT", "w1", 50).await;
    // A watcher reads while the buyers buy: available never goes negative
    // (a last line of defence: the table's CHECK constraints would turn an
    // oversell into an error the buyers' assertions catch first).
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (mut inventory, stop) = (h.inventory.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::SeqCst) {
                let stock = inventory.get_stock(pb::GetStockRequest { sku: "HOT".into() }).await.unwrap().into_inner().stock.unwrap();
                assert!(stock.total.unwrap().available >= 0);
                reads += 1;
            }
            reads
        })
    };
    let buyers = (0..300).map(|i| {
        let mut inventory = h.inventory.clone();
        let quantity = fastrand::i64(1..=5);
        async move {
            inventory.reserve_stock(reserve_request(&format!("buyer-{i}"), vec![line("HOT", quantity)])).await.map(|_| quantity)
        }
    });
    let answers = futures::future::join_all(buyers).await;
    stop.store(true, Ordering::SeqCst);
    assert!(watcher.await.unwrap() > 0);
    let granted: i64 = answers.iter().filter_map(|a| a.as_ref().ok()).sum();
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_eq!(reason(refused), "OUT_OF_STOCK");
    }
    assert!(granted <= 50);
    let total = h.total("HOT").await;
    assert_eq!(total.reserved, granted);
    assert!(total.available >= 0 && total.available < 5, "sold until no request fitted: {total:?}");
    h.check_invariants(&["HOT"]).await;
});

on_each_backend!(async fn concurrent_multi_sku_carts_are_all_or_nothing_without_deadlock(backend) {
    let mut h = start(&backend).await;
    // Byte order and a collation that skips punctuation disagree on these;
    // two warehouses, so that a line's warehouse choice takes part.
    let skus = ["TEA-SENCHA-100G", "TEAPOT-CAST-IRON", "TEA-OOLONG", "tea-green", "Tea_Black"];
    for sku in skus {
        h.restock(sku, "w1", 25).await;
        h.restock(sku, "w2", 15).await;
    }
    // Earlier carts that commit, release or expire while the new ones
    // reserve: every writer takes the same rows.
    for i in 0..20 {
        let lines = skus.iter().rev().take(3).map(|sku| line(sku, 1)).collect();
        h.inventory.reserve_stock(reserve_request(&format!("old-{i}"), lines)).await.unwrap();
    }
    let settle = (0..20).map(|i| {
        let mut inventory = h.inventory.clone();
        async move {
            let reservation_id = format!("old-{i}");
            let answer = if i % 2 == 0 {
                inventory.commit_reservation(pb::CommitReservationRequest { reservation_id }).await.map(drop)
            } else {
                inventory.release_reservation(pb::ReleaseReservationRequest { reservation_id, reason: String::new() }).await.map(drop)
            };
            answer.expect("settling an earlier cart");
        }
    });
    let carts = (0..100).map(|i| {
        let mut inventory = h.inventory.clone();
        // Three SKUs in a random order, 1-2 units each, some pinned.
        let mut picked = skus.to_vec();
        fastrand::shuffle(&mut picked);
        let lines: Vec<_> = picked[..3]
            .iter()
            .map(|sku| {
                let mut l = line(sku, fastrand::i64(1..=2));
                if fastrand::bool() {
                    l.warehouse_id = ["w1", "w2"][fastrand::usize(0..2)].into();
                }
                l
            })
            .collect();
        async move {
            let answer = inventory.reserve_stock(reserve_request(&format!("cart-{i}"), lines.clone())).await;
            (lines, answer)
        }
    });
    let (_, answers) = futures::join!(futures::future::join_all(settle), futures::future::join_all(carts));
    let mut held = std::collections::HashMap::<String, i64>::new();
    let mut won = 0;
    for (lines, answer) in &answers {
        match answer {
            Ok(r) => {
                won += 1;
                let r = r.get_ref().reservation.as_ref().unwrap();
                assert_eq!(r.lines.len(), 3, "every line held");
                for l in lines {
                    *held.entry(l.sku.clone()).or_default() += l.quantity;
                }
            }
            Err(status) => assert_eq!(reason(status), "OUT_OF_STOCK", "no deadlock or other error surfaces: {status:?}"),
        }
    }
    assert!(won > 0);
    // The earlier carts: 10 committed (1 unit of each of the last 3 SKUs).
    for sku in skus {
        let total = h.total(sku).await;
        let committed = if skus.iter().rev().take(3).any(|s| *s == sku) { 10 } else { 0 };
        assert_eq!(total.committed, committed, "{sku}");
        assert_eq!(total.reserved, held.get(sku).copied().unwrap_or(0), "{sku}: only what the winners hold");
    }
    h.check_invariants(&skus).await;
});
