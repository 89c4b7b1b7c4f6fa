import NIOPosix

/// Runs blocking work (reading files, fsync) on NIO's thread pool. The daemon's tasks run on the event loops
/// (see `TaskPlacement`), which must never wait on the disk; when the pool has shut down, `body` runs here.
func onThreadPool<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    do {
        return try await NIOThreadPool.singleton.runIfActive(body)
    } catch is NIOThreadPoolError.ThreadPoolInactive {
        return try body()
    }
}
