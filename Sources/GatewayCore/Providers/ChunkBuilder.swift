import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds OpenAI `chat.completion.chunk` payloads for one streamed response:
/// one id and one `created` time for every chunk, the role in the first delta.
public struct ChunkBuilder: Sendable {
    /// `chatcmpl-…` id shared by every chunk.
    public let id: String
    /// Unix time of the response.
    public let created: Int64
    /// Model name reported to the client.
    public let model: String
    /// Whether the client asked for the final usage chunk.
    public let includeUsage: Bool
    private var sentRole = false

    public init(model: String, includeUsage: Bool, id: String = RandomID.make(prefix: "chatcmpl-"), created: Int64 = UnixTime.now()) {
        self.id = id
        self.created = created
        self.model = model
        self.includeUsage = includeUsage
    }

    /// A chunk with one choice carrying `delta` (the role is added to the first one).
    public mutating func delta(_ delta: [String: JSON], finishReason: String? = nil) -> String {
        var delta = delta
        if !sentRole {
            delta["role"] = "assistant"
            sentRole = true
        }
        let choice: JSON = [
            "index": 0,
            "delta": .object(delta),
            "logprobs": .null,
            "finish_reason": finishReason.map(JSON.string) ?? .null,
        ]
        return chunk(choices: [choice])
    }

    /// The first chunk: role and empty content.
    public mutating func start() -> String {
        delta(["content": ""])
    }

    /// A chunk with a piece of text.
    public mutating func text(_ text: String) -> String {
        delta(["content": .string(text)])
    }

    /// A chunk opening tool call number `index`, with its id and name and the first piece of its arguments.
    public mutating func toolCallStart(index: Int, id: String, name: String, arguments: String = "") -> String {
        delta([
            "tool_calls": [
                [
                    "index": .int(Int64(index)), "id": .string(id), "type": "function",
                    "function": ["name": .string(name), "arguments": .string(arguments)],
                ]
            ]
        ])
    }

    /// A chunk with more of tool call number `index`'s arguments.
    public mutating func toolCallArguments(index: Int, fragment: String) -> String {
        delta(["tool_calls": [["index": .int(Int64(index)), "function": ["arguments": .string(fragment)]]]])
    }

    /// The chunk carrying the finish reason, with an empty delta.
    public mutating func finish(reason: String) -> String {
        delta([:], finishReason: reason)
    }

    /// The usage chunk (`choices: []`), sent after the finish chunk when asked for.
    public func usage(_ usage: Usage) -> String {
        chunk(choices: [], usage: usage.json)
    }

    /// The payloads that close a stream: the usage chunk when asked for, then `[DONE]`.
    public func closing(usage: Usage?) -> [String] {
        var payloads: [String] = []
        if includeUsage { payloads.append(self.usage(usage ?? Usage())) }
        payloads.append("[DONE]")
        return payloads
    }

    private func chunk(choices: [JSON], usage: JSON? = nil) -> String {
        var object: [String: JSON] = [
            "id": .string(id),
            "object": "chat.completion.chunk",
            "created": .int(created),
            "model": .string(model),
            "choices": .array(choices),
        ]
        if includeUsage { object["usage"] = usage ?? .null }
        return JSON.object(object).serialized()
    }
}

/// Random identifiers for responses and tool calls.
public enum RandomID {
    /// Letters and digits in ASCII order, so fixed-width numbers written in it sort as text in numeric order.
    private static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    /// Characters of the millisecond clock in a time-ordered id: 62^8 ms is about 6,900 years.
    private static let clockWidth = 8

