import HTTPTypes
import NIOCore

/// OpenAI's Chat Completions API (`POST /v1/chat/completions`): the gateway's first dialect, and its canonical
/// form, so decoding validates and encoding adds only the gateway's own members.
public struct OpenAIChatDialect: ClientDialect {
    public init() {}

    public func decode(_ body: ByteBuffer, headers: HTTPFields) throws(GatewayError) -> ChatRequest {
        try ChatRequest(parsing: body.readableBytesView)
    }

    public func encodeAnswer(_ completionText: [UInt8], costUSD: Double?, latencyMs: Int) -> ByteBuffer {
        Self.answerBody(completionText, cost: costUSD, latencyMs: latencyMs)
    }

    public func makeFrameEncoder(for request: ChatRequest) -> Frames { Frames() }

    public func errorBody(_ error: GatewayError) -> ByteBuffer {
        ByteBuffer(string: error.envelope.serialized())
    }

    /// The answer with `cost_usd` (null when unpriced) and `latency_ms` beside `usage`: the two members are
    /// added to the object's text (`CachedAnswer.completionText`, which has neither), not to a copy of the object.
    static func answerBody(_ text: [UInt8], cost: Double?, latencyMs: Int) -> ByteBuffer {
        var members = text.count > 2 ? "," : ""
        members += "\"cost_usd\":"
        (cost.map(JSON.double) ?? .null).write(to: &members)
        members += ",\"latency_ms\":" + String(latencyMs) + "}"
        var buffer = ByteBuffer()
        buffer.reserveCapacity(text.count + members.utf8.count)
        buffer.writeBytes(text.dropLast())
        buffer.writeString(members)
        return buffer
    }

    /// Server-sent events of `data: <payload>`; the payloads are already OpenAI's chunks.
    public struct Frames: StreamFrameEncoder {
        public init() {}

        public mutating func frames(_ payloads: [String]) -> ByteBuffer {
            Self.frames(payloads)
        }

        public mutating func errorFrame(_ error: GatewayError) -> ByteBuffer {
            Self.frames([error.envelope.serialized()])
        }

        static func frames(_ payloads: [String]) -> ByteBuffer {
            var buffer = ByteBuffer()
            for payload in payloads {
                buffer.writeString("data: ")
                buffer.writeString(payload)
                buffer.writeString("\n\n")
            }
            return buffer
        }
    }
}
