//! Creating, changing, deleting and listing products; what callers are
//! refused.

use meshwork_proto::meshwork::commerce::product::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

on_each_backend!(async fn a_product_is_created_read_updated_and_deleted(backend) {
    let mut h = start(&backend).await;
    let request = create_req("c1", product("MUG-1", "kitchen/mugs", 1299));
    let created = h.products.create_product(request.clone()).await.unwrap().into_inner().product.unwrap();
    assert_eq!((created.version, created.price.as_ref().unwrap().amount_minor), (1, 1299));
    assert_eq!(created.attributes.get("colour").map(String::as_str), Some("white"));
    assert_eq!(h.products.create_product(request).await.unwrap().into_inner().product.unwrap(), created, "replayed");
    let again = h.products.create_product(create_req(rid(), product("MUG-1", "kitchen", 1))).await.unwrap_err();
    assert_eq!((again.code(), reason(&again)), (Code::AlreadyExists, "PRODUCT_EXISTS".into()));
    let reused = h.products.create_product(create_req("c1", product("MUG-1", "kitchen", 1))).await.unwrap_err();
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(h.get("MUG-1").await.unwrap(), created);

    let mut change = product("MUG-1", "kitchen/mugs", 1499);
    change.name = "Classic mug".into();
    let update = update_req("u1", 1, change.clone());
    let updated = h.products.update_product(update.clone()).await.unwrap().into_inner().product.unwrap();
    assert_eq!((updated.version, updated.name.as_str()), (2, "Classic mug"));
    assert_eq!(h.get("MUG-1").await.unwrap(), updated, "the cached copy was replaced");
    // A retry of the same update answers what it made, not a version mismatch.
    assert_eq!(h.products.update_product(update).await.unwrap().into_inner().product.unwrap(), updated);
    let stale = h.products.update_product(update_req(rid(), 1, change)).await.unwrap_err();
    assert_eq!((stale.code(), reason(&stale)), (Code::Aborted, "VERSION_MISMATCH".into()));
    assert_eq!(h.get("MUG-1").await.unwrap().version, 2, "a refused update changed nothing");

    let delete = pb::DeleteProductRequest { request_id: "d1".into(), sku: "MUG-1".into() };
    let deleted = h.products.delete_product(delete.clone()).await.unwrap().into_inner().product.unwrap();
    assert_eq!(deleted.version, 3);
    assert_eq!(h.products.delete_product(delete).await.unwrap().into_inner().product.unwrap(), deleted, "replayed");
    assert_eq!(h.get("MUG-1").await.unwrap_err().code(), Code::NotFound, "gone from the cache too");
    let missing = h.products.update_product(update_req(rid(), 0, product("MUG-1", "kitchen", 5))).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // A deleted SKU can be added again, at a new version.
    let back = h.create(product("MUG-1", "kitchen/mugs", 999)).await;
    assert_eq!(back.version, 4);
    assert_eq!(h.get("MUG-1").await.unwrap(), back);
});

on_each_backend!(async fn products_are_listed_by_category_brand_and_page(backend) {
    let mut h = start(&backend).await;
    for (sku, category) in [("A1", "kitchen"), ("A2", "kitchen/mugs"), ("A3", "kitchenware"), ("A4", "kitchen/teapots"), ("A5", "garden")] {
        h.create(product(sku, category, 100)).await;
    }
    let mut other = product("B1", "kitchen/mugs", 100);
    other.brand = "Globex".into();
    h.create(other).await;
    h.products.delete_product(pb::DeleteProductRequest { request_id: rid(), sku: "A4".into() }).await.unwrap();

    let list = |category: &str, brand: &str, page_size: i32, page_token: String| pb::ListProductsRequest { category: category.into(), brand: brand.into(), page_size, page_token };
    let kitchen = h.products.list_products(list("kitchen", "", 2, String::new())).await.unwrap().into_inner();
    let skus: Vec<&str> = kitchen.products.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(skus, ["A1", "A2"]);
    let rest = h.products.list_products(list("kitchen", "", 2, kitchen.next_page_token)).await.unwrap().into_inner();
    let skus: Vec<&str> = rest.products.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(skus, ["B1"], "kitchenware is another category; A4 is deleted");
    assert!(rest.next_page_token.is_empty());
    let acme = h.products.list_products(list("kitchen/mugs", "Acme", 0, String::new())).await.unwrap().into_inner();
    assert_eq!(acme.products.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["A2"]);
});