    /// `prefix`, the wall clock in milliseconds (8 characters), then 16 random letters and digits (95 bits).
    ///
    /// Ids made later sort after ids made earlier, so a log keyed on them inserts at the end of its unique index
    /// instead of on a random page: the request log writes each page once per batch, not once per row.
    public static func timeOrdered(prefix: String) -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var clock = UInt64(max(0, spec.tv_sec)) * 1000 + UInt64(max(0, spec.tv_nsec)) / 1_000_000
        let base = UInt64(alphabet.count)
        // Written straight into the string's storage: every request gets one of these.
        return String(unsafeUninitializedCapacity: prefix.utf8.count + clockWidth + 16) { buffer in
            let start = buffer.initialize(fromContentsOf: prefix.utf8)
            for index in stride(from: start + clockWidth - 1, through: start, by: -1) {
                buffer[index] = alphabet[Int(clock % base)]
                clock /= base
            }
            return writeRandom(count: 16, into: buffer, at: start + clockWidth)
        }
    }

    /// `prefix` followed by `length` random letters and digits.
    public static func make(prefix: String, length: Int = 24) -> String {
        guard length > 0 else { return prefix }
        return String(unsafeUninitializedCapacity: prefix.utf8.count + length) { buffer in
            writeRandom(count: length, into: buffer, at: buffer.initialize(fromContentsOf: prefix.utf8))
        }
    }

    /// Writes `count` random letters and digits into `buffer` from `start`; returns the index after them.
    ///
    /// Ten characters from each 64-bit random number (62^10 < 2^64), the numbers taken from `RandomPool`:
    /// SystemRandomNumberGenerator makes one system call per number, and every request gets an id.
    private static func writeRandom(count: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: (count + 9) / 10) { words in
            fillRandom(UnsafeMutableRawBufferPointer(words))
            let base = UInt64(alphabet.count)
            var value: UInt64 = 0
            for offset in 0..<count {
                if offset % 10 == 0 { value = words[offset / 10] }
                buffer[start + offset] = alphabet[Int(value % base)]
                value /= base
            }
            return start + count
        }
    }

    /// Fills `buffer` with random bytes from `pool`.
    private static func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        pool.withLockedValue { $0.take(into: buffer) }
    }

    private static let pool = NIOLockedValueBox(RandomPool())
}

/// Random bytes from the system (`arc4random_buf`, one getrandom call) 512 at a time, each handed out once:
/// one system call per 21 request ids instead of one per id. Ids are not secrets; keys are made elsewhere, with
/// `SystemRandomNumberGenerator`.
struct RandomPool {
    private var bytes = [UInt8](repeating: 0, count: 512)
    private var used = 512

    mutating func take(into buffer: UnsafeMutableRawBufferPointer) {
        guard buffer.count <= bytes.count else {
            arc4random_buf(buffer.baseAddress!, buffer.count)
            return
        }
        if used + buffer.count > bytes.count {
            bytes.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
            used = 0
        }
        bytes.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[used..<used + buffer.count]))
        }
        used += buffer.count
    }
}

/// The wall clock in whole seconds.
public enum UnixTime {
    /// Seconds since 1970.
    public static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }
}

/// OpenAI finish reasons.
public enum FinishReason {
    public static let stop = "stop"
    public static let length = "length"
    public static let toolCalls = "tool_calls"
    public static let contentFilter = "content_filter"
}

extension ChatCompletion {
    /// Builds a `chat.completion` with one choice.
    /// - Parameters:
    ///   - text: the assistant's text, nil when it only called tools.
    ///   - toolCalls: OpenAI `tool_calls` entries.
    public static func make(
        model: String, text: String?, toolCalls: [JSON], finishReason: String, usage: Usage?,
        id: String = RandomID.make(prefix: "chatcmpl-"), created: Int64 = UnixTime.now()
    ) -> ChatCompletion {
        var message: [String: JSON] = [
            "role": "assistant",
            "content": text.map(JSON.string) ?? .null,
            "refusal": .null,
        ]
        if !toolCalls.isEmpty { message["tool_calls"] = .array(toolCalls) }
        var body: [String: JSON] = [
            "id": .string(id),
            "object": "chat.completion",
            "created": .int(created),
            "model": .string(model),
            "choices": [["index": 0, "message": .object(message), "logprobs": .null, "finish_reason": .string(finishReason)]],
        ]
        if let usage { body["usage"] = usage.json }
        return ChatCompletion(body: .object(body), usage: usage)
    }
}
