-- Responses kept for `GET /v1/responses/{id}` and `previous_response_id` (`POST /v1/responses` with `store: true`):
-- the response object as it was answered, and the conversation's input items up to it (the previous responses'
-- inputs and outputs, then its own input). A response belongs to the key that created it (key_name, '' without
-- one); it is found only before expires_at (microseconds since 1970), and purged after.
CREATE TABLE stored_responses (
    id TEXT PRIMARY KEY,
    key_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    response TEXT NOT NULL,
    input TEXT NOT NULL
);

CREATE INDEX stored_responses_expires_at ON stored_responses (expires_at);
