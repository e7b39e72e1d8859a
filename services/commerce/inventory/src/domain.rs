//! Stock and reservations as values, and the rules of their life: what
//! each movement does to the counters, and what each request does to a
//! reservation in each state. Pure: the store carries out what these
//! decide.

use std::collections::BTreeSet;

/// The counters of one SKU in one warehouse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Level {
    pub sku: String,
    /// Empty in a total over warehouses.
    pub warehouse_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
    /// 0 in a total.
    pub version: i64,
}

impl Level {
    /// What a new reservation can get.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved - self.committed
    }

    /// The sums of `levels` (all of `sku`).
    pub fn total(sku: &str, levels: &[Level]) -> Level {
        levels.iter().fold(
            Level {
                sku: sku.to_owned(),
                ..Level::default()
            },
            |mut total, level| {
                total.on_hand += level.on_hand;
                total.reserved += level.reserved;
                total.committed += level.committed;
                total
            },
        )
    }
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Active,
    Committed,
    Released,
    Expired,
    Shipped,
}

impl State {
    /// Every state, for exhaustive tests.
    pub const ALL: [State; 5] = [
        State::Active,
        State::Committed,
        State::Released,
        State::Expired,
        State::Shipped,
    ];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "ACTIVE",
            State::Committed => "COMMITTED",
            State::Released => "RELEASED",
            State::Expired => "EXPIRED",
            State::Shipped => "SHIPPED",
        }
    }

    /// From storage.
    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A kind of movement, and what it does to a level's counters per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    /// Units received: on_hand up.
    Restock,
    /// Units held by a reservation: reserved up.
    Reserve,
    /// A held reservation paid for: reserved down, committed up.
    Commit,
    /// An expired reservation paid for while its units were still there:
    /// committed up (nothing was reserved any more).
    Rereserve,
    /// An ACTIVE reservation given back: reserved down.
    Release,
    /// A COMMITTED reservation given back (a paid order cancelled):
    /// committed down.
    ReleaseCommitted,
    /// An ACTIVE reservation not committed in time: reserved down.
    Expire,
    /// Committed units leave the warehouse: on_hand and committed down.
    Ship,
}

impl MovementKind {
    /// The ledger's name (`Rereserve` is a COMMIT and `ReleaseCommitted` a
    /// RELEASE; the deltas tell them apart).
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Restock => "RESTOCK",
            MovementKind::Reserve => "RESERVE",
            MovementKind::Commit | MovementKind::Rereserve => "COMMIT",
            MovementKind::Release | MovementKind::ReleaseCommitted => "RELEASE",
            MovementKind::Expire => "EXPIRE",
            MovementKind::Ship => "SHIP",
        }
    }

    /// (on_hand, reserved, committed) deltas for `quantity` units.
    pub fn deltas(self, quantity: i64) -> Deltas {
        let q = quantity;
        let (on_hand, reserved, committed) = match self {
            MovementKind::Restock => (q, 0, 0),
            MovementKind::Reserve => (0, q, 0),
            MovementKind::Commit => (0, -q, q),
            MovementKind::Rereserve => (0, 0, q),
            MovementKind::Release | MovementKind::Expire => (0, -q, 0),
            MovementKind::ReleaseCommitted => (0, 0, -q),
            MovementKind::Ship => (-q, 0, -q),
        };
        Deltas {
            on_hand,
            reserved,
            committed,
        }
    }

    /// Whether the movement takes units that must be available (and so
    /// needs the conditional form of the update).
    pub fn takes_available(self) -> bool {
        let d = self.deltas(1);
        d.reserved + d.committed - d.on_hand > 0
    }
}

/// Changes of a level's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deltas {
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
}

/// A reservation line as asked: the warehouse may be left to the service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wanted {
    pub sku: String,
    /// `None`: the first warehouse (by id) with enough available.
    pub warehouse_id: Option<String>,
    pub quantity: i64,
}

/// A reservation line as held.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    pub sku: String,
    pub warehouse_id: String,
    pub quantity: i64,
}

