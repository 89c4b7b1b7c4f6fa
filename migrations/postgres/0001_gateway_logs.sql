-- The request log: one row per request the gateway answered, whatever its outcome.
CREATE TABLE gateway_logs (
    id BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
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
    cost_usd NUMERIC(20,10),
    saved_cost_usd NUMERIC(20,10),
    latency_ms INTEGER NOT NULL,
    ttfb_ms INTEGER,
    cache_hit BOOLEAN NOT NULL,
    failover_used BOOLEAN NOT NULL,
    attempts INTEGER NOT NULL,
    stream BOOLEAN NOT NULL,
    customer TEXT,
    feature TEXT,
    metadata JSONB NOT NULL DEFAULT '{}'
);

CREATE INDEX gateway_logs_created_at ON gateway_logs (created_at);
CREATE INDEX gateway_logs_key_name_created_at ON gateway_logs (key_name, created_at);
CREATE INDEX gateway_logs_model_created_at ON gateway_logs (model, created_at);
