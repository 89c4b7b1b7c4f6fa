import NIOConcurrencyHelpers
import NIOCore

/// The bytes of one streamed answer on their way from the relay to the client's connection, bounded.
///
/// The relay `send`s each chunk and waits while `limit` bytes are queued: a client that reads slowly, or not at
/// all, slows the reading of the provider's stream instead of filling the gateway's memory, and the relay's idle
/// watchdog then ends a stream that makes no progress. The client's response body reads the chunks with `next()`;
/// when it stops (the client left), `consumerStopped()` releases a waiting sender and calls `onConsumerStopped`.
final class StreamOutput: Sendable {
    private struct State {
        var queued: [ByteBuffer] = []
        var bytes = 0
        var finished = false
        var consumerGone = false
        var waitingSender: CheckedContinuation<Void, Never>?
        var waitingReader: CheckedContinuation<ByteBuffer?, Never>?
    }

    /// Bytes queued beyond which `send` waits.
    let limit: Int
    private let state = NIOLockedValueBox(State())
    private let onConsumerStopped: NIOLockedValueBox<(@Sendable () -> Void)?> = NIOLockedValueBox(nil)

    init(limit: Int = 256 * 1024) {
        self.limit = limit
    }

    /// Called once when the client's side stops reading, whether the stream was complete or not.
    func whenConsumerStops(_ action: @escaping @Sendable () -> Void) {
        onConsumerStopped.withLockedValue { $0 = action }
    }

    /// Queues `buffer`, then waits while more than `limit` bytes are queued (returns at once once the stream is
    /// finished, the client has gone, or the task is cancelled).
    func send(_ buffer: ByteBuffer) async {
        push(buffer)
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let wait: Bool = state.withLockedValue { state in
                    guard state.bytes > limit, !state.finished, !state.consumerGone, !Task.isCancelled else { return false }
                    state.waitingSender = continuation
                    return true
                }
                if !wait { continuation.resume() }
            }
        } onCancel: {
            releaseSender()
        }
    }

    /// Queues `buffer` without waiting (the last frame of a failed stream).
    func push(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else { return }
        let reader: CheckedContinuation<ByteBuffer?, Never>? = state.withLockedValue { state in
            guard !state.finished, !state.consumerGone else { return nil }
            if let reader = state.waitingReader {
                state.waitingReader = nil
                return reader
            }
            state.queued.append(buffer)
            state.bytes += buffer.readableBytes
            return nil
        }
        reader?.resume(returning: buffer)
    }

    /// No more chunks: the reader gets what is queued, then the end.
    func finish() {
        let reader: CheckedContinuation<ByteBuffer?, Never>? = state.withLockedValue { state in
            state.finished = true
            defer { state.waitingReader = nil }
            return state.queued.isEmpty ? state.waitingReader : nil
        }
        reader?.resume(returning: nil)
        releaseSender()
    }

    /// The next chunk for the client, or nil once the stream is finished and drained.
    func next() async -> ByteBuffer? {
        let (taken, done): (Taken?, Bool) = state.withLockedValue { state in
            state.queued.isEmpty ? (nil, state.finished) : (takeFirst(&state), false)
        }
        if let taken {
            taken.sender?.resume()
            return taken.buffer
        }
        if done { return nil }
        return await withCheckedContinuation { (continuation: CheckedContinuation<ByteBuffer?, Never>) in
            // Checked again under the lock: a chunk (maybe one larger than `limit`, whose sender now waits) or the end
            // may have come since.
            let ready: (buffer: ByteBuffer?, sender: CheckedContinuation<Void, Never>?)? = state.withLockedValue { state in
                if !state.queued.isEmpty {
                    let taken = takeFirst(&state)
                    return (taken.buffer, taken.sender)
                }
                if state.finished { return (nil, nil) }
                state.waitingReader = continuation
                return nil
            }
            if let ready {
                ready.sender?.resume()
                continuation.resume(returning: ready.buffer)
            }
        }
    }

    /// A chunk taken from the queue, and the sender to release when the queue is back within `limit`.
    private struct Taken {
        var buffer: ByteBuffer
        var sender: CheckedContinuation<Void, Never>?
    }

    /// Takes the first queued chunk (the queue must not be empty), under the lock.
    private func takeFirst(_ state: inout State) -> Taken {
        let buffer = state.queued.removeFirst()
        state.bytes -= buffer.readableBytes
        guard state.bytes <= limit else { return Taken(buffer: buffer, sender: nil) }
        defer { state.waitingSender = nil }
        return Taken(buffer: buffer, sender: state.waitingSender)
    }

    /// The client's side has stopped reading: drops what is queued, releases the sender, tells the owner once.
    func consumerStopped() {
        state.withLockedValue { state in
            state.consumerGone = true
            state.queued = []
            state.bytes = 0
        }
        releaseSender()
        let action = onConsumerStopped.withLockedValue { action in
            defer { action = nil }
            return action
        }
        action?()
    }

    /// Bytes queued now.
    var queuedBytes: Int { state.withLockedValue { $0.bytes } }

    private func releaseSender() {
        let sender: CheckedContinuation<Void, Never>? = state.withLockedValue { state in
            defer { state.waitingSender = nil }
            return state.waitingSender
        }
        sender?.resume()
    }
}