/// The lines of a request in the one order every writer takes stock rows
/// in (SKU, then warehouse, compared as bytes in Rust: never a database's
/// collation, which may differ), so that concurrent multi-SKU reservations
/// never wait on each other in a cycle; `Err` with the index of the first
/// line that repeats an earlier SKU and warehouse, or names a SKU that
/// another line leaves to the service's choice of warehouse (which might
/// choose the same one).
pub fn in_lock_order(mut wanted: Vec<Wanted>) -> Result<Vec<Wanted>, usize> {
    let mut seen = BTreeSet::new();
    let mut skus = std::collections::BTreeMap::<&str, bool>::new();
    for (index, line) in wanted.iter().enumerate() {
        let unpinned = line.warehouse_id.is_none();
        if !seen.insert((line.sku.clone(), line.warehouse_id.clone())) {
            return Err(index);
        }
        match skus.insert(&line.sku, unpinned) {
            Some(earlier_unpinned) if earlier_unpinned || unpinned => return Err(index),
            _ => {}
        }
    }
    wanted.sort();
    Ok(wanted)
}

/// Held lines in lock order (see [`in_lock_order`]).
pub fn sorted(mut lines: Vec<Line>) -> Vec<Line> {
    lines.sort();
    lines
}

/// What a reservation request is, for its idempotency: the same id with
/// another order or other lines is another request.
pub fn fingerprint(order_id: &str, wanted: &[Wanted], ttl_micros: i64) -> String {
    let mut parts = vec![
        "reserve".to_owned(),
        order_id.to_owned(),
        ttl_micros.to_string(),
    ];
    for line in wanted {
        parts.push(line.sku.clone());
        parts.push(line.warehouse_id.clone().unwrap_or_default());
        parts.push(line.quantity.to_string());
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    meshwork_runtime::idempotency::fingerprint(&parts)
}

/// A SKU a reservation could not get enough of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub sku: String,
    pub requested: i64,
    /// Over the warehouses the line could use.
    pub available: i64,
}

/// Stock held for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub reservation_id: String,
    pub order_id: String,
    pub state: State,
    pub lines: Vec<Line>,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub release_reason: String,
}

/// What CommitReservation does in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPlan {
    /// reserved → committed.
    Commit,
    /// Take the units afresh (the reservation expired), or refuse.
    Rereserve,
    /// Committed (or shipped) already: answer as it is.
    Done,
    /// Released: its units are gone.
    Refuse,
}

/// What ReleaseReservation does in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleasePlan {
    /// Give back with this movement.
    Give(MovementKind),
    /// Expired: its units are back already; mark it released so that a
    /// late commit cannot take them again.
    Mark,
    /// Released already: answer as it is.
    Done,
    /// Shipped: the goods have left.
    Refuse,
}

/// What ShipReservation does in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipPlan {
    /// committed → gone.
    Ship,
    /// Shipped already.
    Done,
    /// Not committed (ACTIVE, RELEASED, EXPIRED).
    Refuse,
}

/// The transition table of a reservation: one function per request, total
/// over the states.
pub fn commit_plan(state: State) -> CommitPlan {
    match state {
        State::Active => CommitPlan::Commit,
        State::Expired => CommitPlan::Rereserve,
        State::Committed | State::Shipped => CommitPlan::Done,
        State::Released => CommitPlan::Refuse,
    }
}

/// See [`commit_plan`].
pub fn release_plan(state: State) -> ReleasePlan {
    match state {
        State::Active => ReleasePlan::Give(MovementKind::Release),
        State::Committed => ReleasePlan::Give(MovementKind::ReleaseCommitted),
        State::Expired => ReleasePlan::Mark,
        State::Released => ReleasePlan::Done,
        State::Shipped => ReleasePlan::Refuse,
    }
}

