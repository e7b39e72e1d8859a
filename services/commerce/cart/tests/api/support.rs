//! The cart service, the catalogue it prices from, and a few products.

use meshwork_proto::meshwork::commerce::cart::v1 as pb;
use meshwork_proto::meshwork::commerce::product::v1 as product_pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::time::Clock;
use meshwork_testkit::{Backend, Mesh};
use tonic::transport::Channel;

pub use meshwork_testkit::{reason, violated_fields};

pub type Carts = pb::cart_service_client::CartServiceClient<Channel>;
pub type Products = product_pb::product_service_client::ProductServiceClient<Channel>;

pub struct Harness {
    pub mesh: Mesh,
    pub carts: Carts,
    pub products: Products,
}

/// 2026-11-25T10:00:00Z in microseconds.
pub const T0: i64 = 1_795_600_800_000_000;
/// A minute, in microseconds.
pub const MINUTE: i64 = 60_000_000;

/// Carts and the catalogue on a clock standing at T0, with MUG (12.99),
/// TEA (4.50) and POT (35.00) in EUR.
pub async fn start(backend: &Backend) -> Harness {
    let mesh = Mesh::builder(backend)
        .await
        .clock(Clock::fixed(T0))
        .start(&[&commerce_product::SERVICE, &commerce_cart::SERVICE])
        .await;
    let mut h = Harness {
        carts: Carts::new(mesh.channel().await),
        products: Products::new(mesh.channel().await),
        mesh,
    };
    for (sku, price) in [("MUG", 1299), ("TEA", 450), ("POT", 3500)] {
        h.product(sku, "EUR", price).await;
    }
    h
}

impl Harness {
    pub async fn product(&mut self, sku: &str, currency: &str, amount_minor: i64) {
        self.products
            .create_product(product_pb::CreateProductRequest {
                request_id: format!("p-{sku}"),
                sku: sku.into(),
                product: Some(product_pb::Product {
                    name: format!("The {sku}"),
                    category: "kitchen".into(),
                    price: Some(PositiveMoney {
                        currency: currency.into(),
                        amount_minor,
                    }),
                    weight_grams: 100,
                    ..Default::default()
                }),
            })
            .await
            .expect("product");
    }

    pub async fn add(
        &mut self,
        cart_id: &str,
        sku: &str,
        quantity: i32,
    ) -> Result<pb::Cart, tonic::Status> {
        self.carts
            .add_item(add(cart_id, sku, quantity))
            .await
            .map(|r| r.into_inner().cart.unwrap())
    }

    pub async fn get(&mut self, cart_id: &str) -> pb::Cart {
        self.carts
            .get_cart(pb::GetCartRequest {
                cart_id: cart_id.into(),
            })
            .await
            .expect("get cart")
            .into_inner()
            .cart
            .unwrap()
    }
}

pub fn add(cart_id: &str, sku: &str, quantity: i32) -> pb::AddItemRequest {
    pb::AddItemRequest {
        request_id: rid(),
        cart_id: cart_id.into(),
        sku: sku.into(),
        quantity,
    }
}

/// `message` sent on behalf of `subject` (as the REST edge sends a verified
/// token's subject).
pub fn as_user<T>(subject: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-meshwork-subject", subject.parse().unwrap());
    request
}

pub fn rid() -> String {
    format!("req-{}", uuid::Uuid::now_v7().simple())
}

/// (sku, quantity) of each line.
pub fn lines(cart: &pb::Cart) -> Vec<(String, i32)> {
    cart.lines
        .iter()
        .map(|l| (l.sku.clone(), l.quantity))
        .collect()
}
