-- Transfers between customer accounts: a posting's second account and its
-- balance right after, so that a replayed PostTransfer returns exactly what
-- the first call did.
ALTER TABLE postings ADD COLUMN counterparty_account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE postings ADD COLUMN counterparty_balance_after_minor BIGINT NOT NULL DEFAULT 0;
