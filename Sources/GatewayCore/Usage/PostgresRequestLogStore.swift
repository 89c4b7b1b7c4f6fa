import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// The request log on a PostgreSQL server shared by a fleet of gateways.
///
/// Owns a `PostgresClient` and runs it in a task of its own from `init` until `close()`. Every operation is bounded
/// by `operationTimeout`, so a write while the server is down fails soon (and the writer can spool) instead of
/// waiting for the pool's circuit breaker; the same store reconnects by itself once the server is back. An
/// operation still running at its timeout is cancelled and left behind, not waited for: one started as the server
/// shut down was seen never to end, cancelled or not (`withAbandoningDeadline`).
///
/// ```swift
/// let store = try PostgresRequestLogStore(url: "postgres://gateway@db.internal/gateway", poolSize: 4, logger: logger)
/// try await store.migrate()
/// try await store.insert(records)
/// ```
public final class PostgresRequestLogStore: RequestLogStore {
    /// How long `insert` and `stats` may take, waiting for a connection included.
    public let operationTimeout: Duration
    let client: PostgresClient
    private let runTask: Task<Void, Never>
    let logger: Logger

    /// Rows per `INSERT` (PostgreSQL takes at most 65535 bound values in one statement). A batch is written as
    /// short statements in one transaction, as for SQLite: a server on the same host took a 500-row statement in
    /// one burst of milliseconds, during which the processes the gateway waits on (its upstream, its client)
    /// waited for a CPU. At one connection the 1 % slowest answers took 3.3–3.6 ms with the PostgreSQL log on,
    /// 1.6–1.8 ms with 32-row statements and 1.1–1.3 ms with 16, against 0.5–0.65 ms with SQLite.
    static let rowsPerStatement = 16
    /// `pg_advisory_xact_lock` key that serialises migrations between gateways starting at once ("llm-gw" in ASCII).
    static let migrationLockKey: Int64 = 0x6C6C_6D2D_6777
    /// Migrating may wait for another gateway's migration, so it gets longer than an ordinary operation.
    static let migrationTimeout: Duration = .seconds(60)

    /// Creates the store and starts its connection pool (no connection is opened until the first operation).
    /// - Parameters:
    ///   - url: `postgres://user[:password]@host[:port]/database[?sslmode=...]` (see `PostgresURL`).
    ///   - poolSize: the most connections open at once.
    ///   - logger: for migrations applied and the pool's warnings; never the password.
    ///   - operationTimeout: bound on each `insert` and `stats`.
    public init(url: String, poolSize: Int, logger: Logger, operationTimeout: Duration = .seconds(10)) throws {
        (client, runTask) = try Self.startClient(url: url, poolSize: poolSize, timeout: operationTimeout, logger: logger)
        self.logger = logger
        self.operationTimeout = operationTimeout
    }

    /// A PostgreSQL client for `url` with at most `poolSize` connections, and the task that runs it (cancel it to
    /// stop the pool). Shared by the request log and the notification outbox.
    static func startClient(url: String, poolSize: Int, timeout: Duration, logger: Logger) throws -> (PostgresClient, Task<Void, Never>) {
        var configuration = try PostgresURL(parsing: url).configuration
        configuration.options.maximumConnections = max(1, poolSize)
        configuration.options.connectTimeout = min(timeout, .seconds(10))
        // The pool logs each failed reconnection at info level; its users report outages themselves.
        var backgroundLogger = logger
        backgroundLogger.logLevel = max(logger.logLevel, .warning)
        let client = PostgresClient(configuration: configuration, backgroundLogger: backgroundLogger)
        return (client, Task(executorPreference: TaskPlacement.preferredExecutor) { await client.run() })
    }

    deinit {
        runTask.cancel()
    }

    // MARK: - RequestLogStore

    /// Creates or upgrades the schema from `migrations/postgres/`; running it again changes nothing.
    public func migrate() async throws {
        try await migrate(applying: Migration.all(for: .postgres))
    }

