/// A complete, successful answer as the cache keeps it.
public struct CachedAnswer: Sendable, Equatable {
    /// The OpenAI `chat.completion` object, as the client first received it.
    public var completion: JSON {
        didSet { completionText = Self.text(of: completion) }
    }
    /// Provider type that produced it (`X-Provider` on replays).
    public var providerType: String
    /// Upstream model that produced it (`X-Model` on replays).
    public var upstreamModel: String
    /// What the answer cost when it was made, in USD (what a hit saves); nil when the model has no price.
    public var costUSD: Double?
    /// `completion` as JSON text without `cost_usd` and `latency_ms`, written once: each answer given from it
    /// only adds those two members (`ChatCompletionsRoute.answerBody`).
    public private(set) var completionText: [UInt8]

    public init(completion: JSON, providerType: String, upstreamModel: String, costUSD: Double?) {
        self.completion = completion
        self.providerType = providerType
        self.upstreamModel = upstreamModel
        self.costUSD = costUSD
        self.completionText = Self.text(of: completion)
    }

    /// Equal when they hold the same answer; the text is not compared, as equal objects may list members in
    /// different orders.
    public static func == (lhs: CachedAnswer, rhs: CachedAnswer) -> Bool {
        lhs.completion == rhs.completion && lhs.providerType == rhs.providerType && lhs.upstreamModel == rhs.upstreamModel
            && lhs.costUSD == rhs.costUSD
    }

    private static func text(of completion: JSON) -> [UInt8] {
        var members = completion
        members["cost_usd"] = nil
        members["latency_ms"] = nil
        return members.bytes()
    }

    /// The stored form (JSON bytes).
    public func encoded() -> [UInt8] {
        JSON.object([
            "completion": completion, "provider": .string(providerType), "model": .string(upstreamModel),
            "cost_usd": costUSD.map(JSON.double) ?? .null,
        ]).bytes()
    }

    /// Reads the stored form; nil when it is not one.
    public init?(encoded bytes: [UInt8]) {
        guard let json = try? JSON.parse(bytes), let completion = json["completion"], completion.objectValue != nil,
            let provider = json["provider"]?.stringValue, let model = json["model"]?.stringValue
        else { return nil }
        self.init(completion: completion, providerType: provider, upstreamModel: model, costUSD: json["cost_usd"]?.doubleValue)
    }

    /// Bytes this entry takes in a memory cache (approximately): the values and their text.
    ///
    /// Counted from the values (see `JSON.approximateByteCount`) rather than by encoding the answer again.
    public var approximateBytes: Int {
        completion.approximateByteCount + completionText.count + providerType.utf8.count + upstreamModel.utf8.count + 64
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
