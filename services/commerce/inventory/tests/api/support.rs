//! The inventory service, and the checks every test ends with.

use meshwork_proto::meshwork::commerce::inventory::v1 as pb;
use meshwork_runtime::time::Clock;
use meshwork_testkit::{Backend, Mesh};
use tonic::transport::Channel;

pub use meshwork_testkit::{eventually, reason};

pub type Inventory = pb::inventory_service_client::InventoryServiceClient<Channel>;

pub struct Harness {
    pub mesh: Mesh,
    pub inventory: Inventory,
}

/// 2026-11-25T10:00:00Z in microseconds.
pub const T0: i64 = 1_795_600_800_000_000;

/// The inventory on a clock standing at T0, sweeping every 50 ms.
pub async fn start(backend: &Backend) -> Harness {
    let mesh = Mesh::builder(backend)
        .await
        .clock(Clock::fixed(T0))
        .flag("--inventory-sweep-interval=50ms")
        .start(&[&commerce_inventory::SERVICE])
        .await;
    Harness {
        inventory: Inventory::new(mesh.channel().await),
        mesh,
    }
}

impl Harness {
    pub async fn restock(&mut self, sku: &str, warehouse: &str, quantity: i64) -> pb::StockLevel {
        self.inventory
            .restock_item(pb::RestockItemRequest {
                request_id: rid(),
                sku: sku.into(),
                warehouse_id: warehouse.into(),
                quantity,
            })
            .await
            .expect("restock")
            .into_inner()
            .level
            .unwrap()
    }

    pub async fn total(&mut self, sku: &str) -> pb::StockLevel {
        self.inventory
            .get_stock(pb::GetStockRequest { sku: sku.into() })
            .await
            .unwrap()
            .into_inner()
            .stock
            .unwrap()
            .total
            .unwrap()
    }

    /// Every level's counters equal the sums of its movements, and
    /// `on_hand == available + reserved + committed` (what the
    /// reservations hold is checked where a test knows their ids:
    /// `ledger.rs`).
    pub async fn check_invariants(&mut self, skus: &[&str]) {
        for sku in skus {
            let stock = self
                .inventory
                .get_stock(pb::GetStockRequest { sku: (*sku).into() })
                .await
                .unwrap()
                .into_inner()
                .stock
                .unwrap();
            let movements = all_movements(&mut self.inventory, sku).await;
            for level in &stock.levels {
                assert!(level.available >= 0, "{level:?}");
                assert_eq!(
                    level.on_hand,
                    level.available + level.reserved + level.committed
                );
                let of_level = movements
                    .iter()
                    .filter(|m| m.warehouse_id == level.warehouse_id);
                let (mut on_hand, mut reserved, mut committed) = (0, 0, 0);
                for m in of_level {
                    on_hand += m.on_hand_delta;
                    reserved += m.reserved_delta;
                    committed += m.committed_delta;
                }
                assert_eq!(
                    (on_hand, reserved, committed),
                    (level.on_hand, level.reserved, level.committed),
                    "the ledger of {sku}/{} sums to its counters",
                    level.warehouse_id
                );
            }
        }
    }
}

pub async fn all_movements(inventory: &mut Inventory, sku: &str) -> Vec<pb::Movement> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = inventory
            .list_movements(pb::ListMovementsRequest {
                sku: sku.into(),
                page_size: 500,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.movements);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

pub fn rid() -> String {
    format!("req-{}", uuid::Uuid::now_v7().simple())
}

pub fn line(sku: &str, quantity: i64) -> pb::ReservationLine {
    pb::ReservationLine {
        sku: sku.into(),
        quantity,
        warehouse_id: String::new(),
    }
}

pub fn reserve_request(id: &str, lines: Vec<pb::ReservationLine>) -> pb::ReserveStockRequest {
    pb::ReserveStockRequest {
        reservation_id: id.into(),
        order_id: format!("ord-{id}"),
        lines,
        ttl: None,
    }
}

pub fn state(r: &pb::Reservation) -> pb::ReservationState {
    pb::ReservationState::try_from(r.state).unwrap()
}
