-- Stock, reservations and the movement ledger of commerce.inventory.

-- The counters of one SKU in one warehouse. The checks are the last line of
-- defence: every statement that changes a counter is conditional already.
CREATE TABLE stock_levels (
    sku          TEXT NOT NULL,
    warehouse_id TEXT NOT NULL,
    on_hand      BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved     BIGINT NOT NULL CHECK (reserved >= 0),
    committed    BIGINT NOT NULL CHECK (committed >= 0),
    version      BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (sku, warehouse_id),
    CHECK (on_hand - reserved - committed >= 0)
);

-- One row per reservation id, whatever happened to it. A tombstone (an id
-- released before it was reserved) has state RELEASED, an empty
-- fingerprint and no lines.
CREATE TABLE reservations (
    reservation_id TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL,
    state          TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    release_reason TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- The sweeper's scan: ACTIVE reservations by expiry.
CREATE INDEX reservations_by_expiry ON reservations (state, expires_at);

CREATE TABLE reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    sku            TEXT NOT NULL,
    warehouse_id   TEXT NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, sku, warehouse_id)
);

-- Append-only: every change of a level's counters, with the level after it.
CREATE TABLE movements (
    movement_id     TEXT PRIMARY KEY,
    sku             TEXT NOT NULL,
    warehouse_id    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    on_hand_delta   BIGINT NOT NULL,
    reserved_delta  BIGINT NOT NULL,
    committed_delta BIGINT NOT NULL,
    on_hand_after   BIGINT NOT NULL,
    reserved_after  BIGINT NOT NULL,
    committed_after BIGINT NOT NULL,
    version_after   BIGINT NOT NULL,
    reservation_id  TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE INDEX movements_by_sku ON movements (sku, movement_id);
