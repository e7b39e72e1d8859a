//! The gRPC face of commerce.cart: protobuf ↔ domain conversion, and the
//! order of the steps (look the SKU up, change the cart, price it).

use meshwork_proto::meshwork::commerce::cart::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::caller;
use meshwork_runtime::time::{Clock, to_timestamp};
use pb::cart_service_server::CartService;
use tonic::{Request, Response, Status};

use crate::catalogue::Catalogue;
use crate::domain::{self, CartState, PricedCart};
use crate::error::CartError;
use crate::store::{Changed, Store};

/// Implements `meshwork.commerce.cart.v1.CartService`.
pub struct CartApi {
    store: Store,
    catalogue: Catalogue,
    clock: Clock,
    ttl_micros: i64,
}

impl CartApi {
    /// The service over its store and the catalogue; carts expire
    /// `ttl_micros` after their last write.
    pub fn new(store: Store, catalogue: Catalogue, clock: Clock, ttl_micros: i64) -> Self {
        Self {
            store,
            catalogue,
            clock,
            ttl_micros,
        }
    }

    /// The cart priced now, as the contract has it.
    async fn priced(&self, cart_id: &str, state: CartState) -> Result<pb::Cart, CartError> {
        let prices = self
            .catalogue
            .prices(state.lines.keys().cloned().collect())
            .await?;
        Ok(cart_to_pb(cart_id, &domain::price(&state, &prices)))
    }

    /// The cart after a change, or the change's refusal.
    async fn changed(&self, cart_id: &str, changed: Changed) -> Result<pb::Cart, CartError> {
        let state = changed?.map_err(CartError::refused)?;
        self.priced(cart_id, state).await
    }

    /// The currency the catalogue prices `sku` in (NOT_FOUND when it does
    /// not have it). Whether it is the cart's is checked by the change
    /// itself, atomically.
    async fn currency_of(&self, sku: &str) -> Result<String, CartError> {
        let prices = self.catalogue.prices(vec![sku.to_owned()]).await?;
        prices
            .get(sku)
            .map(|price| price.currency.clone())
            .ok_or_else(|| CartError::UnknownProduct(sku.to_owned()))
    }
}

/// The scope of the caller's cart ids: the verified subject, or the
/// guests' ("").
fn scope() -> String {
    caller::subject().unwrap_or_default()
}

#[tonic::async_trait]
impl CartService for CartApi {
    async fn get_cart(
        &self,
        request: Request<pb::GetCartRequest>,
    ) -> Result<Response<pb::GetCartResponse>, Status> {
        let cart_id = request.into_inner().cart_id;
        let state = self
            .store
            .get(&scope(), &cart_id, self.clock.now_micros())
            .await
            .map_err(CartError::from)?;
        let cart = self.priced(&cart_id, state).await?;
        Ok(Response::new(pb::GetCartResponse { cart: Some(cart) }))
    }

    async fn add_item(
        &self,
        request: Request<pb::AddItemRequest>,
    ) -> Result<Response<pb::AddItemResponse>, Status> {
        let r = request.into_inner();
        let currency = self.currency_of(&r.sku).await?;
        let changed = self
            .store
            .add(
                &scope(),
                &r.cart_id,
                &r.sku,
                i64::from(r.quantity),
                &currency,
                &r.request_id,
                self.clock.now_micros(),
                self.ttl_micros,
            )
            .await;
        let cart = self.changed(&r.cart_id, changed).await?;
        Ok(Response::new(pb::AddItemResponse { cart: Some(cart) }))
    }

    async fn set_item_quantity(
        &self,
        request: Request<pb::SetItemQuantityRequest>,
    ) -> Result<Response<pb::SetItemQuantityResponse>, Status> {
        let r = request.into_inner();
        let currency = if r.quantity > 0 {
            self.currency_of(&r.sku).await?
        } else {
            String::new()
        };
        let changed = self
            .store
            .set(
                &scope(),
                &r.cart_id,
                &r.sku,
                i64::from(r.quantity),
                &currency,
                self.clock.now_micros(),
                self.ttl_micros,
            )
            .await;
        let cart = self.changed(&r.cart_id, changed).await?;
        Ok(Response::new(pb::SetItemQuantityResponse {
            cart: Some(cart),
        }))
    }

    async fn clear_cart(
        &self,
        request: Request<pb::ClearCartRequest>,
    ) -> Result<Response<pb::ClearCartResponse>, Status> {
        let cart_id = request.into_inner().cart_id;
        let changed = self
            .store
            .clear(&scope(), &cart_id, self.clock.now_micros())
            .await;
        let cart = self.changed(&cart_id, changed).await?;
        Ok(Response::new(pb::ClearCartResponse { cart: Some(cart) }))
    }

    async fn merge_carts(
        &self,
        request: Request<pb::MergeCartsRequest>,
    ) -> Result<Response<pb::MergeCartsResponse>, Status> {
        let r = request.into_inner();
        let changed = self
            .store
            .merge(
                &scope(),
                &r.cart_id,
                &r.guest_cart_id,
                self.clock.now_micros(),
                self.ttl_micros,
            )
            .await;
        let cart = self.changed(&r.cart_id, changed).await?;
        Ok(Response::new(pb::MergeCartsResponse { cart: Some(cart) }))
    }
}

fn money(currency: &str, amount_minor: i64) -> Money {
    Money {
        currency: currency.to_owned(),
        amount_minor,
    }
}

fn cart_to_pb(cart_id: &str, cart: &PricedCart) -> pb::Cart {
    pb::Cart {
        cart_id: cart_id.to_owned(),
        lines: cart
            .lines
            .iter()
            .map(|line| pb::CartLine {
                sku: line.sku.clone(),
                quantity: i32::try_from(line.quantity).unwrap_or(i32::MAX),
                name: line
                    .price
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                unit_price: line
                    .price
                    .as_ref()
                    .map(|p| money(&p.currency, p.amount_minor)),
                line_total: line
                    .price
                    .as_ref()
                    .map(|p| money(&p.currency, p.amount_minor.saturating_mul(line.quantity))),
                available: line.available,
            })
            .collect(),
        subtotal: cart.subtotal.as_ref().map(|(c, a)| money(c, *a)),
        item_count: i32::try_from(cart.item_count).unwrap_or(i32::MAX),
        expire_time: (cart.expires_at > 0 && !cart.lines.is_empty())
            .then(|| to_timestamp(cart.expires_at)),
    }
}
