import Foundation
import Logging
import PostgresNIO
import SQLiteNIO

/// Opens the outbox's store where the request log is: its SQLite file, its PostgreSQL database, or memory.
public enum NotificationOutboxStores {
    /// The store for `config.request_log`, its schema migrated (the outbox's table is migration 0003 of the request log).
    ///
    /// It opens connections of its own, beside the request log writer's, so the writer's batches never wait for it.
    /// - Throws: the database's error when the file or server cannot be used.
    public static func open(config: GatewayConfig, logger: Logger) async throws -> any NotificationOutboxStore {
        switch config.requestLog.backend {
        case .off:
            return MemoryOutboxStore()
        case .sqlite:
            try await migrate(SQLiteRequestLogStore(path: config.requestLog.path, logger: logger))
            return SQLOutboxStore(executor: try await SQLiteOutboxExecutor(path: config.requestLog.path, logger: logger))
        case .postgres:
            try await migrate(PostgresRequestLogStore(url: config.postgres.url, poolSize: 1, logger: logger))
            return SQLOutboxStore(executor: try PostgresOutboxExecutor(url: config.postgres.url, logger: logger))
        }
    }

    /// Brings the request log's schema (the outbox's table with it) up to date, then closes `store`.
    private static func migrate(_ store: any RequestLogStore) async throws {
        do {
            try await store.migrate()
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }
}

// MARK: - SQLite

/// The outbox's own connection to the request log's SQLite file (WAL, so it and the writer do not block each other for long).
final class SQLiteOutboxExecutor: OutboxSQLExecutor {
    let parameterPrefix = "?"
    let backend = "sqlite"
    private let dedicated: DedicatedSQLiteConnection
    private var connection: SQLiteConnection { dedicated.connection }

    init(path: String, logger: Logger) async throws {
        dedicated = try await DedicatedSQLiteConnection.open(path: path, logger: logger)
        let connection = dedicated.connection
        do {
            _ = try await connection.query("PRAGMA busy_timeout = 5000")
            _ = try await connection.query("PRAGMA synchronous = NORMAL")
        } catch {
            try? await dedicated.close()
            throw error
        }
    }

    func run(_ sql: String, _ binds: [OutboxSQLValue]) async throws -> [[OutboxSQLValue]] {
        let data: [SQLiteData] = binds.map { value in
            switch value {
            case .integer(let number): .integer(SQLiteInt64(number))
            case .text(let text): .text(text)
            case .null: .null
            }
        }
        return try await connection.query(sql, data).map { row in
            row.columns.map { column in
                switch column.data {
                case .integer(let number): .integer(Int64(number))
                case .text(let text): .text(text)
                case .float(let number): .integer(Int64(number))
                default: .null
                }
            }
        }
    }

    /// Closes the file, in a task of its own: SQLiteNIO refuses to close from a cancelled task, and an unclosed
    /// connection traps when it is freed.
    func close() async {
        let dedicated = self.dedicated
        await Task(executorPreference: TaskPlacement.preferredExecutor) { try? await dedicated.close() }.value
    }
}

// MARK: - PostgreSQL

/// The outbox's own small pool to the request log's PostgreSQL database; every statement bounded like the log's.
final class PostgresOutboxExecutor: OutboxSQLExecutor {
    let parameterPrefix = "$"
    let backend = "postgres"
    private let client: PostgresClient
    private let runTask: Task<Void, Never>
    private let logger: Logger
    private let timeout: Duration

    init(url: String, logger: Logger, timeout: Duration = .seconds(10)) throws {
        (client, runTask) = try PostgresRequestLogStore.startClient(url: url, poolSize: 2, timeout: timeout, logger: logger)
        self.logger = logger
        self.timeout = timeout
    }

    deinit {
        runTask.cancel()
    }

    func run(_ sql: String, _ binds: [OutboxSQLValue]) async throws -> [[OutboxSQLValue]] {
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds {
            switch value {
            case .integer(let number): bindings.append(number)
            case .text(let text): bindings.append(PostgresRequestLogStore.storable(text))
            case .null: bindings.appendNull()
            }
        }
        // The statements are the outbox's own, never built from input; every value is bound.
        let query = PostgresQuery(unsafeSQL: sql, binds: bindings)
        do {
            return try await withAbandoningDeadline(.now + timeout) { [client, logger] in
                var rows: [[OutboxSQLValue]] = []
                for try await row in try await client.query(query, logger: logger) {
                    rows.append(try row.map(Self.value))
                }
                return rows
            }
        } catch is DeadlineExceeded {
            throw PostgresStoreError(operation: "notification outbox", reason: "no answer from PostgreSQL within \(timeout)")
        } catch {
            throw PostgresStoreError(operation: "notification outbox", reason: PostgresStoreError.describe(error))
        }
    }

    private static func value(_ cell: PostgresCell) throws -> OutboxSQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .numeric: return .integer(Int64(try cell.decode(Double.self)))
        default: return .text(try cell.decode(String.self))
        }
    }

    func close() async {
        runTask.cancel()
        await runTask.value
    }
}
