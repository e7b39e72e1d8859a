-- The tables every service has, defined once here and applied after each
-- service's own migrations (tracked in _meshwork_platform_migrations).
-- The finance services created them in their own first migrations, which
-- are released and never edited: IF NOT EXISTS leaves those as they are.

-- Request-id claims (meshwork_runtime::idempotency).
CREATE TABLE IF NOT EXISTS idempotency_keys (
    request_id  TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    result_id   TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- Events written with the change they report (meshwork_runtime::outbox).
CREATE TABLE IF NOT EXISTS outbox (
    event_id     TEXT PRIMARY KEY,
    occurred_at  BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    resource     TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    attributes   TEXT NOT NULL,
    traceparent  TEXT NOT NULL,
    delivered_at BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered_at, occurred_at, event_id);
