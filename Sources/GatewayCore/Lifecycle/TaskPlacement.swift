#if canImport(Glibc)
import Glibc
#endif
import Atomics
import NIOCore
import NIOPosix

/// Where Swift concurrency runs the daemon's tasks: on NIO's event loops, or on the runtime's own thread pool.
///
/// On the event loops, a request's tasks, the server's channel and the upstream client's channel share one thread
/// instead of handing every step between two pools. Three ways, chosen once at start (`LLM_GATEWAY_TASKS`):
///
/// - `executor-preference` (the default): the public mechanism of SE-0417. The daemon's work runs under
///   `withTaskExecutorPreference(EventLoopTaskExecutor.shared)`; child tasks inherit the preference and the
///   gateway's own unstructured tasks ask for it (`Task(executorPreference: TaskPlacement.preferredExecutor)`).
///   A job runs on the loop as a *task executor*, so a call into or out of a nonisolated async function is no
///   change of executor and queues nothing.
/// - `enqueue-hook`: the runtime's global-enqueue hook, found by name (`dlsym`): undocumented ABI, kept as a
///   fallback to compare against. A statically linked runtime does not export it; tasks then stay on the pool.
/// - `thread-pool`: Swift's own cooperative pool, as a library would run.
///
/// NIO's own take-over (`NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor`) is
/// not among them: it runs each job as the loop's *serial* executor, and the runtime then re-enqueues the task at
/// every call into or out of a nonisolated async function (about 80 trips through the loop's queue per cache hit).
public enum TaskPlacement {
    /// The three ways, by the names `LLM_GATEWAY_TASKS` and `GET /status` (`tasks`) use.
    public enum Mode: String, Sendable, CaseIterable {
        case executorPreference = "executor-preference"
        case enqueueHook = "enqueue-hook"
        case threadPool = "thread-pool"
    }

    /// The way in use, as its index in `Mode.allCases`: read at every task the gateway starts, so one atomic load.
    private static let modeIndex = ManagedAtomic(Mode.allCases.firstIndex(of: .threadPool)!)
    private static let queuedJobs = ManagedAtomic(0)

    /// The way `LLM_GATEWAY_TASKS` names, `executor-preference` when it is unset or names none.
    public static func mode(fromEnvironment environment: [String: String]) -> Mode {
        environment["LLM_GATEWAY_TASKS"].flatMap(Mode.init(rawValue:)) ?? .executorPreference
    }

    /// Runs `body` with tasks placed as `requested`: the daemon's `main` wraps everything it does in this.
    ///
    /// When `requested` is `enqueue-hook` and the hook is missing, tasks stay on the thread pool (`current` says
    /// `thread-pool`).
    public static func run<Value>(
        _ requested: Mode, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> Value
    ) async rethrows -> Value {
        switch requested {
        case .executorPreference:
            set(.executorPreference)
            return try await withTaskExecutorPreference(EventLoopTaskExecutor.shared, isolation: isolation, operation: body)
        case .enqueueHook:
            let installed = installEnqueueHook()
            set(installed ? .enqueueHook : .threadPool)
            return try await body()
        case .threadPool:
            set(.threadPool)
            return try await body()
        }
    }

    /// The way in use.
    public static var current: Mode { Mode.allCases[modeIndex.load(ordering: .relaxed)] }

    private static func set(_ mode: Mode) { modeIndex.store(Mode.allCases.firstIndex(of: mode)!, ordering: .relaxed) }

    /// Whether tasks run on the event loops.
    public static var onEventLoops: Bool { current != .threadPool }

    /// The executor the gateway's own unstructured tasks prefer (`Task(executorPreference:)`): the event loops'
    /// under `executor-preference`, else none (the runtime's default, which the hook, when installed, places).
    public static var preferredExecutor: (any TaskExecutor)? {
        current == .executorPreference ? EventLoopTaskExecutor.shared : nil
    }

    /// How many times a task was queued on an event loop to run or resume since start: a request that suspends
    /// only where it waits for the network queues a few, one whose every call changes executor queues dozens
    /// (`status.task_jobs_queued` of the admin socket).
    public static var jobsQueued: Int { queuedJobs.load(ordering: .relaxed) }

    static func countQueuedJob() { queuedJobs.wrappingIncrement(ordering: .relaxed) }

    // MARK: The enqueue hook

    /// The runtime's hook type: the job, and the enqueue it replaces.
    private typealias EnqueueGlobalHook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void

    private static let hookInstalled = ManagedAtomic(false)

    /// Points the runtime's global enqueue at the event loops; false when the hook is not exported.
    private static func installEnqueueHook() -> Bool {
        guard !hookInstalled.load(ordering: .relaxed) else { return true }
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "swift_task_enqueueGlobal_hook") else { return false }
        let hookSlot = UnsafeAtomic<UnsafeRawPointer?>(at: symbol.assumingMemoryBound(to: UnsafeRawPointer.AtomicOptionalRepresentation.self))
        let hook: EnqueueGlobalHook = { job, _ in
            TaskPlacement.countQueuedJob()
            MultiThreadedEventLoopGroup.singleton.any().execute { job.runSynchronously(on: TaskPlacement.genericExecutor) }
        }
        let done = withUnsafeTemporaryAllocation(of: EnqueueGlobalHook.self, capacity: 1) { storage in
            storage.baseAddress!.initialize(to: hook)
            // A thin function is one pointer: the slot takes that pointer, not the temporary storage.
            return storage.baseAddress!.withMemoryRebound(to: UnsafeRawPointer.self, capacity: 1) { pointer in
                hookSlot.compareExchange(expected: nil, desired: pointer.pointee, ordering: .relaxed).exchanged
            }
        }
        hookInstalled.store(done, ordering: .relaxed)
        return done
    }

    /// The runtime's generic executor (no isolation): both words of an executor reference zero.
    private static var genericExecutor: UnownedSerialExecutor {
        unsafeBitCast((0, 0), to: UnownedSerialExecutor.self)
    }
}

/// A task executor (SE-0417) that runs each job on one of `MultiThreadedEventLoopGroup.singleton`'s loops: the
/// calling thread's when it is one of them (no thread switch), else the next.
public final class EventLoopTaskExecutor: TaskExecutor {
    /// The one the daemon uses.
    public static let shared = EventLoopTaskExecutor()

    private init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        TaskPlacement.countQueuedJob()
        let job = UnownedJob(job)
        MultiThreadedEventLoopGroup.singleton.any().execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
