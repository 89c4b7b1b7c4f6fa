import Foundation

/// One numbered schema change for PostgreSQL.
///
/// The numbered files in `migrations/` are the source of truth; `PostgresMigration.all` embeds the same text so
/// the binary needs no files at run time (a test checks that the two never drift apart).
public struct PostgresMigration: Sendable, Equatable {
    /// The number at the start of the file's name, recorded in `schema_migrations` once applied.
    public var version: Int
    /// The file's name in `migrations/`, e.g. `0001_gateway_logs.sql`.
    public var fileName: String
    /// The file's text.
    public var sql: String

    /// The statements of `sql`, in order: each ends with `;` at the end of a line, and `--` comment lines are dropped.
    /// (PostgreSQL's extended protocol runs one statement per query.)
    public var statements: [String] {
        var statements: [String] = []
        var current: [Substring] = []
        for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("--") { continue }
            current.append(line)
            if trimmed.hasSuffix(";") {
                statements.append(current.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines))
                current = []
            }
        }
        let rest = current.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty { statements.append(rest) }
        return statements
    }

    /// Every migration, oldest first.
    public static let all: [PostgresMigration] = [
        PostgresMigration(version: 1, fileName: "0001_gateway_logs.sql", sql: migration0001),
    ]
}

// MARK: - migrations/0001_gateway_logs.sql

private let migration0001 = """
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

"""