    /// Creates `schema_migrations` and applies each of `migrations` not yet recorded there, each in its own
    /// transaction. Gateways starting at once take turns on an advisory lock, so each is applied exactly once.
    func migrate(applying migrations: [Migration]) async throws {
        try await bounded("migrate", timeout: Self.migrationTimeout) { [client, logger] in
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: logger)
                try await connection.query(
                    """
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                    """, logger: logger)
            }
            for migration in migrations {
                try await client.withTransaction(logger: logger) { connection in
                    try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: logger)
                    let applied = try await connection.query(
                        "SELECT 1 FROM schema_migrations WHERE version = \(migration.version)", logger: logger
                    ).collect()
                    guard applied.isEmpty else { return }
                    for statement in migration.statements {
                        // The statements come from the migration files compiled into the binary, never from input.
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query("INSERT INTO schema_migrations (version) VALUES (\(migration.version))", logger: logger)
                    logger.info("applied PostgreSQL migration", metadata: ["migration": "\(migration.fileName)"])
                }
            }
        }
    }

    /// Writes `records` in one transaction, as multi-row `INSERT ... ON CONFLICT (request_id) DO NOTHING`
    /// statements of `rowsPerStatement` rows.
    public func insert(_ records: [RequestRecord]) async throws {
        guard !records.isEmpty else { return }
        try await bounded("insert", timeout: operationTimeout) { [client, logger] in
            try await client.withTransaction(logger: logger) { connection in
                for chunk in records.statementChunks(of: Self.rowsPerStatement) {
                    // Built on the thread pool, as for SQLite, not on the event loop the connection shares with requests.
                    let statement = try await onThreadPool { Self.insertQuery(chunk) }
                    try await connection.query(statement, logger: logger)
                }
                let responses = records.compactMap(\.storedResponse)
                for start in stride(from: 0, to: responses.count, by: Self.rowsPerStatement) {
                    let chunk = responses[start..<min(start + Self.rowsPerStatement, responses.count)]
                    try await connection.query(Self.insertStoredResponsesQuery(chunk), logger: logger)
                }
            }
        }
    }

    /// Aggregates the rows created at or after `sinceMicros` by `dimension`, the biggest spend first.
    public func stats(sinceMicros: Int64, by dimension: StatsDimension) async throws -> [StatsRow] {
        let query = Self.statsQuery(sinceMicros: sinceMicros, by: dimension)
        return try await bounded("stats", timeout: operationTimeout) { [client, logger] in
            var rows: [StatsRow] = []
            let result = try await client.query(query, logger: logger)
            for try await (group, requests, errors, hits, prompt, completion, spend, saved, p50, p95) in result.decode(
                (String, Int, Int, Int, Int, Int, Double, Double, Double?, Double?).self)
            {
                rows.append(
                    StatsRow(
                        group: group, requests: requests, errors: errors, cacheHits: hits, promptTokens: prompt,
                        completionTokens: completion, spendUSD: spend, savedUSD: saved, latencyP50Ms: p50, latencyP95Ms: p95))
            }
            return rows
        }
    }

    public func spend(sinceMicros: Int64) async throws -> [SpendRow] {
        let query: PostgresQuery = """
            SELECT (MIN(EXTRACT(EPOCH FROM created_at)) * 1000000)::bigint, key_name, customer, feature, model, provider,
                metadata::text, SUM(COALESCE(cost_usd, 0) + COALESCE(embedder_cost_usd, 0))::float8
            FROM gateway_logs
            WHERE created_at >= TIMESTAMPTZ 'epoch' + \(sinceMicros) * INTERVAL '1 microsecond' AND (cost_usd > 0 OR embedder_cost_usd > 0)
            GROUP BY floor(EXTRACT(EPOCH FROM created_at) / 900), key_name, customer, feature, model, provider, metadata::text
            """
        return try await bounded("spend", timeout: operationTimeout) { [client, logger] in
            var rows: [SpendRow] = []
            let result = try await client.query(query, logger: logger)
            for try await (created, key, customer, feature, model, provider, metadata, cost) in result.decode(
                (Int64, String?, String?, String?, String?, String?, String, Double).self)
            {
                rows.append(
                    SpendRow(
                        createdAtMicros: created, key: key, customer: customer, feature: feature, model: model, provider: provider,
                        metadata: SpendRow.metadata(fromJSON: metadata), costUSD: cost))
            }
            return rows
        }
    }

    public func hourlySpend(sinceMicros: Int64) async throws -> [HourlySpend] {
        let query: PostgresQuery = """
            SELECT (floor(EXTRACT(EPOCH FROM created_at) / 3600) * 3600000000)::bigint, key_name, customer,
                COALESCE(SUM(cost_usd), 0)::float8, COUNT(*)::bigint
            FROM gateway_logs
            WHERE created_at >= TIMESTAMPTZ 'epoch' + \(sinceMicros) * INTERVAL '1 microsecond'
            GROUP BY 1, key_name, customer
            """
        return try await bounded("hourly spend", timeout: operationTimeout) { [client, logger] in
            var rows: [HourlySpend] = []
            let result = try await client.query(query, logger: logger)
            for try await (hour, key, customer, cost, requests) in result.decode((Int64, String?, String?, Double, Int).self) {
                rows.append(HourlySpend(hourStartMicros: hour, key: key, customer: customer, costUSD: cost, requests: requests))
            }
            return rows
        }
    }

    /// Stops the pool and waits for its connections to close.
    public func close() async {
        runTask.cancel()
        await runTask.value
    }

    // MARK: - Queries

    static let insertColumns = [
        "created_at", "request_id", "client_request_id", "key_name", "endpoint", "model", "served_model", "provider", "original_provider",
        "status_code", "error_message", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cost_usd",
        "saved_cost_usd", "latency_ms", "ttfb_ms", "cache_hit", "failover_used", "attempts", "stream", "customer", "feature",
        "kind", "cache_hit_kind", "cache_similarity", "cache_entry", "embedder_cost_usd", "embedder_latency_ms", "metadata",
    ]

    /// One `INSERT` for `records`: the SQL holds only `$n` placeholders, every value is bound.
    /// `created_at` is computed from exact microseconds; costs bound as float8 keep 15 significant digits in NUMERIC.
    static func insertQuery(_ records: ArraySlice<RequestRecord>) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: records.count * insertColumns.count)
        var rows: [String] = []
        rows.reserveCapacity(records.count)
        for record in records {
            let first = bindings.count + 1
            var placeholders = (first..<first + insertColumns.count).map { "$\($0)" }
            placeholders[0] = "TIMESTAMPTZ 'epoch' + $\(first) * INTERVAL '1 microsecond'"
            placeholders[insertColumns.count - 1] += "::jsonb"
            rows.append("(" + placeholders.joined(separator: ", ") + ")")

            bindings.append(record.createdAtMicros)
            bindings.append(storable(record.requestID))
            bindings.append(storable(record.clientRequestID))
            bindings.append(storable(record.keyName))
            bindings.append(storable(record.endpoint))
            bindings.append(storable(record.model))
            bindings.append(storable(record.servedModel))
            bindings.append(storable(record.provider))
            bindings.append(storable(record.originalProvider))
            bindings.append(record.statusCode)
            bindings.append(storable(record.errorMessage))
            bindings.append(record.promptTokens)
            bindings.append(record.completionTokens)
            bindings.append(record.totalTokens)
            bindings.append(record.cachedTokens)
            bindings.append(record.costUSD)
            bindings.append(record.savedCostUSD)
            bindings.append(record.latencyMs)
            bindings.append(record.ttfbMs)
            bindings.append(record.cacheHit)
            bindings.append(record.failoverUsed)
            bindings.append(record.attempts)
            bindings.append(record.stream)
            bindings.append(storable(record.customer))
            bindings.append(storable(record.feature))
            bindings.append(storable(record.kind))
            bindings.append(storable(record.cacheHitKind))
            bindings.append(record.cacheSimilarity)
            bindings.append(storable(record.cacheEntry))
            bindings.append(record.embedderCostUSD)
            bindings.append(record.embedderLatencyMs)
            bindings.append(RequestRecord.metadataJSON(storable(record.metadata)))
        }
        let sql = "INSERT INTO gateway_logs (" + insertColumns.joined(separator: ", ") + ") VALUES "
            + rows.joined(separator: ", ") + " ON CONFLICT (request_id) DO NOTHING"
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }

    /// `text` as PostgreSQL can store it: its text types (and `jsonb`) refuse U+0000, which a client may put in a
    /// model name, a `user` or a metadata header, and one such row would fail every write of its batch. It becomes
    /// U+FFFD, as an undecodable byte does elsewhere.
    static func storable(_ text: String) -> String {
        text.utf8.contains(0) ? text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : text
    }

    static func storable(_ text: String?) -> String? {
        text.map(storable)
    }

    static func storable(_ metadata: [String: String]) -> [String: String] {
        guard metadata.contains(where: { $0.key.utf8.contains(0) || $0.value.utf8.contains(0) }) else { return metadata }
        return Dictionary(metadata.map { (storable($0.key), storable($0.value)) }, uniquingKeysWith: { first, _ in first })
    }

    static func statsQuery(sinceMicros: Int64, by dimension: StatsDimension) -> PostgresQuery {
        """
        SELECT COALESCE(\(unescaped: column(for: dimension)), '(none)'),
            COUNT(*)::bigint,
            (COUNT(*) FILTER (WHERE status_code >= 400))::bigint,
            (COUNT(*) FILTER (WHERE cache_hit))::bigint,
            COALESCE(SUM(prompt_tokens), 0)::bigint,
            COALESCE(SUM(completion_tokens), 0)::bigint,
            COALESCE(SUM(cost_usd), 0)::float8,
            COALESCE(SUM(saved_cost_usd), 0)::float8,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
            percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
        FROM gateway_logs
        WHERE created_at >= TIMESTAMPTZ 'epoch' + \(sinceMicros) * INTERVAL '1 microsecond'
        GROUP BY 1
        ORDER BY 7 DESC, 1
        """
    }

    /// The `gateway_logs` column a dimension groups by (fixed names, never input).
    static func column(for dimension: StatsDimension) -> String {
        switch dimension {
        case .model: "model"
        case .key: "key_name"
        case .provider: "provider"
        case .customer: "customer"
        case .feature: "feature"
        }
    }

    // MARK: - Errors

    /// Runs `operation` within `timeout`, turning whatever it throws into a `PostgresStoreError`.
    func bounded<Value: Sendable>(
        _ operation: String, timeout: Duration, _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        do {
            return try await withAbandoningDeadline(.now + timeout, body)
        } catch is DeadlineExceeded {
            throw PostgresStoreError(operation: operation, reason: "no answer from PostgreSQL within \(timeout)")
        } catch {
            var failure = PostgresStoreError(operation: operation, reason: PostgresStoreError.describe(error))
            failure.sqlState = PostgresStoreError.sqlState(of: error)
            throw failure
        }
    }

    /// Data exceptions (class 22: a value out of its column's range), integrity violations (23) and program limits
    /// (54: a value too long for its index) refuse rows; anything else may pass.
    public func refusesRows(_ error: any Error) -> Bool {
        guard let state = (error as? PostgresStoreError)?.sqlState else { return false }
        return ["22", "23", "54"].contains(String(state.prefix(2)))
    }
}

