-- Each journal line keeps the account's balance right after it, so that a
-- statement shows running balances and its opening balance is one lookup.
ALTER TABLE journal_entries ADD COLUMN balance_after_minor BIGINT NOT NULL DEFAULT 0;
CREATE INDEX journal_by_account_time ON journal_entries (account_id, created_at);
