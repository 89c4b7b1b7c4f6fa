import Foundation
import Logging
import SQLiteNIO

/// The request log in one SQLite file: the default backend, for a single gateway.
///
/// The file is opened in WAL mode with `synchronous=NORMAL` (a crash may lose the last transactions,
/// never corrupt the file) and a busy timeout, so `llm-gateway stats` can read while the daemon writes.
/// SQLiteNIO runs every call on its thread pool, never on an event loop.
///
/// `created_at` is stored as INTEGER microseconds since 1970 (UTC): exact, sortable and cheap to compare;
/// `datetime(created_at / 1000000, 'unixepoch')` shows it in the `sqlite3` shell.
///
/// ```swift
/// let store = try await SQLiteRequestLogStore(path: "/var/lib/llm-gateway/requests.db", logger: logger)
/// try await store.migrate()
/// ```
public final class SQLiteRequestLogStore: RequestLogStore {
    /// The file the rows are kept in.
    public let path: String
    private let dedicated: DedicatedSQLiteConnection
    var connection: SQLiteConnection { dedicated.connection }
    private let logger: Logger
    /// One writer at a time on the connection: a batch spans several statements inside one transaction.
    let gate = SerialGate()

    /// Opens (creating when missing) the database file and its parent folder.
    /// - Parameters:
    ///   - path: The database file, e.g. `request_log.path`.
    ///   - logger: Where open and migration messages go.
    /// - Throws: `SQLiteError` when the file cannot be opened.
    public init(path: String, logger: Logger) async throws {
        self.path = path
        self.logger = logger
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, !FileManager.default.fileExists(atPath: parent) {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
        dedicated = try await DedicatedSQLiteConnection.open(path: path, logger: logger)
        let connection = dedicated.connection
        do {
            // Replaces SQLiteNIO's spin-forever busy handler with a bounded wait.
            _ = try await connection.query("PRAGMA busy_timeout = 5000")
            _ = try await connection.query("PRAGMA journal_mode = WAL")
            _ = try await connection.query("PRAGMA synchronous = NORMAL")
        } catch {
            try? await dedicated.close()
            throw error
        }
    }

    // MARK: - Schema

    /// Creates or upgrades the schema from `migrations/sqlite/`; running it again changes nothing.
    public func migrate() async throws {
        try await migrate(applying: Migration.all(for: .sqlite))
    }

    /// Applies each of `migrations` not yet recorded in `schema_migrations`, in order, each in its own transaction.
    func migrate(applying migrations: [Migration]) async throws {
        try await gate.run {
            _ = try await connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            for migration in migrations {
                // IMMEDIATE takes the write lock first, so two processes migrating at once apply each step once.
                try await transaction(immediate: true) {
                    let applied = try await connection.query(
                        "SELECT 1 FROM schema_migrations WHERE version = ?", [.integer(migration.version)])
                    guard applied.isEmpty else { return }
                    for statement in migration.statements { _ = try await connection.query(statement) }
                    _ = try await connection.query(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                        [.integer(migration.version)])
                    logger.info("request log migrated", metadata: ["migration": "\(migration.fileName)", "path": "\(path)"])
                }
            }
        }
    }

    // MARK: - Writes

    static let columns = [
        "created_at", "request_id", "client_request_id", "key_name", "endpoint", "model", "served_model", "provider", "original_provider",
        "status_code", "error_message", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cost_usd",
        "saved_cost_usd", "latency_ms", "ttfb_ms", "cache_hit", "failover_used", "attempts", "stream", "customer", "feature",
        "kind", "cache_hit_kind", "cache_similarity", "cache_entry", "embedder_cost_usd", "embedder_latency_ms", "metadata",
    ]
    /// Rows per statement. A batch is written as several short statements in one transaction, so the thread
    /// pool never holds a vCPU for long at a time: a 500-row statement took it for over 2 ms, during which the
    /// event loop it shared a vCPU with waited (the scheduler does not preempt a thread mid-slice for a waking
    /// one), and those waits were the 1 % slowest answers. 32 rows take about a tenth of a millisecond.
    static let rowsPerStatement = 32

    /// Writes `records` in one transaction; a `requestID` already stored is skipped.
    /// Values too big, of the wrong type or out of range, and constraints, refuse rows; a busy, full or failing
    /// disk may pass.
    public func refusesRows(_ error: any Error) -> Bool {
        guard let error = error as? SQLiteError else { return false }
        switch error.reason {
        case .tooBig, .mismatch, .range, .constraint, .constraintCheckFailed, .constraintNotNullFailed, .constraintPrimaryKeyFailed,
            .constraintUniqueFailed, .constraintStrictDataTypeFailed:
            return true
        default:
            return false
        }
    }

    public func insert(_ records: [RequestRecord]) async throws {
        guard !records.isEmpty else { return }
        try await gate.run {
            try await transaction(immediate: true) {
                for chunk in records.statementChunks(of: Self.rowsPerStatement) {
                    // Built on the thread pool, not on an event loop, where it would hold up that loop's requests.
                    let statement = try await onThreadPool { Self.insertStatement(chunk) }
                    _ = try await connection.query(statement.sql, statement.binds)
                }
                let responses = records.compactMap(\.storedResponse)
                for start in stride(from: 0, to: responses.count, by: Self.rowsPerStatement) {
                    let chunk = responses[start..<min(start + Self.rowsPerStatement, responses.count)]
                    _ = try await connection.query(Self.insertStoredResponsesSQL(rows: chunk.count), chunk.flatMap(Self.binds))
                }
            }
        }
    }

    /// The `INSERT` statement for `records`.
    static func insertStatement(_ records: ArraySlice<RequestRecord>) -> (sql: String, binds: [SQLiteData]) {
        (records.count == rowsPerStatement ? fullStatementSQL : insertSQL(rows: records.count), records.flatMap(binds))
    }

    /// The statement of a full chunk, written once.
    private static let fullStatementSQL = insertSQL(rows: rowsPerStatement)

    private static func insertSQL(rows: Int) -> String {
        let row = "(" + Array(repeating: "?", count: columns.count).joined(separator: ",") + ")"
        return "INSERT OR IGNORE INTO gateway_logs (\(columns.joined(separator: ", "))) VALUES "
            + Array(repeating: row, count: rows).joined(separator: ",")
    }

    static func binds(_ record: RequestRecord) -> [SQLiteData] {
        func text(_ value: String?) -> SQLiteData { value.map { .text($0) } ?? .null }
        func integer(_ value: Int?) -> SQLiteData { value.map { .integer(SQLiteInt64($0)) } ?? .null }
        func real(_ value: Double?) -> SQLiteData { value.map { .float($0) } ?? .null }
        func flag(_ value: Bool) -> SQLiteData { .integer(value ? 1 : 0) }
        return [
            .integer(SQLiteInt64(record.createdAtMicros)), .text(record.requestID), text(record.clientRequestID), text(record.keyName), .text(record.endpoint),
            text(record.model), text(record.servedModel), text(record.provider), text(record.originalProvider),
            integer(record.statusCode), text(record.errorMessage), integer(record.promptTokens), integer(record.completionTokens),
            integer(record.totalTokens), integer(record.cachedTokens), real(record.costUSD), real(record.savedCostUSD),
            integer(record.latencyMs), integer(record.ttfbMs), flag(record.cacheHit), flag(record.failoverUsed),
            integer(record.attempts), flag(record.stream), text(record.customer), text(record.feature),
            .text(record.kind), text(record.cacheHitKind), real(record.cacheSimilarity), text(record.cacheEntry),
            real(record.embedderCostUSD), integer(record.embedderLatencyMs), .text(RequestRecord.metadataJSON(record.metadata)),
        ]
    }

    // MARK: - Reads

    /// Aggregates the rows created at or after `sinceMicros`, grouped by `dimension`, biggest spend first.
    ///
    /// Percentiles are computed here from the group's latencies (SQLite has none), interpolated like
    /// PostgreSQL's `percentile_cont`.
    public func stats(sinceMicros: Int64, by dimension: StatsDimension) async throws -> [StatsRow] {
        let column = dimension.column
        let since: [SQLiteData] = [.integer(SQLiteInt64(sinceMicros))]
        let sums = try await connection.query(
            """
            SELECT \(column) AS grp, COUNT(*) AS requests,
                   SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END) AS errors,
                   SUM(cache_hit) AS cache_hits,
                   COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,
                   COALESCE(SUM(completion_tokens), 0) AS completion_tokens,
                   COALESCE(SUM(cost_usd), 0.0) AS spend,
                   COALESCE(SUM(saved_cost_usd), 0.0) AS saved
            FROM gateway_logs WHERE created_at >= ? GROUP BY \(column)
            """, since)
        let latencies = LatencyCollector()
        try await connection.query(
            "SELECT \(column) AS grp, latency_ms FROM gateway_logs WHERE created_at >= ? ORDER BY \(column), latency_ms", since
        ) { row in
            latencies.add(group: row.column("grp")?.string, latency: row.column("latency_ms")?.double ?? 0)
        }
        let sorted = latencies.groups
        return sums.map { row in
            let key = row.column("grp")?.string
            let values = sorted[key ?? LatencyCollector.noneKey] ?? []
            return StatsRow(
                group: key ?? StatsRow.noGroup,
                requests: Int(row.column("requests")?.integer ?? 0),
                errors: Int(row.column("errors")?.integer ?? 0),
                cacheHits: Int(row.column("cache_hits")?.integer ?? 0),
                promptTokens: Int(row.column("prompt_tokens")?.integer ?? 0),
                completionTokens: Int(row.column("completion_tokens")?.integer ?? 0),
                spendUSD: row.column("spend")?.double ?? 0,
                savedUSD: row.column("saved")?.double ?? 0,
                latencyP50Ms: Percentile.continuous(values, 0.50),
                latencyP95Ms: Percentile.continuous(values, 0.95))
        }.sorted(by: StatsRow.bySpend)
    }

    public func spend(sinceMicros: Int64) async throws -> [SpendRow] {
        try await connection.query(
            """
            SELECT MIN(created_at) AS created, key_name, customer, feature, model, provider, metadata,
                   SUM(COALESCE(cost_usd, 0) + COALESCE(embedder_cost_usd, 0)) AS cost
            FROM gateway_logs WHERE created_at >= ? AND (cost_usd > 0 OR embedder_cost_usd > 0)
            GROUP BY created_at / 900000000, key_name, customer, feature, model, provider, metadata
            """, [.integer(SQLiteInt64(sinceMicros))]
        ).map { row in
            SpendRow(
                createdAtMicros: Int64(row.column("created")?.integer ?? 0), key: row.column("key_name")?.string,
                customer: row.column("customer")?.string, feature: row.column("feature")?.string, model: row.column("model")?.string,
                provider: row.column("provider")?.string, metadata: SpendRow.metadata(fromJSON: row.column("metadata")?.string ?? "{}"),
                costUSD: row.column("cost")?.double ?? 0)
        }
    }

    public func hourlySpend(sinceMicros: Int64) async throws -> [HourlySpend] {
        try await connection.query(
            """
            SELECT (created_at / 3600000000) * 3600000000 AS hour, key_name, customer, COALESCE(SUM(cost_usd), 0.0) AS cost,
                   COUNT(*) AS requests
            FROM gateway_logs WHERE created_at >= ? GROUP BY 1, key_name, customer
            """, [.integer(SQLiteInt64(sinceMicros))]
        ).map { row in
            HourlySpend(
                hourStartMicros: Int64(row.column("hour")?.integer ?? 0), key: row.column("key_name")?.string,
                customer: row.column("customer")?.string, costUSD: row.column("cost")?.double ?? 0,
                requests: Int(row.column("requests")?.integer ?? 0))
        }
    }

    /// The first column of every row `sql` returns, as text (for tests and diagnostics).
    func strings(_ sql: String) async throws -> [String] {
        try await connection.query(sql).compactMap { $0.columns.first?.data.string }
    }

    /// Closes the file.
    public func close() async {
        do {
            try await dedicated.close()
        } catch {
            logger.warning("closing the request log failed", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    // MARK: - Transactions

    func transaction(immediate: Bool, _ body: () async throws -> Void) async throws {
        _ = try await connection.query(immediate ? "BEGIN IMMEDIATE" : "BEGIN")
        do {
            try await body()
            _ = try await connection.query("COMMIT")
        } catch {
            _ = try? await connection.query("ROLLBACK")
            throw error
        }
    }
}

// MARK: - Helpers shared by the stores

extension StatsDimension {
    /// The `gateway_logs` column a dimension groups by (a fixed name, never user text).
    var column: String {
        switch self {
        case .model: "model"
        case .key: "key_name"
        case .provider: "provider"
        case .customer: "customer"
        case .feature: "feature"
        }
    }
}

extension StatsRow {
    /// The group shown for rows without a value.
    static let noGroup = "(none)"

    /// Biggest spend first, then most requests, then by name.
    static func bySpend(_ a: StatsRow, _ b: StatsRow) -> Bool {
        if a.spendUSD != b.spendUSD { return a.spendUSD > b.spendUSD }
        if a.requests != b.requests { return a.requests > b.requests }
        return a.group < b.group
    }
}

/// Percentiles of sorted samples.
enum Percentile {
    /// The `fraction` percentile of ascending `sorted`, interpolated between neighbours (`percentile_cont`).
    static func continuous(_ sorted: [Double], _ fraction: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let position = fraction * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        let weight = position - Double(lower)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * weight
    }
}

/// Latencies per group, filled from SQLiteNIO's row callback.
private final class LatencyCollector: @unchecked Sendable {
    static let noneKey = "\u{0}none"
    // Only touched from the row callback, which SQLiteNIO calls serially on one thread, then read after the query.
    private(set) var groups: [String: [Double]] = [:]

    func add(group: String?, latency: Double) {
        groups[group ?? Self.noneKey, default: []].append(latency)
    }
}