/// A request-log operation on PostgreSQL failed: which one, and why (the server's message when it sent one).
public struct PostgresStoreError: Error, CustomStringConvertible, Sendable {
    /// `migrate`, `insert` or `stats`.
    public var operation: String
    public var reason: String
    /// The server's SQLSTATE, when it answered with an error.
    public var sqlState: String?

    public var description: String { "PostgreSQL request log: \(operation) failed: \(reason)" }

    /// The server's SQLSTATE behind `error`, inside a transaction's error too.
    static func sqlState(of error: any Error) -> String? {
        switch error {
        case let error as PSQLError: error.serverInfo?[.sqlState]
        case let error as PostgresTransactionError: (error.closureError ?? error.commitError).flatMap(sqlState(of:))
        default: nil
        }
    }

    /// What went wrong, without the query's values or the connection's password.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as PSQLError:
            if let serverInfo = error.serverInfo, let message = serverInfo[.message] {
                return message + (serverInfo[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            if let underlying = error.underlying { return "\(error.code): \(describe(underlying))" }
            return "\(error.code)"
        case let error as PostgresTransactionError:
            if let inner = error.closureError ?? error.beginError ?? error.commitError { return describe(inner) }
            return "transaction failed"
        case let error as PostgresStoreError:
            return error.reason
        default:
            return "\(error)"
        }
    }
}

// MARK: - URL


/// A `postgres://` URL, parsed into a `PostgresClient.Configuration`.
///
/// `postgres://user[:password]@host[:port]/database[?sslmode=MODE&application_name=NAME&host=/socket/dir]`
/// (`postgresql://` too). User, password and database are percent-decoded; the last `@` ends the credentials, so an
/// unencoded `@` in a password still parses. `host=/dir` in the query connects through the Unix socket
/// `/dir/.s.PGSQL.<port>` as libpq does. `sslmode` follows libpq: `disable`, `prefer` (the default: TLS when the
/// server offers it, certificate unchecked), `require` (TLS, certificate unchecked), `verify-ca` (certificate
/// checked against the system's roots), `verify-full` (and the host name too).
///
/// Error messages name the part that is wrong, never the text given for it, so a mistyped URL cannot leak its password.
struct PostgresURL {
    var configuration: PostgresClient.Configuration

