import Atomics
import NIOCore

/// Thrown by `withDeadline` when the deadline passes first.
public struct DeadlineExceeded: Error, Sendable {}

/// Runs `operation`, cancelling it and throwing `DeadlineExceeded` if it is not done by `deadline`.
///
/// An event-loop timer cancels it at the deadline: one task and one timer, where racing a sleeping task in a
/// group took two tasks and a group.
public func withDeadline<Value: Sendable>(
    _ deadline: ContinuousClock.Instant, _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    try await withOutsideCancellation(throwing: DeadlineExceeded()) { cancel in
        let timer = LoopTimer.schedule(in: ContinuousClock.now.duration(to: deadline), cancel)
        return { timer.cancel() }
    } operation: {
        try await operation()
    }
}

/// Runs `operation` until `deadline`, then throws `DeadlineExceeded` without waiting for it to stop: it is
/// cancelled and left to end on its own, and what it returns or throws after the deadline is dropped.
///
/// For calls into a library that may not stop when cancelled, where `withDeadline` would wait with them: a
/// PostgreSQL query started as the server shut down was seen never to end, and the request log's writer, waiting
/// on it, stopped writing for good. Cancelling the caller ends the wait at once too.
func withAbandoningDeadline<Value: Sendable>(
    _ deadline: ContinuousClock.Instant, _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    let outcome = OneShot<Value>()
    let task = Task(executorPreference: TaskPlacement.preferredExecutor) {
        do {
            outcome.deliver(.success(try await operation()))
        } catch {
            outcome.deliver(.failure(error))
        }
    }
    let timer = LoopTimer.schedule(in: ContinuousClock.now.duration(to: deadline)) {
        outcome.deliver(.failure(DeadlineExceeded()))
        task.cancel()
    }
    defer { timer.cancel() }
    return try await withTaskCancellationHandler {
        try await outcome.wait()
    } onCancel: {
        outcome.deliver(.failure(CancellationError()))
        task.cancel()
    }
}

/// Runs `operation` in a task of its own that something outside can cancel (a timer, a closed connection).
///
/// `start` receives the action that cancels the task and returns what stops it from being called; it is stopped
/// when the task ends. When that cancellation came, `reason` is thrown once the task has stopped, instead of
/// whatever the task threw.
func withOutsideCancellation<Value: Sendable>(
    throwing reason: @autoclosure () -> any Error,
    start: (_ cancel: @escaping @Sendable () -> Void) -> () -> Void,
    operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    let cancelled = ManagedAtomic(false)
    let task = Task(executorPreference: TaskPlacement.preferredExecutor) { try await operation() }
    let stop = start {
        cancelled.store(true, ordering: .relaxed)
        task.cancel()
    }
    defer { stop() }
    do {
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    } catch {
        if cancelled.load(ordering: .relaxed) { throw reason() }
        throw error
    }
}

extension TimeAmount {
    /// Converts a Swift `Duration`; one beyond what a `TimeAmount` holds (about 292 years) becomes its largest.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let (nanoseconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else {
            self = .nanoseconds(seconds < 0 ? .min : .max)
            return
        }
        self = .nanoseconds(nanoseconds.addingSaturated(attoseconds / 1_000_000_000))
    }
}
