-- What kind of request a row is (chat or embeddings), and how the answer cache answered it: the hit's kind (exact or
-- semantic), a semantic hit's similarity and the entry it used (to trace a wrong answer and forget the entry), and
-- what the semantic cache's embedder call cost and took.
ALTER TABLE gateway_logs ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat';
ALTER TABLE gateway_logs ADD COLUMN cache_hit_kind TEXT;
ALTER TABLE gateway_logs ADD COLUMN cache_similarity DOUBLE PRECISION;
ALTER TABLE gateway_logs ADD COLUMN cache_entry TEXT;
ALTER TABLE gateway_logs ADD COLUMN embedder_cost_usd NUMERIC(20,10);
ALTER TABLE gateway_logs ADD COLUMN embedder_latency_ms INTEGER;
