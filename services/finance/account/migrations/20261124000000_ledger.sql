-- The ledger of finance.account. One SQL text for SQLite and PostgreSQL:
-- integer money in minor units, integer timestamps (microseconds since the
-- Unix epoch), text ids.

CREATE TABLE accounts (
    account_id     TEXT PRIMARY KEY,
    account_number TEXT NOT NULL UNIQUE,
    owner_id       TEXT NOT NULL,
    currency       TEXT NOT NULL,
    account_type   TEXT NOT NULL,
    state          TEXT NOT NULL,
    freeze_reason  TEXT NOT NULL DEFAULT '',
    balance_minor  BIGINT NOT NULL DEFAULT 0,
    version        BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    -- Defence in depth: only the settlement account may go below zero.
    CONSTRAINT balance_not_negative CHECK (account_type = 'SETTLEMENT' OR balance_minor >= 0)
);

CREATE INDEX accounts_by_owner ON accounts (owner_id, account_id);

-- One posting per money movement; balance_after is the customer account's
-- balance right after it, so a replayed request returns exactly what the
-- first one did.
CREATE TABLE postings (
    posting_id          TEXT PRIMARY KEY,
    kind                TEXT NOT NULL,
    account_id          TEXT NOT NULL REFERENCES accounts (account_id),
    currency            TEXT NOT NULL,
    amount_minor        BIGINT NOT NULL,
    memo                TEXT NOT NULL,
    balance_after_minor BIGINT NOT NULL,
    created_at          BIGINT NOT NULL
);

-- Double entry: the entries of a posting sum to zero.
CREATE TABLE journal_entries (
    entry_id     TEXT PRIMARY KEY,
    posting_id   TEXT NOT NULL REFERENCES postings (posting_id),
    account_id   TEXT NOT NULL REFERENCES accounts (account_id),
    currency     TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE INDEX journal_by_account ON journal_entries (account_id, entry_id);

-- See meshwork_runtime::idempotency.
CREATE TABLE idempotency_keys (
    request_id  TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    result_id   TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
