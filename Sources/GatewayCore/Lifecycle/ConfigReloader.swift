import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import UnixSignals

/// What one reload did.
public struct ReloadOutcome: Sendable {
    /// True when the new configuration is in force.
    public var applied: Bool
    /// Every problem the file has (errors refuse the reload; warnings do not).
    public var problems: [ConfigProblem]
    /// Settings that changed but only take effect after a restart.
    public var restartRequired: [String]
}

/// Re-reads the configuration file, validates all of it, and only then swaps the new snapshot in.
///
/// An invalid file changes nothing: the last good configuration keeps serving. Reloads are serialized.
/// Requests in flight keep the snapshot they started with.
public final class ConfigReloader: Sendable {
    private let path: String
    private let gateway: Gateway
    private let environment: @Sendable () -> [String: String]
    private let serial = NIOLock()

    public init(path: String, gateway: Gateway, environment: @escaping @Sendable () -> [String: String] = ConfigFile.processEnvironment) {
        self.path = path
        self.gateway = gateway
        self.environment = environment
    }

    /// Reloads now.
    @discardableResult
    public func reload() -> ReloadOutcome {
        serial.withLock {
            let logger = gateway.logger
            let result = ConfigLoader.load(path: path, environment: environment())
            guard let config = result.config, result.errors.isEmpty else {
                for problem in result.errors { logger.error("reload refused: \(problem.description)") }
                logger.error("reload failed; the previous configuration stays in force", metadata: ["config": "\(path)"])
                return ReloadOutcome(applied: false, problems: result.problems, restartRequired: [])
            }
            for problem in result.warnings { logger.warning("\(problem.description)") }
            let old = gateway.store.snapshot
            var restartRequired: [String] = []
            if old.config.server.host != config.server.host || old.config.server.port != config.server.port {
                restartRequired.append("server.listen")
            }
            if old.config.admin.socket != config.admin.socket { restartRequired.append("admin.socket") }
            restartRequired += Stores.restartRequired(from: old.config, to: config)
            for setting in restartRequired {
                logger.warning("\(setting) changed; it takes effect only after a restart")
            }
            gateway.clients.prepare(for: config)
            gateway.store.replace(with: ConfigSnapshot(config: config, generation: old.generation + 1))
            logger.notice("configuration reloaded", metadata: ["generation": "\(old.generation + 1)", "config": "\(path)"])
            return ReloadOutcome(applied: true, problems: result.problems, restartRequired: restartRequired)
        }
    }
}

/// Reloads the configuration on every SIGHUP until shutdown.
struct ReloadOnSignal: Service {
    let reloader: ConfigReloader

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            reloader.reload()
        }
    }
}
