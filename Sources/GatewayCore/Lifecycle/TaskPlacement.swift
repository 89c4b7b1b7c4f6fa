import Atomics
import NIOCore
import NIOPosix

/// Where Swift concurrency runs its tasks: on NIO's event loops, or on its own thread pool.
///
/// The daemon moves them onto the event loops before anything starts, so a request's tasks, the server's
/// channel and the upstream client's channel share one thread instead of handing every step between two pools.
/// NIO does it through a hook in the Swift runtime that it finds by name; a binary with the runtime linked in
/// statically (`--static-swift-stdlib`) does not export the hook, and tasks then stay on the pool.
public enum TaskPlacement {
    private static let installed = ManagedAtomic(false)

    /// Moves Swift concurrency onto `MultiThreadedEventLoopGroup.singleton`. Call it once, first thing in `main`,
    /// from the main thread.
    /// - Returns: whether tasks now run on the event loops.
    @discardableResult
    public static func runOnEventLoops() -> Bool {
        let done = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        installed.store(done, ordering: .relaxed)
        return done
    }

    /// Whether tasks run on the event loops (`status.tasks` of the admin socket says `event-loops` or `thread-pool`).
    public static var onEventLoops: Bool { installed.load(ordering: .relaxed) }
}
