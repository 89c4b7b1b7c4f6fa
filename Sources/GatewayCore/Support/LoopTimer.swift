import NIOCore
import NIOPosix

/// Sleeps on an event loop's timer instead of `Task.sleep`.
///
/// On Linux `Task.sleep` arms a Dispatch timer: every wake-up runs on a Dispatch thread, which then hands the
/// task back to the event loops (the daemon runs Swift concurrency on them). A timer scheduled on the event loop
/// already running the task costs one entry in that loop's timer heap and no thread switch, which matters on the
/// hot path where every request arms a deadline and a disconnect watch.
public enum LoopTimer {
    /// Returns at `deadline` (at once when it has passed).
    /// - Throws: `CancellationError` when the task is cancelled first.
    public static func sleep(until deadline: ContinuousClock.Instant) async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let wait = TimeAmount(ContinuousClock.now.duration(to: deadline))
        let scheduled = loop.scheduleTask(in: wait) {}
        try await withTaskCancellationHandler {
            do {
                try await scheduled.futureResult.get()
            } catch {
                throw CancellationError()
            }
        } onCancel: {
            scheduled.cancel()
        }
    }

    /// Returns after `duration`.
    /// - Throws: `CancellationError` when the task is cancelled first.
    public static func sleep(for duration: Duration) async throws {
        try await sleep(until: .now + duration)
    }

    /// Calls `action` on an event loop after `delay`, unless the returned task is cancelled first.
    public static func schedule(in delay: Duration, _ action: @escaping @Sendable () -> Void) -> Scheduled<Void> {
        MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(delay), action)
    }
}