/// See [`commit_plan`].
pub fn ship_plan(state: State) -> ShipPlan {
    match state {
        State::Committed => ShipPlan::Ship,
        State::Shipped => ShipPlan::Done,
        State::Active | State::Released | State::Expired => ShipPlan::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(on_hand: i64, reserved: i64, committed: i64) -> Level {
        Level {
            sku: "A".into(),
            warehouse_id: "w".into(),
            on_hand,
            reserved,
            committed,
            version: 1,
        }
    }

    fn apply(level: &mut Level, kind: MovementKind, quantity: i64) {
        let d = kind.deltas(quantity);
        level.on_hand += d.on_hand;
        level.reserved += d.reserved;
        level.committed += d.committed;
    }

    #[test]
    fn every_movement_keeps_on_hand_the_sum_of_its_parts() {
        use MovementKind::*;
        // A whole life: receive 10, hold 4, pay, ship 4; hold 3, expire;
        // hold 2, pay, cancel (restock).
        let mut l = level(0, 0, 0);
        for (kind, q) in [
            (Restock, 10),
            (Reserve, 4),
            (Commit, 4),
            (Ship, 4),
            (Reserve, 3),
            (Expire, 3),
            (Reserve, 2),
            (Commit, 2),
            (ReleaseCommitted, 2),
            (Rereserve, 1),
        ] {
            apply(&mut l, kind, q);
            assert!(
                l.available() >= 0 && l.reserved >= 0 && l.committed >= 0,
                "{kind:?}"
            );
            assert_eq!(l.on_hand, l.available() + l.reserved + l.committed);
        }
        assert_eq!(
            (l.on_hand, l.reserved, l.committed, l.available()),
            (6, 0, 1, 5)
        );
    }

    #[test]
    fn only_movements_that_take_units_need_them_available() {
        use MovementKind::*;
        let taking: Vec<_> = [
            Restock,
            Reserve,
            Commit,
            Rereserve,
            Release,
            ReleaseCommitted,
            Expire,
            Ship,
        ]
        .into_iter()
        .filter(|k| k.takes_available())
        .collect();
        assert_eq!(taking, [Reserve, Rereserve]);
    }

    #[test]
    fn the_transition_table_is_total_and_only_forward() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
            let commit = commit_plan(state);
            let release = release_plan(state);
            let ship = ship_plan(state);
            match state {
                State::Active => {
                    assert_eq!((commit, ship), (CommitPlan::Commit, ShipPlan::Refuse));
                    assert_eq!(release, ReleasePlan::Give(MovementKind::Release));
                }
                State::Committed => {
                    assert_eq!((commit, ship), (CommitPlan::Done, ShipPlan::Ship));
                    assert_eq!(release, ReleasePlan::Give(MovementKind::ReleaseCommitted));
                }
                State::Expired => {
                    assert_eq!((commit, ship), (CommitPlan::Rereserve, ShipPlan::Refuse));
                    assert_eq!(release, ReleasePlan::Mark);
                }
                State::Released => {
                    assert_eq!((commit, ship), (CommitPlan::Refuse, ShipPlan::Refuse));
                    assert_eq!(release, ReleasePlan::Done);
                }
                State::Shipped => {
                    assert_eq!((commit, ship), (CommitPlan::Done, ShipPlan::Done));
                    assert_eq!(release, ReleasePlan::Refuse);
                }
            }
        }
        assert_eq!(State::parse("PENDING"), None);
    }

    #[test]
    fn lines_are_taken_in_one_order_and_repeats_refused() {
        let w = |sku: &str, wh: Option<&str>, q| Wanted {
            sku: sku.into(),
            warehouse_id: wh.map(Into::into),
            quantity: q,
        };
        let sorted = in_lock_order(vec![
            w("C", None, 1),
            w("A", Some("w2"), 2),
            w("A", Some("w1"), 3),
            w("B", None, 1),
        ])
        .unwrap();
        let order: Vec<_> = sorted
            .iter()
            .map(|l| (l.sku.as_str(), l.warehouse_id.as_deref()))
            .collect();
        assert_eq!(
            order,
            [
                ("A", Some("w1")),
                ("A", Some("w2")),
                ("B", None),
                ("C", None)
            ]
        );
        assert_eq!(
            in_lock_order(vec![w("A", None, 1), w("B", None, 1), w("A", None, 2)]),
            Err(2)
        );
        // The fingerprint does not depend on the order lines were sent in.
        let a = in_lock_order(vec![w("B", None, 1), w("A", None, 2)]).unwrap();
        let b = in_lock_order(vec![w("A", None, 2), w("B", None, 1)]).unwrap();
        assert_eq!(fingerprint("o1", &a, 0), fingerprint("o1", &b, 0));
        assert_ne!(fingerprint("o1", &a, 0), fingerprint("o2", &a, 0));
        assert_ne!(fingerprint("o1", &a, 0), fingerprint("o1", &a, 1_000_000));
    }

    #[test]
    fn a_total_sums_the_warehouses() {
        let total = Level::total("A", &[level(10, 2, 3), level(5, 0, 1)]);
        assert_eq!(
            (
                total.on_hand,
                total.reserved,
                total.committed,
                total.available()
            ),
            (15, 2, 4, 9)
        );
        assert_eq!((total.warehouse_id.as_str(), total.version), ("", 0));
    }
}
