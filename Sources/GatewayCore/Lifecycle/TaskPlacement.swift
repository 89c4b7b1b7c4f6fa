#if canImport(Glibc)
import Glibc
#endif
import Atomics
import NIOCore
import NIOPosix

/// Where Swift concurrency runs its tasks: on NIO's event loops, or on its own thread pool.
///
/// The daemon moves them onto the event loops before anything starts, so a request's tasks, the server's
/// channel and the upstream client's channel share one thread instead of handing every step between two pools.
/// It does so through the Swift runtime's global-enqueue hook, found by name; a binary with the runtime linked in
/// statically (`--static-swift-stdlib`) does not export the hook, and tasks then stay on the pool.
///
/// A job taken through the hook runs on the loop as the runtime's *generic* executor, as the default thread pool
/// runs it. NIO's own take-over (`NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor`)
/// runs it as the loop's serial executor instead; the runtime then sees every call into or out of a nonisolated
/// async function as a change of executor and enqueues the task again: about 80 trips through the loop's task
/// queue for one cached answer, where a request needs a handful.
public enum TaskPlacement {
    private static let installed = ManagedAtomic(false)
    private static let queuedJobs = ManagedAtomic(0)

    /// The runtime's hook type: the job, and the enqueue it replaces.
    private typealias EnqueueGlobalHook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void

    /// Moves Swift concurrency onto `MultiThreadedEventLoopGroup.singleton`. Call it once, first thing in `main`,
    /// before any task starts.
    /// - Returns: whether tasks now run on the event loops.
    @discardableResult
    public static func runOnEventLoops() -> Bool {
        guard !installed.load(ordering: .relaxed) else { return true }
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "swift_task_enqueueGlobal_hook") else { return false }
        let hookSlot = UnsafeAtomic<UnsafeRawPointer?>(at: symbol.assumingMemoryBound(to: UnsafeRawPointer.AtomicOptionalRepresentation.self))
        let hook: EnqueueGlobalHook = { job, _ in
            TaskPlacement.queuedJobs.wrappingIncrement(ordering: .relaxed)
            // The calling thread's loop when it is one of the group's (no thread switch), else the next one.
            MultiThreadedEventLoopGroup.singleton.any().execute { job.runSynchronously(on: TaskPlacement.genericExecutor) }
        }
        let done = withUnsafeTemporaryAllocation(of: EnqueueGlobalHook.self, capacity: 1) { storage in
            storage.baseAddress!.initialize(to: hook)
            // A thin function is one pointer: the slot takes that pointer, not the temporary storage.
            return storage.baseAddress!.withMemoryRebound(to: UnsafeRawPointer.self, capacity: 1) { pointer in
                hookSlot.compareExchange(expected: nil, desired: pointer.pointee, ordering: .relaxed).exchanged
            }
        }
        installed.store(done, ordering: .relaxed)
        return done
    }

    /// The runtime's generic executor (no isolation): both words of an executor reference zero.
    private static var genericExecutor: UnownedSerialExecutor {
        unsafeBitCast((0, 0), to: UnownedSerialExecutor.self)
    }

    /// How many times a task was queued on an event loop to run or resume since start: a request that suspends
    /// only where it waits for the network queues a few, one whose every call changes executor queues dozens
    /// (`status.task_jobs_queued` of the admin socket).
    public static var jobsQueued: Int { queuedJobs.load(ordering: .relaxed) }

    /// Whether tasks run on the event loops (`status.tasks` of the admin socket says `event-loops` or `thread-pool`).
    public static var onEventLoops: Bool { installed.load(ordering: .relaxed) }
}