    init(parsing url: String) throws(PostgresStoreError) {
        guard let schemeEnd = url.range(of: "://"),
            ["postgres", "postgresql"].contains(url[..<schemeEnd.lowerBound].lowercased())
        else { throw Self.invalid("expected postgres://user[:password]@host[:port]/database") }
        var rest = Substring(url[schemeEnd.upperBound...])
        var parameters: [String: String] = [:]
        if let question = rest.firstIndex(of: "?") {
            parameters = try Self.parseParameters(rest[rest.index(after: question)...])
            rest = rest[..<question]
        }
        var username = "postgres"
        var password: String?
        let split = URLCredentials.split(rest)
        rest = split.rest
        if let credentials = split.credentials {
            let user = credentials.firstIndex(of: ":").map { credentials[..<$0] } ?? credentials
            username = try Self.decode(user, part: "user name")
            if let colon = credentials.firstIndex(of: ":") {
                password = try Self.decode(credentials[credentials.index(after: colon)...], part: "password")
            }
        }
        var database: String?
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            if !path.isEmpty { database = try Self.decode(path, part: "database name") }
            rest = rest[..<slash]
        }
        let (host, port) = try Self.parseHostPort(rest)

        let sslmode = parameters["sslmode"] ?? "prefer"
        if let directory = parameters["host"] {
            guard directory.hasPrefix("/") else { throw Self.invalid("the host parameter must be a socket folder (/path)") }
            guard ["disable", "prefer"].contains(sslmode) else { throw Self.invalid("TLS is not used over a Unix socket: drop sslmode") }
            configuration = .init(
                unixSocketPath: directory + "/.s.PGSQL.\(port)", username: username, password: password, database: database)
        } else {
            guard let host else { throw Self.invalid("no host") }
            configuration = .init(
                host: host, port: port, username: username, password: password, database: database, tls: try Self.tls(sslmode))
        }
        configuration.options.additionalStartupParameters = [("application_name", parameters["application_name"] ?? "llm-gateway")]
    }

