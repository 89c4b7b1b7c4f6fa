import HTTPTypes
import NIOCore

/// One client API as the client speaks it: how its requests are decoded into the gateway's canonical request,
/// and how answers, stream frames and errors are encoded back.
///
/// The canonical request is `ChatRequest` (OpenAI Chat Completions, validated); canonical answers are OpenAI
/// `chat.completion` objects and `chat.completion.chunk` payloads, which every provider adapter produces. A dialect
/// translates only at the edge, so the stages in between (admission, cache, upstream chain, ledger) are shared.
/// A new client API is a new conformer and a route line in `Gateway.makeRouter`, not a copy of the pipeline.
public protocol ClientDialect: Sendable {
    /// The encoder of one stream's frames.
    associatedtype Frames: StreamFrameEncoder

    /// Decodes and validates a request body.
    /// - Throws: `GatewayError` (400) naming the parameter at fault.
    func decode(_ body: ByteBuffer, headers: HTTPFields) throws(GatewayError) -> ChatRequest

    /// Completes a decoded request with what the gateway keeps for the client (a Responses request's previous
    /// response), once the key is known; the default returns it unchanged.
    /// - Throws: `GatewayError` for the client.
    func prepare(_ request: ChatRequest, key: KeyConfig, context: GatewayRequestContext) async throws -> ChatRequest

    /// The body of a complete answer.
    /// - Parameters:
    ///   - completionText: the canonical `chat.completion` object's JSON text.
    ///   - costUSD: what the answer cost (nil when the model has no price).
    ///   - latencyMs: milliseconds since the request arrived.
    func encodeAnswer(_ completionText: [UInt8], costUSD: Double?, latencyMs: Int) -> ByteBuffer

    /// The body of a complete answer to `request`, for a dialect whose answer echoes the request.
    func encodeAnswer(_ completionText: [UInt8], for request: ChatRequest, costUSD: Double?, latencyMs: Int) -> ByteBuffer

    /// The encoder for one streamed answer.
    func makeFrameEncoder(for request: ChatRequest) -> Frames

    /// The error's body in this API's error envelope.
    func errorBody(_ error: GatewayError) -> ByteBuffer

    /// The body of an answer a provider gave in this API itself (`ChatCompletion.native`), or nil for a dialect
    /// no provider speaks.
    func encodeNativeAnswer(_ native: [UInt8], costUSD: Double?, latencyMs: Int) -> ByteBuffer?

    /// The same, for a dialect whose answer depends on the request (a Responses answer's id and keeping).
    func encodeNativeAnswer(_ native: [UInt8], for request: ChatRequest, costUSD: Double?, latencyMs: Int) -> ByteBuffer?
}

extension ClientDialect {
    public func prepare(_ request: ChatRequest, key: KeyConfig, context: GatewayRequestContext) async throws -> ChatRequest { request }

    public func encodeNativeAnswer(_ native: [UInt8], costUSD: Double?, latencyMs: Int) -> ByteBuffer? { nil }

    public func encodeNativeAnswer(_ native: [UInt8], for request: ChatRequest, costUSD: Double?, latencyMs: Int) -> ByteBuffer? {
        encodeNativeAnswer(native, costUSD: costUSD, latencyMs: latencyMs)
    }

    public func encodeAnswer(_ completionText: [UInt8], for request: ChatRequest, costUSD: Double?, latencyMs: Int) -> ByteBuffer {
        encodeAnswer(completionText, costUSD: costUSD, latencyMs: latencyMs)
    }

    /// The body of `answer` to `request`: the provider's own when it answered in this API, else the canonical one
    /// encoded.
    func encode(_ answer: CachedAnswer, for request: ChatRequest, costUSD: Double?, latencyMs: Int) -> ByteBuffer {
        if let native = answer.native, let body = encodeNativeAnswer(native, for: request, costUSD: costUSD, latencyMs: latencyMs) {
            return body
        }
        return encodeAnswer(answer.completionText, for: request, costUSD: costUSD, latencyMs: latencyMs)
    }
}

/// Writes one stream's canonical chunk payloads as the bytes its client reads.
public protocol StreamFrameEncoder: Sendable {
    /// The frames of `payloads` (canonical `chat.completion.chunk` JSON texts, and `[DONE]`).
    mutating func frames(_ payloads: [String]) -> ByteBuffer

    /// The frames of a provider's own events, when it streams in this API itself (`OpenedUpstream.passthrough`):
    /// each as it came.
    mutating func nativeFrames(_ events: [ServerSentEvent]) -> ByteBuffer

    /// The frame that ends a stream which failed after it started.
    mutating func errorFrame(_ error: GatewayError) -> ByteBuffer
}

extension StreamFrameEncoder {
    public mutating func nativeFrames(_ events: [ServerSentEvent]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for event in events { event.write(to: &buffer) }
        return buffer
    }
}
