import Atomics
import NIOCore
import NIOPosix

/// Where Swift concurrency runs the daemon's tasks: on NIO's event loops, or on the runtime's own thread pool.
///
/// On the event loops, a request's tasks, the server's channel and the upstream client's channel share one thread
/// instead of handing every step between two pools. Two ways, chosen once at start (`LLM_GATEWAY_TASKS`):
///
/// - `executor-preference` (the default): the public mechanism of SE-0417. The daemon's work runs under
///   `withTaskExecutorPreference(EventLoopTaskExecutor.shared)`; child tasks inherit the preference and the
///   gateway's own unstructured tasks ask for it (`Task(executorPreference: TaskPlacement.preferredExecutor)`).
///   A job runs on the loop as a *task executor*, so a call into or out of a nonisolated async function is no
///   change of executor and queues nothing. Tasks that libraries start on their own stay on the runtime's pool.
/// - `thread-pool`: Swift's own cooperative pool, as a library would run.
///
/// It replaced the runtime's global-enqueue hook (found with `dlsym`, an undocumented ABI) once a side-by-side run
/// showed no loss (`docs/performance.md`, 2026-12-07). NIO's own take-over
/// (`NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor`) is not used: it runs
/// each job as the loop's *serial* executor, and the runtime then re-enqueues the task at every call into or out
/// of a nonisolated async function (about 80 trips through the loop's queue per cache hit).
public enum TaskPlacement {
    /// The two ways, by the names `LLM_GATEWAY_TASKS` and `GET /status` (`task_placement`) use.
    public enum Mode: String, Sendable, CaseIterable {
        case executorPreference = "executor-preference"
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
    public static func run<Value>(
        _ requested: Mode, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> Value
    ) async rethrows -> Value {
        set(requested)
        switch requested {
        case .executorPreference:
            return try await withTaskExecutorPreference(EventLoopTaskExecutor.shared, isolation: isolation, operation: body)
        case .threadPool:
            return try await body()
        }
    }

    /// The way in use.
    public static var current: Mode { Mode.allCases[modeIndex.load(ordering: .relaxed)] }

    private static func set(_ mode: Mode) { modeIndex.store(Mode.allCases.firstIndex(of: mode)!, ordering: .relaxed) }

    /// Whether tasks run on the event loops.
    public static var onEventLoops: Bool { current != .threadPool }

    /// The executor the gateway's own unstructured tasks prefer (`Task(executorPreference:)`): the event loops'
    /// under `executor-preference`, else none (the runtime's pool).
    public static var preferredExecutor: (any TaskExecutor)? {
        current == .executorPreference ? EventLoopTaskExecutor.shared : nil
    }

    /// How many times a task was queued on an event loop to run or resume since start: a request that suspends
    /// only where it waits for the network queues a few, one whose every call changes executor queues dozens
    /// (`status.task_jobs_queued` of the admin socket).
    public static var jobsQueued: Int { queuedJobs.load(ordering: .relaxed) }

    static func countQueuedJob() { queuedJobs.wrappingIncrement(ordering: .relaxed) }
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
