-- The notification outbox: one row per event and channel, delivered in order of seq per channel. Times are
-- microseconds since 1970 from the delivering gateway's clock (leases compare them, so the gateways of a fleet share
-- one clock discipline: NTP).
CREATE TABLE notification_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    first_attempt_at INTEGER,
    last_attempt_at INTEGER,
    last_error TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    done_at INTEGER,
    UNIQUE (event_id, channel)
);

CREATE INDEX notification_outbox_channel_state ON notification_outbox (channel, state, seq);
