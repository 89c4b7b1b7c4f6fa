#if canImport(Glibc)
import Glibc
#endif
import ServiceLifecycle

/// Tells systemd how the daemon is doing, the way `sd_notify(3)` does: one datagram per message to the Unix
/// socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). Without that variable every
/// call is a no-op, so the daemon behaves the same outside systemd.
public struct SystemdNotifier: Sendable {
    /// The socket messages go to; nil when not started by systemd with `Type=notify`.
    public let socketPath: String?
    /// How often systemd expects `WATCHDOG=1` (`$WATCHDOG_USEC`), when it asked this process for it.
    public let watchdogInterval: Duration?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    public init(environment: [String: String]) {
        let path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        self.socketPath = path
        let forThisProcess = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if path != nil, forThisProcess, let micros = environment["WATCHDOG_USEC"].flatMap(Int64.init), micros > 0 {
            self.watchdogInterval = .microseconds(micros)
        } else {
            self.watchdogInterval = nil
        }
    }

    /// Sends `READY=1`.
    public func ready(status: String? = nil) { send(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }
    /// Sends `RELOADING=1` with the `MONOTONIC_USEC` systemd wants beside it.
    public func reloading() { send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"]) }
    /// Sends `STOPPING=1`.
    public func stopping() { send(["STOPPING=1"]) }
    /// Sends `WATCHDOG=1`.
    public func watchdog() { send(["WATCHDOG=1"]) }

    /// Sends one message of `NAME=value` lines. Never blocks: a full or missing socket drops the message.
    /// - Returns: true when the datagram was sent.
    @discardableResult
    public func send(_ lines: [String]) -> Bool {
        guard let socketPath, !socketPath.isEmpty else { return false }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let message = Array(lines.joined(separator: "\n").utf8)
        let sent = UnixSocketAddress.with(socketPath) { address, length in
            message.withUnsafeBytes { bytes in
                sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT), address, length)
            }
        }
        return sent == message.count
    }

    /// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares reload times with.
    public static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}

/// Sends `WATCHDOG=1` at half the interval systemd asked for, and `STOPPING=1` when shutdown begins.
///
/// Put it last in the service group: graceful shutdown reaches it first, so systemd hears of the stop at once.
struct SystemdLifecycleService: Service {
    let notifier: SystemdNotifier

    func run() async throws {
        guard let interval = notifier.watchdogInterval else {
            try? await gracefulShutdown()
            notifier.stopping()
            return
        }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            notifier.watchdog()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval / 2) }
        }
        notifier.stopping()
    }
}
