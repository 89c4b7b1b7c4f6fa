import NIOConcurrencyHelpers

/// Requests in flight per provider, kept across reloads, for load spreading and introspection.
public final class ProviderLoad: Sendable {
    private let inFlight = NIOLockedValueBox<[String: Int]>([:])

    public init() {}

    /// Requests now in flight to `provider`.
    public func current(_ provider: String) -> Int {
        inFlight.withLockedValue { $0[provider] ?? 0 }
    }

    /// Marks the start of a request to `provider`; pair with `finish`.
    public func start(_ provider: String) {
        inFlight.withLockedValue { $0[provider, default: 0] += 1 }
    }

    /// Marks the end of a request started with `start`.
    public func finish(_ provider: String) {
        inFlight.withLockedValue { $0[provider, default: 1] -= 1 }
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
