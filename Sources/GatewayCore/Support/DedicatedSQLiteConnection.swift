import Logging
import NIOPosix
import SQLiteNIO

/// A SQLite connection that runs on a thread of its own.
///
/// SQLite's calls block their thread, for up to `busy_timeout` when another connection holds the write lock. On
/// NIO's shared thread pool (two threads on a two-core host), two connections waiting for the lock could hold every
/// thread while the connection that owns the lock waits for one to run its next statement, and each wait ended in
/// `database is locked`. With a thread per connection, the lock's owner always runs.
struct DedicatedSQLiteConnection: Sendable {
    let connection: SQLiteConnection
    private let pool: NIOThreadPool

    /// Opens `path` (created when missing) on a new one-thread pool.
    static func open(path: String, logger: Logger) async throws -> DedicatedSQLiteConnection {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        do {
            let connection = try await SQLiteConnection.open(
                storage: .file(path: path), threadPool: pool, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any())
            return DedicatedSQLiteConnection(connection: connection, pool: pool)
        } catch {
            try? await pool.shutdownGracefully()
            throw error
        }
    }

    /// Closes the connection, then stops its thread (also when closing failed).
    func close() async throws {
        do {
            try await connection.close()
        } catch {
            try? await pool.shutdownGracefully()
            throw error
        }
        try await pool.shutdownGracefully()
    }
}
