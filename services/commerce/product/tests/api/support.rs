//! The catalogue service and products to put in it.

use commerce_product::store::Reads;
use meshwork_proto::meshwork::commerce::product::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_testkit::{Backend, Mesh};
use tonic::transport::Channel;

pub use meshwork_testkit::{eventually, reason, violated_fields};

pub type Products = pb::product_service_client::ProductServiceClient<Channel>;

pub struct Harness {
    pub mesh: Mesh,
    pub products: Products,
}

pub async fn start(backend: &Backend) -> Harness {
    started(
        Mesh::builder(backend)
            .await
            .start(&[&commerce_product::SERVICE])
            .await,
    )
    .await
}

pub async fn started(mesh: Mesh) -> Harness {
    Harness {
        products: Products::new(mesh.channel().await),
        mesh,
    }
}

impl Harness {
    /// Database reads of products so far.
    pub fn reads(&self) -> u64 {
        self.mesh.get::<Reads>().count()
    }

    pub async fn create(&mut self, product: pb::Product) -> pb::Product {
        self.products
            .create_product(create_req(rid(), product))
            .await
            .expect("create")
            .into_inner()
            .product
            .unwrap()
    }

    pub async fn get(&mut self, sku: &str) -> Result<pb::Product, tonic::Status> {
        self.products
            .get_product(pb::GetProductRequest { sku: sku.into() })
            .await
            .map(|r| r.into_inner().product.unwrap())
    }
}

pub fn rid() -> String {
    format!("req-{}", uuid::Uuid::now_v7().simple())
}

pub fn product(sku: &str, category: &str, price_minor: i64) -> pb::Product {
    pb::Product {
        sku: sku.into(),
        name: format!("Product {sku}"),
        description: "A thing worth having.".into(),
        brand: "Acme".into(),
        category: category.into(),
        price: Some(PositiveMoney {
            currency: "EUR".into(),
            amount_minor: price_minor,
        }),
        weight_grams: 500,
        attributes: [("colour".to_owned(), "white".to_owned())].into(),
        ..Default::default()
    }
}

/// A create of `product`, named by the request's `sku` (the product's own
/// is left empty: it is output only).
pub fn create_req(
    request_id: impl Into<String>,
    mut product: pb::Product,
) -> pb::CreateProductRequest {
    let sku = std::mem::take(&mut product.sku);
    pb::CreateProductRequest {
        request_id: request_id.into(),
        sku,
        product: Some(product),
    }
}

/// An update of `product`, named by the request's `sku`.
pub fn update_req(
    request_id: impl Into<String>,
    expected_version: i64,
    mut product: pb::Product,
) -> pb::UpdateProductRequest {
    let sku = std::mem::take(&mut product.sku);
    pb::UpdateProductRequest {
        request_id: request_id.into(),
        sku,
        product: Some(product),
        expected_version,
    }
}
