//! What a shopper meets: adds that all count, caps, expiry, merging at
//! login, prices of now, and carts nobody else can read.

use meshwork_proto::meshwork::commerce::cart::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

fn s(sku: &str, quantity: i32) -> (String, i32) {
    (sku.to_owned(), quantity)
}

on_each_backend!(async fn a_hundred_concurrent_adds_of_one_sku_make_a_hundred(backend) {
    let mut h = start(&backend).await;
    let adds = (0..100).map(|_| {
        let mut carts = h.carts.clone();
        async move { carts.add_item(add("cart-1", "MUG", 1)).await.map(drop) }
    });
    for added in futures::future::join_all(adds).await {
        added.unwrap();
    }
    let cart = h.get("cart-1").await;
    assert_eq!(lines(&cart), [s("MUG", 100)], "no add was lost");
    assert_eq!(cart.subtotal.unwrap().amount_minor, 129_900);
    // A retried add (same request id) adds nothing.
    let request = add("cart-2", "TEA", 2);
    for _ in 0..3 {
        h.carts.add_item(request.clone()).await.unwrap();
    }
    assert_eq!(lines(&h.get("cart-2").await), [s("TEA", 2)]);
});

on_each_backend!(async fn caps_refuse_and_change_nothing(backend) {
    let mut h = start(&backend).await;
    h.add("capped", "MUG", 100).await.unwrap();
    let more = h.add("capped", "MUG", 1).await.unwrap_err();
    assert_eq!((more.code(), reason(&more)), (Code::FailedPrecondition, "QUANTITY_CAP".into()));
    let too_many = h.carts.add_item(add("capped", "TEA", 101)).await.unwrap_err();
    assert_eq!(violated_fields(&too_many), ["quantity"], "the contract's bound");
    for i in 1..100 {
        h.product(&format!("X{i:03}"), "EUR", 100).await;
        h.add("capped", &format!("X{i:03}"), 1).await.unwrap();
    }
    let full = h.add("capped", "TEA", 1).await.unwrap_err();
    assert_eq!(reason(&full), "CART_FULL");
    let cart = h.get("capped").await;
    assert_eq!((cart.lines.len(), cart.item_count), (100, 199));
    let unknown = h.add("capped", "NO-SUCH-SKU", 1).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    h.product("YUAN-TEA", "CNY", 3000).await;
    let other = h.add("cart-eur", "MUG", 1).await.and(h.add("cart-eur", "YUAN-TEA", 1).await).unwrap_err();
    assert_eq!(reason(&other), "CURRENCY_MISMATCH");
    assert_eq!(lines(&h.get("cart-eur").await), [s("MUG", 1)]);
});

on_each_backend!(async fn a_cart_expires_an_hour_after_its_last_write(backend) {
    let mut h = start(&backend).await;
    let clock = h.mesh.clock().clone();
    let cart = h.add("idle", "MUG", 1).await.unwrap();
    assert_eq!(cart.expire_time.unwrap().seconds, (T0 + 60 * MINUTE) / 1_000_000);
    clock.advance(59 * MINUTE);
    assert_eq!(lines(&h.get("idle").await), [s("MUG", 1)], "a read does not end it");
    let cart = h.add("idle", "TEA", 1).await.unwrap();
    assert_eq!(cart.expire_time.unwrap().seconds, (T0 + 119 * MINUTE) / 1_000_000, "a write moves the expiry");
    clock.advance(59 * MINUTE);
    assert_eq!(h.get("idle").await.lines.len(), 2, "still there: 59 minutes since the last write");
    clock.advance(2 * MINUTE);
    let gone = h.get("idle").await;
    assert!(gone.lines.is_empty() && gone.expire_time.is_none(), "expired");
    // An add after expiry starts a new cart.
    assert_eq!(lines(&h.add("idle", "POT", 1).await.unwrap()), [s("POT", 1)]);
});