    // MARK: - Parts

    private static func tls(_ mode: String) throws(PostgresStoreError) -> PostgresClient.Configuration.TLS {
        var unchecked = TLSConfiguration.makeClientConfiguration()
        unchecked.certificateVerification = .none
        switch mode {
        case "disable": return .disable
        case "prefer": return .prefer(unchecked)
        case "require": return .require(unchecked)
        case "verify-ca":
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .noHostnameVerification
            return .require(configuration)
        case "verify-full": return .require(.makeClientConfiguration())
        default: throw invalid("sslmode must be disable, prefer, require, verify-ca or verify-full")
        }
    }

    private static func parseParameters(_ query: Substring) throws(PostgresStoreError) -> [String: String] {
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let name = pair.firstIndex(of: "=").map { pair[..<$0] } ?? pair
            let value = pair.firstIndex(of: "=").map { pair[pair.index(after: $0)...] } ?? ""
            guard ["sslmode", "application_name", "host"].contains(name) else {
                throw invalid("unknown parameter (expected sslmode, application_name or host)")
            }
            parameters[String(name)] = try decode(value, part: String(name))
        }
        return parameters
    }

    private static func parseHostPort(_ text: Substring) throws(PostgresStoreError) -> (String?, Int) {
        var host: Substring = text
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw invalid("IPv6 host without ]") }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("unexpected text after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        var port = 5432
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { throw invalid("port must be 1-65535") }
            port = value
        }
        return (host.isEmpty ? nil : String(host), port)
    }

    private static func decode(_ text: Substring, part: String) throws(PostgresStoreError) -> String {
        guard let decoded = String(text).removingPercentEncoding else { throw invalid("bad percent-encoding in the \(part)") }
        return decoded
    }

    private static func invalid(_ reason: String) -> PostgresStoreError {
        PostgresStoreError(operation: "configuration", reason: "invalid PostgreSQL URL: \(reason)")
    }
}
