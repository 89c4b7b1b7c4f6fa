import NIOConcurrencyHelpers

/// Whether the gateway is ready: configuration loaded and every listener bound.
///
/// The daemon expects two listeners (the API and the admin socket); `onReady` runs once, when the last binds.
public final class Readiness: Sendable {
    private struct State {
        var expected: Set<String>
        var bound: [String: String] = [:]
        var ready = false
    }
    private let state: NIOLockedValueBox<State>
    private let onReady: @Sendable () -> Void

    /// - Parameters:
    ///   - listeners: names of the listeners that must be bound, e.g. `["api", "admin"]`.
    ///   - onReady: runs once when the last of them is bound.
    public init(listeners: Set<String> = ["api"], onReady: @escaping @Sendable () -> Void = {}) {
        self.state = NIOLockedValueBox(State(expected: listeners))
        self.onReady = onReady
    }

    /// Sets the listeners that must be bound; call before any binds.
    public func expect(_ listeners: Set<String>) {
        state.withLockedValue { $0.expected = listeners }
    }

    /// True once every expected listener is bound.
    public var isReady: Bool { state.withLockedValue { $0.ready } }

    /// The bound listeners and their addresses, by name.
    public var listeners: [String: String] { state.withLockedValue { $0.bound } }

    /// Records that `listener` is bound at `address`; the last one makes the gateway ready.
    public func bound(_ listener: String, address: String) {
        let becameReady = state.withLockedValue { state -> Bool in
            state.bound[listener] = address
            guard !state.ready, state.expected.isSubset(of: Set(state.bound.keys)) else { return false }
            state.ready = true
            return true
        }
        if becameReady { onReady() }
    }
}