on_each_backend!(async fn a_guest_cart_merges_into_the_users_once(backend) {
    let mut h = start(&backend).await;
    h.add("guest-7f3a", "MUG", 2).await.unwrap();
    h.add("guest-7f3a", "TEA", 1).await.unwrap();
    for (sku, q) in [("MUG", 1), ("POT", 3)] {
        h.carts.add_item(as_user("ana", add("ana-cart", sku, q))).await.unwrap();
    }
    let merge = pb::MergeCartsRequest { cart_id: "ana-cart".into(), guest_cart_id: "guest-7f3a".into() };
    let merged = h.carts.merge_carts(as_user("ana", merge.clone())).await.unwrap().into_inner().cart.unwrap();
    assert_eq!(lines(&merged), [s("MUG", 3), s("POT", 3), s("TEA", 1)]);
    assert!(h.get("guest-7f3a").await.lines.is_empty(), "the guest cart is gone");
    // The login replayed, with something in a cart under the guest id
    // again: the merge is not done twice.
    h.add("guest-7f3a", "MUG", 5).await.unwrap();
    let again = h.carts.merge_carts(as_user("ana", merge)).await.unwrap().into_inner().cart.unwrap();
    assert_eq!(lines(&again), lines(&merged), "nothing doubles");
    assert_eq!(lines(&h.get("guest-7f3a").await), [s("MUG", 5)], "and the guest cart is left alone");
    // A merge clamps to the per-line cap.
    h.add("guest-b", "POT", 99).await.unwrap();
    let clamped = pb::MergeCartsRequest { cart_id: "ana-cart".into(), guest_cart_id: "guest-b".into() };
    let clamped = h.carts.merge_carts(as_user("ana", clamped)).await.unwrap().into_inner().cart.unwrap();
    assert_eq!(lines(&clamped)[1], s("POT", 100));
});

