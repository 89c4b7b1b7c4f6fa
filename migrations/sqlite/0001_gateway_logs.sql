-- The request log: one row per request the gateway answered, whatever its outcome.
-- created_at is INTEGER microseconds since 1970 (UTC); booleans are 0 or 1; metadata is JSON text.
CREATE TABLE IF NOT EXISTS gateway_logs (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    request_id TEXT NOT NULL UNIQUE,
    key_name TEXT,
    endpoint TEXT NOT NULL,
    model TEXT,
    served_model TEXT,
    provider TEXT,
    original_provider TEXT,
    status_code INTEGER NOT NULL,
    error_message TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    cached_tokens INTEGER,
    cost_usd REAL,
    saved_cost_usd REAL,
    latency_ms INTEGER NOT NULL,
    ttfb_ms INTEGER,
    cache_hit INTEGER NOT NULL DEFAULT 0,
    failover_used INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    stream INTEGER NOT NULL DEFAULT 0,
    customer TEXT,
    feature TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX IF NOT EXISTS gateway_logs_created_at ON gateway_logs (created_at);
CREATE INDEX IF NOT EXISTS gateway_logs_model_created_at ON gateway_logs (model, created_at);
CREATE INDEX IF NOT EXISTS gateway_logs_key_created_at ON gateway_logs (key_name, created_at);
CREATE INDEX IF NOT EXISTS gateway_logs_customer_created_at ON gateway_logs (customer, created_at);
