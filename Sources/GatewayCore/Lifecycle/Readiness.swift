import Atomics

/// Whether the gateway is ready: configuration loaded and listeners bound.
public final class Readiness: Sendable {
    private let ready = ManagedAtomic(false)
    public init() {}
    /// True once `markReady()` was called.
    public var isReady: Bool { ready.load(ordering: .acquiring) }
    /// Marks the gateway ready.
    public func markReady() { ready.store(true, ordering: .releasing) }
}