on_each_backend!(async fn a_cart_shows_todays_prices_and_clears_idempotently(backend) {
    let mut h = start(&backend).await;
    h.add("c", "MUG", 2).await.unwrap();
    h.add("c", "TEA", 1).await.unwrap();
    assert_eq!(h.get("c").await.subtotal.unwrap().amount_minor, 2 * 1299 + 450);
    h.products
        .update_product(meshwork_proto::meshwork::commerce::product::v1::UpdateProductRequest {
            request_id: rid(),
            sku: "MUG".into(),
            expected_version: 0,
            product: Some(meshwork_proto::meshwork::commerce::product::v1::Product {
                name: "The MUG".into(),
                category: "kitchen".into(),
                price: Some(meshwork_proto::meshwork::r#type::v1::PositiveMoney { currency: "EUR".into(), amount_minor: 999 }),
                weight_grams: 100,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let repriced = h.get("c").await;
    assert_eq!(repriced.lines[0].unit_price.as_ref().unwrap().amount_minor, 999);
    assert_eq!(repriced.subtotal.as_ref().unwrap().amount_minor, 2 * 999 + 450);
    assert_eq!(lines(&repriced), [s("MUG", 2), s("TEA", 1)], "the cart itself did not change");
    let set = pb::SetItemQuantityRequest { cart_id: "c".into(), sku: "TEA".into(), quantity: 0 };
    assert_eq!(lines(&h.carts.set_item_quantity(set).await.unwrap().into_inner().cart.unwrap()), [s("MUG", 2)]);
    for _ in 0..2 {
        let cleared = h.carts.clear_cart(pb::ClearCartRequest { cart_id: "c".into() }).await.unwrap().into_inner().cart.unwrap();
        assert!(cleared.lines.is_empty());
    }
    let never = h.carts.clear_cart(pb::ClearCartRequest { cart_id: "never-made".into() }).await.unwrap();
    assert!(never.into_inner().cart.unwrap().lines.is_empty());
});

on_each_backend!(async fn no_one_else_reaches_a_users_cart(backend) {
    let mut h = start(&backend).await;
    h.carts.add_item(as_user("ana", add("ana-cart", "MUG", 1))).await.unwrap();
    let get = pb::GetCartRequest { cart_id: "ana-cart".into() };
    // A user's cart ids are their own: "ana-cart" of bo (or of a guest) is
    // another cart, empty, and everything done to it stays there.
    let bos = h.carts.get_cart(as_user("bo", get.clone())).await.unwrap().into_inner().cart.unwrap();
    assert!(bos.lines.is_empty(), "never Ana's lines");
    assert!(h.get("ana-cart").await.lines.is_empty(), "nor a guest's view of them");
    h.carts.add_item(as_user("bo", add("ana-cart", "TEA", 1))).await.unwrap();
    h.carts.set_item_quantity(as_user("bo", pb::SetItemQuantityRequest { cart_id: "ana-cart".into(), sku: "MUG".into(), quantity: 0 })).await.unwrap();
    h.carts.clear_cart(as_user("bo", pb::ClearCartRequest { cart_id: "ana-cart".into() })).await.unwrap();
    h.add("ana-cart", "POT", 2).await.unwrap();
    h.carts.clear_cart(pb::ClearCartRequest { cart_id: "ana-cart".into() }).await.unwrap();
    // Bo merging "ana-cart" as a guest cart takes the guests' one, not Ana's.
    h.add("ana-cart", "POT", 1).await.unwrap();
    let merged = h.carts.merge_carts(as_user("bo", pb::MergeCartsRequest { cart_id: "bo-cart".into(), guest_cart_id: "ana-cart".into() })).await.unwrap().into_inner().cart.unwrap();
    assert_eq!(lines(&merged), [s("POT", 1)]);
    let mine = h.carts.get_cart(as_user("ana", get)).await.unwrap().into_inner().cart.unwrap();
    assert_eq!(lines(&mine), [s("MUG", 1)], "Ana's cart is as she left it");
});

on_each_backend!(async fn a_retry_of_an_add_from_before_a_clear_adds_nothing(backend) {
    let mut h = start(&backend).await;
    let request = add("c", "MUG", 2);
    h.carts.add_item(request.clone()).await.unwrap();
    h.carts.clear_cart(pb::ClearCartRequest { cart_id: "c".into() }).await.unwrap();
    // The first answer was lost; the client retries after the clear.
    let retried = h.carts.add_item(request).await.unwrap().into_inner().cart.unwrap();
    assert!(retried.lines.is_empty(), "the add was done once, before the clear");
});

on_each_backend!(async fn concurrent_first_adds_in_two_currencies_leave_one(backend) {
    let mut h = start(&backend).await;
    h.product("YUAN-TEA", "CNY", 3000).await;
    for i in 0..20 {
        let cart_id = format!("race-{i}");
        let (mut a, mut b) = (h.carts.clone(), h.carts.clone());
        let (eur, cny) = futures::join!(
            a.add_item(add(&cart_id, "MUG", 1)),
            b.add_item(add(&cart_id, "YUAN-TEA", 1)),
        );
        assert!(eur.is_ok() != cny.is_ok(), "exactly one lands");
        let refused = eur.err().or(cny.err()).unwrap();
        assert_eq!(reason(&refused), "CURRENCY_MISMATCH");
        let cart = h.get(&cart_id).await;
        assert_eq!(cart.lines.len(), 1, "one currency per cart");
    }
    // Emptied by removing its line, a cart takes another currency.
    h.add("swap", "MUG", 1).await.unwrap();
    h.carts.set_item_quantity(pb::SetItemQuantityRequest { cart_id: "swap".into(), sku: "MUG".into(), quantity: 0 }).await.unwrap();
    assert_eq!(lines(&h.add("swap", "YUAN-TEA", 2).await.unwrap()), [s("YUAN-TEA", 2)]);
});

on_each_backend!(async fn merges_keep_to_one_currency_and_markers_to_the_services_clock(backend) {
    let mut h = start(&backend).await;
    h.product("YUAN-TEA", "CNY", 3000).await;
    let merge = |guest: &str| pb::MergeCartsRequest { cart_id: "ana-cart".into(), guest_cart_id: guest.into() };
    h.carts.add_item(as_user("ana", add("ana-cart", "MUG", 1))).await.unwrap();
    // A guest cart in another currency is refused, and stays.
    h.add("guest-cny", "YUAN-TEA", 1).await.unwrap();
    let refused = h.carts.merge_carts(as_user("ana", merge("guest-cny"))).await.unwrap_err();
    assert_eq!(reason(&refused), "CURRENCY_MISMATCH");
    assert_eq!(lines(&h.get("guest-cny").await), [s("YUAN-TEA", 1)]);
    // Merging an empty guest cart leaves no marker: lines added later merge.
    h.carts.merge_carts(as_user("ana", merge("guest-late"))).await.unwrap();
    h.add("guest-late", "TEA", 2).await.unwrap();
    let merged = h.carts.merge_carts(as_user("ana", merge("guest-late"))).await.unwrap().into_inner().cart.unwrap();
    assert_eq!(lines(&merged), [s("MUG", 1), s("TEA", 2)]);
    // The marker lasts as long as the cart (plus a minute), on the
    // service's clock: after that the id merges again.
    h.mesh.clock().advance(62 * MINUTE);
    h.add("guest-late", "POT", 1).await.unwrap();
    let later = h.carts.merge_carts(as_user("ana", merge("guest-late"))).await.unwrap().into_inner().cart.unwrap();
    assert_eq!(lines(&later), [s("POT", 1)], "Ana's cart had expired too; the marker with it");
});
