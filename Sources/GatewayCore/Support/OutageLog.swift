import Logging
import NIOConcurrencyHelpers

/// Logs a backend outage once when it starts and once when it ends, however many requests meet it.
public final class OutageLog: Sendable {
    private let name: String
    private let down = NIOLockedValueBox(false)
    private let failures = NIOLockedValueBox(0)

    /// - Parameter name: the backend, e.g. "redis cache".
    public init(name: String) {
        self.name = name
    }

    /// Records a failed call; logs only the first of an outage.
    public func failed(_ error: any Error, logger: Logger, consequence: String) {
        let first = down.withLockedValue { down in
            defer { down = true }
            return !down
        }
        failures.withLockedValue { $0 += 1 }
        if first { logger.error("\(name) unavailable; \(consequence)", metadata: ["error": "\(error)"]) }
    }

    /// Records a successful call; logs the end of an outage.
    public func succeeded(logger: Logger) {
        let wasDown = down.withLockedValue { down in
            defer { down = false }
            return down
        }
        if wasDown { logger.notice("\(name) available again") }
    }

    /// Calls that failed since start.
    public var failureCount: Int { failures.withLockedValue { $0 } }
    /// Whether the backend is in an outage now.
    public var isDown: Bool { down.withLockedValue { $0 } }
}
