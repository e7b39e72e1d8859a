-- The payments of finance.payment. Money in integer minor units,
-- timestamps in integer microseconds, as everywhere in Meshwork.

CREATE TABLE payments (
    payment_id             TEXT PRIMARY KEY,
    request_id             TEXT NOT NULL,
    merchant_account_id    TEXT NOT NULL,
    merchant_order_ref     TEXT NOT NULL,
    currency               TEXT NOT NULL,
    amount_minor           BIGINT NOT NULL,
    -- ALIPAY, WECHAT_PAY, UNIONPAY
    channel                TEXT NOT NULL,
    description            TEXT NOT NULL,
    -- CREATED, PENDING, SUCCEEDED, FAILED, EXPIRED, PARTIALLY_REFUNDED, REFUNDED
    state                  TEXT NOT NULL,
    pay_url                TEXT NOT NULL DEFAULT '',
    channel_trade_id       TEXT NOT NULL DEFAULT '',
    failure_reason         TEXT NOT NULL DEFAULT '',
    -- Refunds that succeeded, and those in progress (reserved so that
    -- concurrent refunds never exceed the amount paid).
    refunded_minor         BIGINT NOT NULL DEFAULT 0,
    refund_reserved_minor  BIGINT NOT NULL DEFAULT 0,
    -- NONE, PENDING, SETTLED, FAILED
    settlement_state       TEXT NOT NULL DEFAULT 'NONE',
    settlement_transfer_id TEXT NOT NULL DEFAULT '',
    -- The W3C traceparent of the request that created it: the channel's
    -- later notification and the sync job link their work to it.
    traceparent            TEXT NOT NULL DEFAULT '',
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    expires_at             BIGINT NOT NULL
);

CREATE INDEX payments_by_merchant ON payments (merchant_account_id, payment_id);
CREATE INDEX payments_open ON payments (state, updated_at);
CREATE INDEX payments_settling ON payments (settlement_state, updated_at);

CREATE TABLE refunds (
    refund_id      TEXT PRIMARY KEY,
    payment_id     TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    amount_minor   BIGINT NOT NULL,
    reason         TEXT NOT NULL,
    -- PROCESSING, SUCCEEDED, FAILED
    state          TEXT NOT NULL,
    failure_reason TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE INDEX refunds_by_payment ON refunds (payment_id, refund_id);
CREATE INDEX refunds_processing ON refunds (state, updated_at);

-- Every channel notification taken, by its replay key (the channel's
-- notification id, or WeChat Pay's nonce): a key seen before is a replay.
CREATE TABLE notifications (
    channel     TEXT NOT NULL,
    replay_key  TEXT NOT NULL,
    payment_id  TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (channel, replay_key)
);

-- The clearing account (in finance.account) of each channel and currency:
-- money a channel collected enters the ledger there and moves on to the
-- merchant by a transfer.
CREATE TABLE clearing_accounts (
    channel    TEXT NOT NULL,
    currency   TEXT NOT NULL,
    account_id TEXT NOT NULL,
    PRIMARY KEY (channel, currency)
);

-- See meshwork_runtime::idempotency.
CREATE TABLE idempotency_keys (
    request_id  TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    result_id   TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- Events for the audit trail (see meshwork_runtime::outbox).
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
