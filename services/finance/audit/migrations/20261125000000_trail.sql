-- The audit trail of finance.audit: one row per event, numbered and chained
-- by hash. Rows are only ever inserted; VerifyChain detects any edit.

CREATE TABLE audit_records (
    sequence      BIGINT PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    source        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource      TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    -- JSON object of strings, masked.
    attributes    TEXT NOT NULL,
    occurred_at   BIGINT NOT NULL,
    trace_id      TEXT NOT NULL,
    recorded_at   BIGINT NOT NULL,
    previous_hash TEXT NOT NULL,
    hash          TEXT NOT NULL
);

CREATE INDEX audit_by_time ON audit_records (occurred_at, sequence);
CREATE INDEX audit_by_resource ON audit_records (resource, sequence);

-- The chain's end: appends lock this row, so they are numbered one at a
-- time, and its hash lets VerifyChain notice records cut off the end.
CREATE TABLE chain_head (
    chain_id BIGINT PRIMARY KEY CHECK (chain_id = 1),
    sequence BIGINT NOT NULL,
    hash     TEXT NOT NULL
);

INSERT INTO chain_head (chain_id, sequence, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
