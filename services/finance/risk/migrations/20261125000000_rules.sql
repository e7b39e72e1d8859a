-- The rules, the policy and the assessments of finance.risk.

CREATE TABLE rules (
    rule_id    TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    -- 1 enabled, 0 disabled (one integer type on both databases)
    enabled    BIGINT NOT NULL,
    score      BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    -- The condition as JSON, tagged by kind (see domain::Condition).
    condition  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row: the score thresholds.
CREATE TABLE policy (
    policy_id    BIGINT PRIMARY KEY CHECK (policy_id = 1),
    review_score BIGINT NOT NULL,
    reject_score BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

INSERT INTO policy (policy_id, review_score, reject_score, updated_at) VALUES (1, 50, 100, 0);

-- One assessment per transfer; hits as JSON.
CREATE TABLE assessments (
    transfer_id     TEXT PRIMARY KEY,
    from_account_id TEXT NOT NULL,
    to_account_id   TEXT NOT NULL,
    currency        TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    decision        TEXT NOT NULL,
    score           BIGINT NOT NULL,
    hits            TEXT NOT NULL,
    occur_at        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE INDEX assessments_by_sender ON assessments (from_account_id, transfer_id);
CREATE INDEX assessments_by_receiver ON assessments (to_account_id, transfer_id);

-- See meshwork_runtime::idempotency.
CREATE TABLE idempotency_keys (
    request_id  TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    result_id   TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
