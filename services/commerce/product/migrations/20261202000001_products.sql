-- The catalogue of commerce.product.

-- The current state of each product; a deleted one keeps its row (deleted =
-- 1) so that its version keeps growing and caches can tell old from new.
CREATE TABLE products (
    sku            TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    brand          TEXT NOT NULL,
    category       TEXT NOT NULL,
    price_currency TEXT NOT NULL,
    price_minor    BIGINT NOT NULL CHECK (price_minor > 0),
    weight_grams   BIGINT NOT NULL,
    -- JSON object of string → string.
    attributes     TEXT NOT NULL,
    version        BIGINT NOT NULL,
    deleted        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE INDEX products_by_category ON products (category, sku);
CREATE INDEX products_by_brand ON products (brand, sku);

-- Every version of every product, as written: a retried write answers the
-- version it made, and the history stays.
CREATE TABLE product_revisions (
    sku            TEXT NOT NULL,
    version        BIGINT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    brand          TEXT NOT NULL,
    category       TEXT NOT NULL,
    price_currency TEXT NOT NULL,
    price_minor    BIGINT NOT NULL,
    weight_grams   BIGINT NOT NULL,
    attributes     TEXT NOT NULL,
    deleted        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (sku, version)
);
