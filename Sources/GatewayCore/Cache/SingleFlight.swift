import NIOConcurrencyHelpers

/// Runs one operation per key at a time and shares its result with every caller that asks meanwhile.
///
/// The first caller for a key starts the operation; callers arriving before it finishes wait for the same result
/// (or error). Once it has finished the key is free, and the next caller starts a new operation.
///
/// The operation runs in an unstructured task owned by the flight, not in the first caller's task, so every caller
/// is an equal waiter:
/// - a waiter whose task is cancelled stops waiting at once with `CancellationError`; the operation goes on for
///   the others, the first caller included;
/// - when every waiter has left, nobody wants the result: the operation is cancelled (an upstream call stops
///   costing money) and the key is freed at once, so a later caller starts afresh instead of joining a
///   cancelled flight.
///
/// ```swift
/// let (answer, shared) = try await flights.run(cacheKey) { try await callUpstream() }
/// ```
public final class SingleFlight<Value: Sendable>: Sendable {
    private typealias Waiter = CheckedContinuation<(value: Value, shared: Bool), any Error>

    private struct Flight {
        var id: UInt64
        var task: Task<Void, Never>?
        /// Waiting callers by waiter id, with whether they joined (rather than started) the flight.
        var waiters: [UInt64: (continuation: Waiter, shared: Bool)] = [:]
    }

    private struct State {
        var flights: [String: Flight] = [:]
        var lastID: UInt64 = 0

        mutating func nextID() -> UInt64 {
            lastID += 1
            return lastID
        }
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Keys with an operation under way.
    public var inFlight: Int {
        state.withLockedValue { $0.flights.count }
    }

    /// Callers waiting for `key`'s run.
    func waiters(_ key: String) -> Int {
        state.withLockedValue { $0.flights[key]?.waiters.count ?? 0 }
    }

    /// Runs `operation` for `key`, or waits for the run already under way.
    ///
    /// - Parameters:
    ///   - key: what identifies equal work, e.g. a cache key.
    ///   - leavingWhen: given the action that makes this caller leave as if its task were cancelled, once it
    ///     waits; something outside (a closed connection) can call it without cancelling the caller's task, which
    ///     may still have to answer.
    ///   - operation: the work; runs at most once for all concurrent callers with the same key.
    /// - Returns: the value, and `shared: true` when this caller joined a run another caller started.
    /// - Throws: the operation's error, or `CancellationError` when this caller's task is cancelled or it left.
    public func run(
        _ key: String, leavingWhen: ((_ leave: @escaping @Sendable () -> Void) -> Void)? = nil,
        _ operation: @escaping @Sendable () async throws -> Value
    ) async throws -> (value: Value, shared: Bool) {
        let waiterID = state.withLockedValue { $0.nextID() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiter) in
                defer { leavingWhen? { self.leave(key, waiterID: waiterID) } }
                let joined: Bool? = state.withLockedValue { state in
                    // Checked under the lock: a cancellation handler that ran before this found nothing to remove.
                    if Task.isCancelled { return nil }
                    if state.flights[key] != nil {
                        state.flights[key]!.waiters[waiterID] = (continuation, true)
                        return true
                    }
                    let flightID = state.nextID()
                    var flight = Flight(id: flightID)
                    flight.waiters[waiterID] = (continuation, false)
                    // The task cannot finish before it is recorded: `finish` takes the lock held here.
                    flight.task = Task(executorPreference: TaskPlacement.preferredExecutor) {
                        let result: Result<Value, any Error>
                        do {
                            result = .success(try await operation())
                        } catch {
                            result = .failure(error)
                        }
                        self.finish(key, flightID: flightID, result: result)
                    }
                    state.flights[key] = flight
                    return false
                }
                if joined == nil { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            leave(key, waiterID: waiterID)
        }
    }

    /// Hands `result` to every waiter of the flight and frees the key, unless the flight was abandoned.
    private func finish(_ key: String, flightID: UInt64, result: Result<Value, any Error>) {
        let waiters = state.withLockedValue { state -> [(continuation: Waiter, shared: Bool)] in
            guard let flight = state.flights[key], flight.id == flightID else { return [] }
            state.flights[key] = nil
            return Array(flight.waiters.values)
        }
        for waiter in waiters {
            waiter.continuation.resume(with: result.map { (value: $0, shared: waiter.shared) })
        }
    }

    /// Stops `waiterID` waiting; cancels the flight when it was the last waiter.
    private func leave(_ key: String, waiterID: UInt64) {
        let (waiter, abandoned) = state.withLockedValue { state -> (Waiter?, Task<Void, Never>?) in
            guard let removed = state.flights[key]?.waiters.removeValue(forKey: waiterID) else { return (nil, nil) }
            guard state.flights[key]!.waiters.isEmpty else { return (removed.continuation, nil) }
            let task = state.flights[key]!.task
            state.flights[key] = nil
            return (removed.continuation, task)
        }
        abandoned?.cancel()
        waiter?.resume(throwing: CancellationError())
    }
}
