/// A complete, successful answer as the cache keeps it: the completion's JSON text, written once.
///
/// Every answer given from it (a hit, or the fresh answer itself) only appends `cost_usd` and `latency_ms` to the
/// text (`OpenAIChatDialect.answerBody`); nothing is decoded or encoded again on a hit.
public struct CachedAnswer: Sendable, Equatable {
    /// The OpenAI `chat.completion` object as JSON text, without `cost_usd` and `latency_ms`.
    public let completionText: [UInt8]
    /// The completion's token usage (logged on hits).
    public let usage: Usage?
    /// The configured name of the provider that produced it (`X-Provider` and the log's `provider` on hits).
    public var provider: String
    /// Upstream model that produced it (`X-Model` on replays).
    public var upstreamModel: String
    /// What the answer cost when it was made, in USD (what a hit saves); nil when the model has no price.
    public var costUSD: Double?
    /// The provider's answer in the client's own API, as it came (`ChatCompletion.native`); replayed as it is.
    public var native: [UInt8]?

    /// - Parameters:
    ///   - completion: the `chat.completion` object.
    ///   - text: the object's text as the provider wrote it, when there is one; kept as it is unless the object
    ///     has `cost_usd` or `latency_ms` (which every answer gets from the gateway), saving writing it again.
    ///   - native: the provider's answer in the client's own API, when it answered in it.
    public init(completion: JSON, text: [UInt8]? = nil, provider: String, upstreamModel: String, costUSD: Double?, native: [UInt8]? = nil) {
        let usage = Usage(openAI: completion["usage"])
        if let text, text.first == UInt8(ascii: "{"), text.last == UInt8(ascii: "}"), completion["cost_usd"] == nil,
            completion["latency_ms"] == nil
        {
            self.init(completionText: text, usage: usage, provider: provider, upstreamModel: upstreamModel, costUSD: costUSD, native: native)
            return
        }
        var members = completion
        members["cost_usd"] = nil
        members["latency_ms"] = nil
        self.init(
            completionText: members.bytes(), usage: usage, provider: provider, upstreamModel: upstreamModel, costUSD: costUSD, native: native)
    }

    private init(completionText: [UInt8], usage: Usage?, provider: String, upstreamModel: String, costUSD: Double?, native: [UInt8]?) {
        self.completionText = completionText
        self.usage = usage
        self.provider = provider
        self.upstreamModel = upstreamModel
        self.costUSD = costUSD
        self.native = native
    }

    /// The completion, read back from its text (streamed replays need its parts).
    public var completion: JSON {
        (try? JSON.parse(completionText)) ?? .object([:])
    }

    /// Equal when they hold the same answer: the texts are compared as JSON, since equal objects may list their
    /// members in different orders.
    public static func == (lhs: CachedAnswer, rhs: CachedAnswer) -> Bool {
        lhs.provider == rhs.provider && lhs.upstreamModel == rhs.upstreamModel && lhs.costUSD == rhs.costUSD
            && lhs.usage == rhs.usage && lhs.completion == rhs.completion && lhs.native == rhs.native
    }

    /// Marks the stored form; the form before it was one JSON object holding the completion.
    private static let formTag = Array("llm-gateway-answer/2\n".utf8)

    /// The stored form: a tag line, a line of JSON with everything but the completion, then the completion's text
    /// (compact JSON has no raw newline), so reading it back parses only the short line.
    public func encoded() -> [UInt8] {
        var about: [String: JSON] = [
            "provider": .string(provider), "model": .string(upstreamModel), "cost_usd": costUSD.map(JSON.double) ?? .null,
            "usage": usage?.json ?? .null,
        ]
        // A JSON string gives back exactly the bytes it was made from: the native answer stays byte for byte.
        if let native { about["native"] = .string(String(decoding: native, as: UTF8.self)) }
        let aboutLine = JSON.object(about)
        return Self.formTag + aboutLine.bytes() + [UInt8(ascii: "\n")] + completionText
    }

    /// Reads the stored form (or the one before it); nil when it is neither.
    public init?(encoded bytes: [UInt8]) {
        guard bytes.starts(with: Self.formTag) else {
            guard let json = try? JSON.parse(bytes), let completion = json["completion"], completion.objectValue != nil,
                let provider = json["provider"]?.stringValue, let model = json["model"]?.stringValue
            else { return nil }
            self.init(completion: completion, provider: provider, upstreamModel: model, costUSD: json["cost_usd"]?.doubleValue)
            return
        }
        let rest = bytes[Self.formTag.count...]
        guard let newline = rest.firstIndex(of: UInt8(ascii: "\n")), let about = try? JSON.parse(rest[..<newline]),
            let provider = about["provider"]?.stringValue, let model = about["model"]?.stringValue,
            rest.index(after: newline) < rest.endIndex, rest[rest.index(after: newline)] == UInt8(ascii: "{"), rest.last == UInt8(ascii: "}")
        else { return nil }
        self.init(
            completionText: Array(rest[rest.index(after: newline)...]), usage: Usage(openAI: about["usage"]), provider: provider,
            upstreamModel: model, costUSD: about["cost_usd"]?.doubleValue, native: about["native"]?.stringValue.map { Array($0.utf8) })
    }

    /// Bytes this entry takes in a memory cache (approximately): its text and strings, and a fixed allowance for
    /// the rest.
    public var approximateBytes: Int {
        completionText.count + (native?.count ?? 0) + provider.utf8.count + upstreamModel.utf8.count + 128
    }
}

/// Where cached answers live: in this process, or in Redis shared by several gateways.
public protocol ResponseCacheBackend: Sendable {
    /// The answer stored under `key`, if any and not expired. Backend failures read as a miss.
    func get(_ key: String) async -> CachedAnswer?
    /// Stores `answer` under `key` for `ttl`. Backend failures are logged, never thrown.
    func set(_ key: String, _ answer: CachedAnswer, ttl: Duration) async
    /// Removes every entry; returns how many were removed when the backend knows.
    func flush() async -> Int?
}
