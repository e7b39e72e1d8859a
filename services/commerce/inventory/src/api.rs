//! The gRPC face of commerce.inventory: protobuf ↔ domain conversion and
//! the checks a contract cannot state, nothing else.

use std::time::Duration;

use meshwork_proto::meshwork::commerce::inventory::v1 as pb;
use meshwork_runtime::time::to_timestamp;
use meshwork_runtime::validate::{self as checked, Checks, next_page_token};
use pb::inventory_service_server::InventoryService;
use tonic::{Request, Response, Status};

use crate::domain::{self, Level, Reservation, State, Wanted};
use crate::store::{Movement, Store};

/// Implements `meshwork.commerce.inventory.v1.InventoryService`.
pub struct InventoryApi {
    store: Store,
    default_ttl: Duration,
}

impl InventoryApi {
    /// The service over its store; reservations without a TTL hold their
    /// units for `default_ttl`.
    pub fn new(store: Store, default_ttl: Duration) -> Self {
        Self { store, default_ttl }
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    async fn restock_item(
        &self,
        request: Request<pb::RestockItemRequest>,
    ) -> Result<Response<pb::RestockItemResponse>, Status> {
        let r = request.into_inner();
        let level = self
            .store
            .restock(&r.request_id, &r.sku, &r.warehouse_id, r.quantity)
            .await?;
        Ok(Response::new(pb::RestockItemResponse {
            level: Some(level_to_pb(&level)),
        }))
    }

    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::GetStockResponse>, Status> {
        let sku = request.into_inner().sku;
        let levels = self.store.stock(&sku).await?;
        Ok(Response::new(pb::GetStockResponse {
            stock: Some(stock_to_pb(&sku, &levels)),
        }))
    }

    async fn batch_get_stock(
        &self,
        request: Request<pb::BatchGetStockRequest>,
    ) -> Result<Response<pb::BatchGetStockResponse>, Status> {
        let skus = request.into_inner().skus;
        let stocks = self.store.stocks(&skus).await?;
        Ok(Response::new(pb::BatchGetStockResponse {
            stocks: stocks
                .iter()
                .map(|(sku, levels)| stock_to_pb(sku, levels))
                .collect(),
        }))
    }

    async fn reserve_stock(
        &self,
        request: Request<pb::ReserveStockRequest>,
    ) -> Result<Response<pb::ReserveStockResponse>, Status> {
        let r = request.into_inner();
        let wanted: Vec<Wanted> = r
            .lines
            .into_iter()
            .map(|line| Wanted {
                sku: line.sku,
                warehouse_id: (!line.warehouse_id.is_empty()).then_some(line.warehouse_id),
                quantity: line.quantity,
            })
            .collect();
        let mut checks = Checks::new();
        let wanted = match domain::in_lock_order(wanted) {
            Ok(wanted) => wanted,
            Err(index) => {
                checks.fail(
                    &format!("lines[{index}]"),
                    "repeats the SKU of an earlier line (a SKU appears once per warehouse, \
                     and once at all when a line leaves the warehouse to the service)",
                );
                Vec::new()
            }
        };
        checks.finish()?;
        // The contract bounds the TTL to 1 s..1 day as seconds + nanos/1e9;
        // the same sum here, so an unnormalised duration means what was
        // checked.
        let requested_ttl = r.ttl.map_or(0, |d| {
            d.seconds
                .saturating_mul(1_000_000)
                .saturating_add(i64::from(d.nanos) / 1_000)
        });
        let ttl_micros = if requested_ttl > 0 {
            requested_ttl.clamp(1_000_000, 86_400_000_000)
        } else {
            i64::try_from(self.default_ttl.as_micros()).unwrap_or(i64::MAX)
        };
        let fingerprint = domain::fingerprint(&r.order_id, &wanted, requested_ttl);
        let reservation = self
            .store
            .reserve(
                &r.reservation_id,
                &r.order_id,
                &wanted,
                &fingerprint,
                ttl_micros,
            )
            .await?;
        Ok(Response::new(pb::ReserveStockResponse {
            reservation: Some(reservation_to_pb(&reservation)),
        }))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::GetReservationResponse>, Status> {
        let id = request.into_inner().reservation_id;
        let reservation = self
            .store
            .reservation(&id)
            .await?
            .ok_or(crate::error::InventoryError::NotFound(id))?;
        Ok(Response::new(pb::GetReservationResponse {
            reservation: Some(reservation_to_pb(&reservation)),
        }))
    }

    async fn commit_reservation(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> Result<Response<pb::CommitReservationResponse>, Status> {
        let reservation = self
            .store
            .commit(&request.into_inner().reservation_id)
            .await?;
        Ok(Response::new(pb::CommitReservationResponse {
            reservation: Some(reservation_to_pb(&reservation)),
        }))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        let r = request.into_inner();
        let reservation = self.store.release(&r.reservation_id, &r.reason).await?;
        Ok(Response::new(pb::ReleaseReservationResponse {
            reservation: Some(reservation_to_pb(&reservation)),
        }))
    }

    async fn ship_reservation(
        &self,
        request: Request<pb::ShipReservationRequest>,
    ) -> Result<Response<pb::ShipReservationResponse>, Status> {
        let reservation = self
            .store
            .ship(&request.into_inner().reservation_id)
            .await?;
        Ok(Response::new(pb::ShipReservationResponse {
            reservation: Some(reservation_to_pb(&reservation)),
        }))
    }

    async fn list_movements(
        &self,
        request: Request<pb::ListMovementsRequest>,
    ) -> Result<Response<pb::ListMovementsResponse>, Status> {
        let r = request.into_inner();
        let page_size = checked::page_size(r.page_size);
        let before = checked::page_token(&r.page_token);
        let mut found = self
            .store
            .movements(&r.sku, before.as_deref(), page_size + 1)
            .await?;
        let next_page_token = next_page_token(&mut found, page_size, |m| m.movement_id.clone());
        Ok(Response::new(pb::ListMovementsResponse {
            movements: found.iter().map(movement_to_pb).collect(),
            next_page_token,
        }))
    }
}

/// A level as the contract has it.
pub fn level_to_pb(level: &Level) -> pb::StockLevel {
    pb::StockLevel {
        sku: level.sku.clone(),
        warehouse_id: level.warehouse_id.clone(),
        on_hand: level.on_hand,
        reserved: level.reserved,
        committed: level.committed,
        available: level.available(),
        version: level.version,
    }
}

fn stock_to_pb(sku: &str, levels: &[Level]) -> pb::Stock {
    pb::Stock {
        sku: sku.to_owned(),
        levels: levels.iter().map(level_to_pb).collect(),
        total: Some(level_to_pb(&Level::total(sku, levels))),
    }
}

fn state_to_pb(state: State) -> pb::ReservationState {
    match state {
        State::Active => pb::ReservationState::Active,
        State::Committed => pb::ReservationState::Committed,
        State::Released => pb::ReservationState::Released,
        State::Expired => pb::ReservationState::Expired,
        State::Shipped => pb::ReservationState::Shipped,
    }
}

fn reservation_to_pb(r: &Reservation) -> pb::Reservation {
    pb::Reservation {
        reservation_id: r.reservation_id.clone(),
        order_id: r.order_id.clone(),
        state: state_to_pb(r.state) as i32,
        lines: r
            .lines
            .iter()
            .map(|l| pb::ReservationLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                warehouse_id: l.warehouse_id.clone(),
            })
            .collect(),
        expire_time: Some(to_timestamp(r.expires_at)),
        create_time: Some(to_timestamp(r.created_at)),
        update_time: Some(to_timestamp(r.updated_at)),
        release_reason: r.release_reason.clone(),
    }
}

fn movement_to_pb(m: &Movement) -> pb::Movement {
    pb::Movement {
        movement_id: m.movement_id.clone(),
        sku: m.sku.clone(),
        warehouse_id: m.warehouse_id.clone(),
        kind: m.kind.clone(),
        on_hand_delta: m.on_hand_delta,
        reserved_delta: m.reserved_delta,
        committed_delta: m.committed_delta,
        reservation_id: m.reservation_id.clone(),
        create_time: Some(to_timestamp(m.created_at)),
    }
}
