import NIOConcurrencyHelpers

/// When a provider's circuit opens and how long it stays open.
public struct CircuitBreakerSettings: Sendable, Equatable {
    /// Consecutive failures that open the circuit.
    public var consecutiveFailures = 5
    /// Share of failures within `window` that opens the circuit (0...1); nil disables the ratio rule.
    public var errorRatio: Double? = 0.5
    /// Requests needed within `window` before the ratio rule applies.
    public var minimumRequests = 20
    /// Span of the ratio rule.
    public var window: Duration = .seconds(60)
    /// How long an open circuit skips the provider before one probe is let through.
    public var coolDown: Duration = .seconds(30)

    public init() {}
}

/// The state of one provider's circuit, as shown to operators.
public enum CircuitState: String, Sendable {
    /// Requests flow.
    case closed
    /// Requests skip the provider until the cool-down ends.
    case open
    /// One probe request is in flight; its outcome closes or reopens the circuit.
    case halfOpen = "half_open"
}

/// Per-provider circuit breakers, kept across configuration reloads (keyed by provider name).
///
/// A provider fails `consecutiveFailures` times in a row, or more than `errorRatio` of at least
/// `minimumRequests` requests within `window`: its circuit opens and chains skip it for `coolDown`.
/// Then exactly one request probes it; success closes the circuit, failure opens it again.
///
/// The window is counted in ten slices (`WindowCounts`), so recording an outcome costs the same at any
/// request rate; the ratio covers the last nine to ten slices.
public final class CircuitBreakers: Sendable {
    private struct Circuit {
        var state: CircuitState = .closed
        var consecutiveFailures = 0
        var openedUntil: ContinuousClock.Instant?
        var probeInFlight = false
        /// Outcomes within the window.
        var recent = WindowCounts()
    }

    private let circuits = NIOLockedValueBox<[String: Circuit]>([:])
    private let now: @Sendable () -> ContinuousClock.Instant
    /// Where the window's slices are counted from.
    private let origin: ContinuousClock.Instant

    /// - Parameter now: the clock, replaceable in tests.
    public init(now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.now = now
        self.origin = now()
    }

    /// Whether a request may go to `provider` now. In the half-open state only the first caller is admitted.
    public func admit(_ provider: String, settings: CircuitBreakerSettings) -> Bool {
        let now = self.now()
        return circuits.withLockedValue { circuits in
            var circuit = circuits[provider] ?? Circuit()
            defer { circuits[provider] = circuit }
            switch circuit.state {
            case .closed:
                return true
            case .open:
                guard let until = circuit.openedUntil, now >= until else { return false }
                circuit.state = .halfOpen
                circuit.probeInFlight = true
                return true
            case .halfOpen:
                if circuit.probeInFlight { return false }
                circuit.probeInFlight = true
                return true
            }
        }
    }

    /// Records the outcome of a request that `admit` let through.
    public func record(_ provider: String, success: Bool, settings: CircuitBreakerSettings) {
        let now = self.now()
        let elapsed = now - origin
        circuits.withLockedValue { circuits in
            // Changed in place: a copy taken out of the dictionary would copy its counts at every request.
            Self.record(&circuits[provider, default: Circuit()], success: success, now: now, elapsed: elapsed, settings: settings)
        }
    }

    private static func record(
        _ circuit: inout Circuit, success: Bool, now: ContinuousClock.Instant, elapsed: Duration, settings: CircuitBreakerSettings
    ) {
        circuit.recent.add(failed: !success, at: elapsed, window: settings.window)
        if success {
            circuit.consecutiveFailures = 0
            if circuit.state != .closed {
                circuit.state = .closed
                circuit.probeInFlight = false
                circuit.openedUntil = nil
                circuit.recent = WindowCounts()
            }
            return
        }
        circuit.consecutiveFailures += 1
        let (total, failures) = circuit.recent.totals(at: elapsed, window: settings.window)
        let ratioTripped =
            settings.errorRatio.map { ratio in
                total >= settings.minimumRequests && Double(failures) / Double(total) > ratio
            } ?? false
        if circuit.state == .halfOpen || circuit.consecutiveFailures >= settings.consecutiveFailures || ratioTripped {
            circuit.state = .open
            circuit.probeInFlight = false
            circuit.openedUntil = now + settings.coolDown
        }
    }

    /// Releases a half-open probe whose request ended without an outcome (e.g. the client left).
    public func abandon(_ provider: String) {
        circuits.withLockedValue { circuits in
            guard var circuit = circuits[provider], circuit.state == .halfOpen else { return }
            circuit.probeInFlight = false
            circuits[provider] = circuit
        }
    }

    /// The current state of `provider`'s circuit (an open circuit whose cool-down ended reads as half-open).
    public func state(of provider: String) -> CircuitState {
        let now = self.now()
        return circuits.withLockedValue { circuits in
            guard let circuit = circuits[provider] else { return .closed }
            if circuit.state == .open, let until = circuit.openedUntil, now >= until { return .halfOpen }
            return circuit.state
        }
    }
}

/// Requests and failures over a sliding window, counted in ten slices of a tenth of the window each.
struct WindowCounts {
    static let slices = 10
    private var counts: [(slice: Int64, total: Int, failed: Int)] = []

    /// The slice `elapsed` falls in, for a window of `window`.
    private static func slice(_ elapsed: Duration, window: Duration) -> Int64 {
        let width = max(window / slices, .nanoseconds(1))
        return Int64(elapsed / width)
    }

    /// Counts one outcome at `elapsed` (time since the breakers' origin) and drops slices older than the window.
    mutating func add(failed: Bool, at elapsed: Duration, window: Duration) {
        let current = Self.slice(elapsed, window: window)
        counts.removeAll { $0.slice <= current - Int64(Self.slices) }
        if let last = counts.indices.last, counts[last].slice == current {
            counts[last].total += 1
            if failed { counts[last].failed += 1 }
        } else {
            counts.append((current, 1, failed ? 1 : 0))
        }
    }

    /// Requests and failures within the window ending at `elapsed`.
    func totals(at elapsed: Duration, window: Duration) -> (total: Int, failed: Int) {
        let oldest = Self.slice(elapsed, window: window) - Int64(Self.slices) + 1
        var total = 0
        var failed = 0
        for count in counts where count.slice >= oldest {
            total += count.total
            failed += count.failed
        }
        return (total, failed)
    }
}
