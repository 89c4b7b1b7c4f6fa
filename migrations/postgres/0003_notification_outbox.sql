-- The notification outbox: one row per event and channel, delivered in order of seq per channel. Times are
-- microseconds since 1970 from the delivering gateway's clock (leases compare them, so the gateways of a fleet share
-- one clock discipline: NTP).
CREATE TABLE notification_outbox (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    first_attempt_at BIGINT,
    last_attempt_at BIGINT,
    last_error TEXT,
    lease_owner TEXT,
    lease_until BIGINT,
    done_at BIGINT,
    UNIQUE (event_id, channel)
);

CREATE INDEX notification_outbox_channel_state ON notification_outbox (channel, state, seq);
