import NIOConcurrencyHelpers

/// Requests in flight per provider, and what became of the finished ones, kept across reloads, for load spreading
/// and introspection (`GET /providers` on the admin socket).
public final class ProviderLoad: Sendable {
    /// One provider's figures since the daemon started.
    public struct Statistics: Sendable, Equatable {
        /// Requests now in flight.
        public var inFlight = 0
        /// Attempts finished.
        public var requests = 0
        /// Attempts that failed (the ones that trigger failover).
        public var errors = 0
        /// Median attempt latency over the last `ProviderLoad.latencyWindow` attempts, in milliseconds.
        public var p50Ms: Int?
        /// 99th percentile of the same.
        public var p99Ms: Int?
    }

    /// How many recent latencies the percentiles are computed over.
    public static let latencyWindow = 1024

    private struct Entry {
        var inFlight = 0
        var requests = 0
        var errors = 0
        var latenciesMs: [Int] = []
        var next = 0

        mutating func add(latencyMs: Int) {
            if latenciesMs.count < ProviderLoad.latencyWindow {
                latenciesMs.append(latencyMs)
            } else {
                latenciesMs[next] = latencyMs
                next = (next + 1) % ProviderLoad.latencyWindow
            }
        }
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    public init() {}

    /// Requests now in flight to `provider`.
    public func current(_ provider: String) -> Int {
        entries.withLockedValue { $0[provider]?.inFlight ?? 0 }
    }

    /// Marks the start of a request to `provider`; pair with `finish`.
    public func start(_ provider: String) {
        entries.withLockedValue { $0[provider, default: Entry()].inFlight += 1 }
    }

    /// Marks the end of a request started with `start`.
    /// - Parameters:
    ///   - failed: the attempt failed in a way that triggers failover; nil when it was abandoned (client gone).
    ///   - elapsed: how long the attempt took, the relayed stream included.
    public func finish(_ provider: String, failed: Bool?, elapsed: Duration) {
        entries.withLockedValue { entries in
            entries[provider, default: Entry()].inFlight -= 1
            guard let failed else { return }
            entries[provider]!.requests += 1
            if failed { entries[provider]!.errors += 1 }
            entries[provider]!.add(latencyMs: Int(elapsed.wholeMilliseconds))
        }
    }

    /// Every provider's figures; providers never used are absent.
    public func statistics() -> [String: Statistics] {
        let copy = entries.withLockedValue { $0 }
        return copy.mapValues { entry in
            let sorted = entry.latenciesMs.sorted()
            func percentile(_ fraction: Double) -> Int? {
                guard !sorted.isEmpty else { return nil }
                return sorted[min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)]
            }
            return Statistics(
                inFlight: entry.inFlight, requests: entry.requests, errors: entry.errors, p50Ms: percentile(0.5), p99Ms: percentile(0.99))
        }
    }
}

/// Orders a model's deployments for one request: weighted least in-flight first, the rest after it as fallbacks.
public enum DeploymentPicker {
    /// The deployments in the order to try them.
    ///
    /// Each deployment scores `in-flight / weight`; the lowest goes first. Ties (the common case when the
    /// gateway is idle) are broken at random in proportion to weight, so traffic splits by weight.
    public static func order<Generator: RandomNumberGenerator>(
        _ deployments: [Deployment], inFlight: (String) -> Int, using generator: inout Generator
    ) -> [Deployment] {
        guard deployments.count > 1 else { return deployments }
        var remaining = deployments.map { ($0, Double(inFlight($0.provider)) / Double(max($0.weight, 1))) }
        var ordered: [Deployment] = []
        while !remaining.isEmpty {
            let best = remaining.map(\.1).min()!
            let tied = remaining.indices.filter { remaining[$0].1 == best }
            let totalWeight = tied.reduce(0) { $0 + max(remaining[$1].0.weight, 1) }
            var ticket = Int.random(in: 0..<totalWeight, using: &generator)
            var chosen = tied[0]
            for index in tied {
                ticket -= max(remaining[index].0.weight, 1)
                if ticket < 0 {
                    chosen = index
                    break
                }
            }
            ordered.append(remaining.remove(at: chosen).0)
        }
        return ordered
    }
}
