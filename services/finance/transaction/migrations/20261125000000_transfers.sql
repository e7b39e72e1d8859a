-- The transfers of finance.transaction. The money is in finance.account's
-- ledger; these rows are each transfer's life. Same SQL conventions as the
-- ledger: integer money in minor units, integer microsecond timestamps.

CREATE TABLE transfers (
    transfer_id         TEXT PRIMARY KEY,
    request_id          TEXT NOT NULL,
    from_account_id     TEXT NOT NULL,
    to_account_id       TEXT NOT NULL,
    currency            TEXT NOT NULL,
    amount_minor        BIGINT NOT NULL,
    memo                TEXT NOT NULL,
    -- PROCESSING, PENDING_REVIEW, POSTED, REJECTED, FAILED, REVERSED
    state               TEXT NOT NULL,
    -- The ledger's refusal, kept so that a replay answers exactly as the
    -- first call did.
    failure_code        TEXT NOT NULL DEFAULT '',
    failure_reason      TEXT NOT NULL DEFAULT '',
    failure_subject     TEXT NOT NULL DEFAULT '',
    failure_message     TEXT NOT NULL DEFAULT '',
    -- Risk control's decision: '' (not assessed yet), APPROVE, REVIEW,
    -- REJECT, or APPROVED/DECLINED by a reviewer.
    risk_decision       TEXT NOT NULL DEFAULT '',
    risk_score          BIGINT NOT NULL DEFAULT 0,
    -- The reasons of the rules that fired, one per line.
    risk_reasons        TEXT NOT NULL DEFAULT '',
    review_request_id   TEXT NOT NULL DEFAULT '',
    review_note         TEXT NOT NULL DEFAULT '',
    posting_id          TEXT NOT NULL DEFAULT '',
    -- '' (none), PROCESSING (compensating posting in flight), DONE
    reversal_state      TEXT NOT NULL DEFAULT '',
    reversal_request_id TEXT NOT NULL DEFAULT '',
    reversal_reason     TEXT NOT NULL DEFAULT '',
    -- Each reversal attempt posts under its own key, so that a refused
    -- attempt (remembered by the ledger) does not block a later one.
    reversal_attempt    BIGINT NOT NULL DEFAULT 0,
    reversal_posting_id TEXT NOT NULL DEFAULT '',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE INDEX transfers_by_sender ON transfers (from_account_id, transfer_id);
CREATE INDEX transfers_by_receiver ON transfers (to_account_id, transfer_id);
CREATE INDEX transfers_in_flight ON transfers (state, reversal_state, updated_at);

-- See meshwork_runtime::idempotency.
CREATE TABLE idempotency_keys (
    request_id  TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    result_id   TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

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
