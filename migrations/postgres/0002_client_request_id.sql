-- The row's key (request_id) is always made by the gateway; the client's X-Request-Id is kept beside it, so a client
-- that repeats an id (or claims one in advance) cannot merge or hide other requests' rows.
ALTER TABLE gateway_logs ADD COLUMN client_request_id TEXT;
