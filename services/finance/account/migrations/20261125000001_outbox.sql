-- Events for the audit trail, written with the change they report (see
-- meshwork_runtime::outbox).
CREATE TABLE outbox (
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

CREATE INDEX outbox_pending ON outbox (delivered_at, occurred_at, event_id);
