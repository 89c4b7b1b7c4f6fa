import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import UnixSignals

/// What one reload did.
public struct ReloadOutcome: Sendable {
    /// How a reload ended.
    public enum Result: String, Sendable {
        /// The new configuration is in force.
        case applied
        /// The file is byte for byte the one in force: nothing was done.
        case unchanged
        /// The file has errors: the previous configuration stays in force.
        case refused
    }
    public var result: Result
    /// Every problem the file has (errors refuse the reload; warnings do not).
    public var problems: [ConfigProblem]
    /// Settings that changed but only take effect after a restart.
    public var restartRequired: [String]
    /// The configuration generation in force after the reload.
    public var generation: Int
    /// When the reload ended, in microseconds since 1970 (UTC).
    public var finishedAtMicros: Int64

    /// True when the new configuration is in force.
    public var applied: Bool { result == .applied }
    /// The errors, one line each (`file:line:column: ...`).
    public var errors: [String] { problems.filter { $0.severity == .error }.map(\.description) }
}

/// Re-reads the configuration file, validates all of it, and only then swaps the new snapshot in.
///
/// An invalid file changes nothing: the last good configuration keeps serving. An unchanged file is a no-op.
/// Reloads are serialized, whether SIGHUP or the admin socket asked. Requests in flight keep the snapshot they
/// started with.
public final class ConfigReloader: Sendable {
    /// The configuration file.
    public let path: String
    private let gateway: Gateway
    private let environment: @Sendable () -> [String: String]
    private let serial = NIOLock()
    private let last = NIOLockedValueBox<ReloadOutcome?>(nil)

    public init(path: String, gateway: Gateway, environment: @escaping @Sendable () -> [String: String] = ConfigFile.processEnvironment) {
        self.path = path
        self.gateway = gateway
        self.environment = environment
    }

    /// The last reload's outcome; nil before the first.
    public var lastReload: ReloadOutcome? { last.withLockedValue { $0 } }

    /// Reloads now, telling systemd (`RELOADING=1`, then `READY=1`) around it.
    @discardableResult
    public func reload() -> ReloadOutcome {
        serial.withLock {
            gateway.notifier.reloading()
            let outcome = apply()
            gateway.notifier.ready()
            gateway.metrics.reloaded(outcome.result)
            last.withLockedValue { $0 = outcome }
            return outcome
        }
    }

    /// `reload()` on NIO's thread pool: it reads and parses the file under a lock, which an event loop (where the
    /// daemon's tasks run) must not wait for.
    @discardableResult
    public func reloadOffLoop() async -> ReloadOutcome {
        (try? await onThreadPool { self.reload() }) ?? reload()
    }

    private func apply() -> ReloadOutcome {
        let logger = gateway.logger
        let old = gateway.store.snapshot
        let result = ConfigLoader.load(path: path, environment: environment())
        func outcome(_ kind: ReloadOutcome.Result, restartRequired: [String] = [], generation: Int) -> ReloadOutcome {
            ReloadOutcome(
                result: kind, problems: result.problems, restartRequired: restartRequired, generation: generation,
                finishedAtMicros: UnixTime.nowMicros())
        }
        guard let config = result.config, result.errors.isEmpty else {
            for problem in result.errors { logger.error("reload refused: \(problem.description)") }
            logger.error("reload failed; the previous configuration stays in force", metadata: ["config": "\(path)"])
            return outcome(.refused, generation: old.generation)
        }
        if let hash = result.sourceSHA256, hash == old.sourceSHA256 {
            logger.info("reload: the configuration file is unchanged; nothing to do", metadata: ["config": "\(path)"])
            return outcome(.unchanged, generation: old.generation)
        }
        for problem in result.warnings { logger.warning("\(problem.description)") }
        var restartRequired: [String] = []
        if old.config.server.host != config.server.host || old.config.server.port != config.server.port {
            restartRequired.append("server.listen")
        }
        if old.config.server.drainTimeout != config.server.drainTimeout { restartRequired.append("server.drain_timeout") }
        if old.config.server.idleTimeout != config.server.idleTimeout { restartRequired.append("server.idle_timeout") }
        if old.config.server.headerTimeout != config.server.headerTimeout { restartRequired.append("server.header_timeout") }
        if old.config.server.maxConnections != config.server.maxConnections { restartRequired.append("server.max_connections") }
        if old.config.metrics.listenHost != config.metrics.listenHost || old.config.metrics.listenPort != config.metrics.listenPort {
            restartRequired.append("metrics.listen")
        }
        if old.config.admin.socket != config.admin.socket { restartRequired.append("admin.socket") }
        if old.config.admin.mode != config.admin.mode { restartRequired.append("admin.mode") }
        restartRequired += Stores.restartRequired(from: old.config, to: config)
        for setting in restartRequired {
            logger.warning("\(setting) changed; it takes effect only after a restart")
        }
        gateway.clients.prepare(for: config)
        gateway.logLevel?.apply(config.logging.level)
        gateway.stores.memoryCache?.resize(maxEntries: config.cache.maxEntries, maxBytes: config.cache.maxBytes)
        let generation = old.generation + 1
        gateway.store.replace(with: ConfigSnapshot(config: config, generation: generation, sourceSHA256: result.sourceSHA256))
        // A budget the reload adds starts from the request log's spend in its window; one it keeps keeps its
        // counters (they are named by the budget, not its limit); one it removes is no longer charged.
        let oldNames = Set(old.budgets.map(\.name))
        let added = config.allBudgets.filter { !oldNames.contains($0.name) }
        if !added.isEmpty {
            let gateway = self.gateway
            Task(executorPreference: TaskPlacement.preferredExecutor) { await gateway.rebuildBudgets(added) }
        }
        logger.notice("configuration reloaded", metadata: ["generation": "\(generation)", "config": "\(path)"])
        return outcome(.applied, restartRequired: restartRequired, generation: generation)
    }
}

/// Reloads the configuration on every SIGHUP until shutdown.
struct ReloadOnSignal: Service {
    let reloader: ConfigReloader

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            await reloader.reloadOffLoop()
        }
    }
}
