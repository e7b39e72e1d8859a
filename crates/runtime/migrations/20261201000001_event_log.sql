-- The typed event log (meshwork_runtime::events): written in the same
-- transaction as the change it reports, numbered afterwards by the
-- sequencer in commit order, read by consumers from where they left off.
CREATE TABLE IF NOT EXISTS event_log (
    event_id    TEXT PRIMARY KEY,
    -- 0 until the sequencer numbers the committed row.
    sequence    BIGINT NOT NULL DEFAULT 0,
    topic       TEXT NOT NULL,
    event_key   TEXT NOT NULL,
    type_url    TEXT NOT NULL,
    -- The encoded message, base64 (one text type for both databases).
    payload     TEXT NOT NULL,
    traceparent TEXT NOT NULL,
    occurred_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS event_log_by_sequence ON event_log (sequence, occurred_at, event_id);

-- The last sequence handed out; its row lock serialises sequencers.
CREATE TABLE IF NOT EXISTS event_sequencer (
    id   INTEGER PRIMARY KEY,
    last BIGINT NOT NULL
);

INSERT INTO event_sequencer (id, last) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- A consumer's place in each producer's log, committed with the effect of
-- the events it handled (so an effect happens once), and the lease that
-- lets one replica at a time work a subscription.
CREATE TABLE IF NOT EXISTS event_cursors (
    subscription TEXT PRIMARY KEY,
    producer     TEXT NOT NULL,
    position     BIGINT NOT NULL,
    owner        TEXT NOT NULL,
    lease_until  BIGINT NOT NULL
);

-- Events a consumer could never apply (a payload it cannot read, a
-- message its rules refuse), set aside with the cursor move so that one
-- bad event does not stop the subscription.
CREATE TABLE IF NOT EXISTS event_dead_letters (
    subscription TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    sequence     BIGINT NOT NULL,
    reason       TEXT NOT NULL,
    set_aside_at BIGINT NOT NULL,
    PRIMARY KEY (subscription, event_id)
);