on_each_backend!(async fn bad_products_are_refused_with_every_violation(backend) {
    let mut h = start(&backend).await;
    let mut bad = product("has space", "Kitchen", 0);
    bad.name = "  ".into();
    bad.weight_grams = 0;
    bad.attributes.insert("Bad Key".into(), "x".into());
    let refused = h.products.create_product(create_req(rid(), bad)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&refused);
    fields.sort();
    for want in ["sku", "product.name", "product.category", "product.price.amount_minor", "product.weight_grams"] {
        assert!(fields.iter().any(|f| f == want), "{want} not in {fields:?}");
    }
    assert!(fields.iter().any(|f| f.starts_with("product.attributes")), "{fields:?}");
    let none = h.products.create_product(pb::CreateProductRequest { request_id: rid(), sku: "X".into(), product: None }).await.unwrap_err();
    assert_eq!(violated_fields(&none), ["product"]);
    let list = h.products.list_products(pb::ListProductsRequest { page_size: 0, ..Default::default() }).await.unwrap().into_inner();
    assert!(list.products.is_empty(), "nothing refused was stored");
});

on_each_backend!(async fn a_retried_write_answers_what_it_did_and_changes_nothing_since(backend) {
    let mut h = start(&backend).await;
    let create = create_req("c-late", product("LATE-1", "kitchen", 100));
    let v1 = h.products.create_product(create.clone()).await.unwrap().into_inner().product.unwrap();
    let v2 = h.products.update_product(update_req(rid(), 1, product("LATE-1", "kitchen", 200))).await.unwrap().into_inner().product.unwrap();
    // The create's answer was lost; its retry comes after the update.
    let replayed = h.products.create_product(create).await.unwrap().into_inner().product.unwrap();
    assert_eq!(replayed, v1, "the retry answers what the create made");
    assert_eq!(h.get("LATE-1").await.unwrap(), v2, "and does not put v1 back in the cache");

    // A refused request stays refused: a create of an existing SKU,
    // retried after the SKU was deleted, does not create it late.
    let refused_create = create_req("c-exists", product("LATE-1", "kitchen", 300));
    let first = h.products.create_product(refused_create.clone()).await.unwrap_err();
    assert_eq!(reason(&first), "PRODUCT_EXISTS");
    h.products.delete_product(pb::DeleteProductRequest { request_id: rid(), sku: "LATE-1".into() }).await.unwrap();
    let again = h.products.create_product(refused_create).await.unwrap_err();
    assert_eq!((again.code(), reason(&again)), (Code::AlreadyExists, "PRODUCT_EXISTS".into()));
    assert_eq!(h.get("LATE-1").await.unwrap_err().code(), Code::NotFound, "still deleted");
    // A stale update, retried once the version matches, stays refused.
    let v = h.create(product("LATE-2", "kitchen", 100)).await.version;
    let stale = update_req("u-stale", v + 1, product("LATE-2", "kitchen", 999));
    assert_eq!(reason(&h.products.update_product(stale.clone()).await.unwrap_err()), "VERSION_MISMATCH");
    h.products.update_product(update_req(rid(), v, product("LATE-2", "kitchen", 150))).await.unwrap();
    assert_eq!(reason(&h.products.update_product(stale).await.unwrap_err()), "VERSION_MISMATCH");
    assert_eq!(h.get("LATE-2").await.unwrap().price.unwrap().amount_minor, 150);
});
