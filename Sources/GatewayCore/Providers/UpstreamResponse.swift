import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// A provider's response whose head has arrived; the body is read as it comes.
public struct UpstreamResponse: Sendable {
    /// The HTTP status.
    public var status: HTTPResponseStatus
    /// The response headers.
    public var headers: HTTPHeaders
    /// The body, read once.
    public var body: UpstreamBody
}

/// The body of an `UpstreamResponse`: the `ByteBuffer`s in the order they arrived, each read at most once.
///
/// It comes from the gateway's own connection pool (plain-HTTP providers) or from AsyncHTTPClient (HTTPS).
public struct UpstreamBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    typealias ConnectionStream = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, UpstreamBodyDemand
    >

    enum Storage: Sendable {
        case connection(ConnectionStream)
        case client(HTTPClientResponse.Body)
    }

    let storage: Storage
    /// Whether reading fails with `UpstreamConnectionError.bodyTimeout` at the deadline given when the request
    /// was sent, so the reader needs no timer of its own.
    public let endsAtDeadline: Bool

    init(storage: Storage, endsAtDeadline: Bool = false) {
        self.storage = storage
        self.endsAtDeadline = endsAtDeadline
    }

    /// Reads the next part of the body.
    public struct AsyncIterator: AsyncIteratorProtocol {
        enum Storage {
            case connection(ConnectionStream.AsyncIterator)
            case client(HTTPClientResponse.Body.AsyncIterator)
        }

        var storage: Storage

        public mutating func next() async throws -> ByteBuffer? {
            switch storage {
            case .connection(let iterator):
                return try await iterator.next()
            case .client(var iterator):
                defer { storage = .client(iterator) }
                return try await iterator.next()
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        switch storage {
        case .connection(let stream): AsyncIterator(storage: .connection(stream.makeAsyncIterator()))
        case .client(let body): AsyncIterator(storage: .client(body.makeAsyncIterator()))
        }
    }

    /// The whole body in one buffer.
    /// - Throws: `UpstreamConnectionError.responseTooLarge` past `maximumBytes`, or whatever reading threw.
    public func collect(upTo maximumBytes: Int) async throws -> ByteBuffer {
        var collected: ByteBuffer?
        for try await part in self {
            guard (collected?.readableBytes ?? 0) + part.readableBytes <= maximumBytes else {
                throw UpstreamConnectionError.responseTooLarge(maximumBytes)
            }
            // A body that arrives in one read (the usual case for an answer) is passed on without a copy.
            if collected == nil {
                collected = part
            } else {
                var part = part
                collected!.writeBuffer(&part)
            }
        }
        return collected ?? ByteBuffer()
    }
}

/// Why an exchange on one of the gateway's own upstream connections failed.
public enum UpstreamConnectionError: Error, Sendable, Equatable {
    /// No response head before the provider's `first_byte` timeout.
    case headTimeout
    /// The provider sent nothing for longer than its read timeout in the middle of a body.
    case readTimeout
    /// The body was not complete by the deadline given when the request was sent.
    case bodyTimeout
    /// The connection closed before the response was complete.
    case closed
    /// Every connection the pool may open to the provider is busy.
    case tooManyConnections(Int)
    /// A non-streamed body was larger than the gateway reads.
    case responseTooLarge(Int)
    /// The provider answered with something that is not HTTP/1.1, or answered when nothing was asked.
    case protocolViolation
}
