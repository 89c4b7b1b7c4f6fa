/// One row of the request log: what was asked, who answered, what it cost, how it ended.
///
/// Every request makes exactly one, whatever its outcome (success, cache hit, failover, 4xx, 429, 5xx,
/// client disconnect, mid-stream error). `requestID` is unique: writing the same record twice keeps one row.
public struct RequestRecord: Sendable, Equatable {
    /// Unique id of the row: the gateway's own request id, never the client's.
    public var requestID: String
    /// The client's `X-Request-Id`, when it sent an acceptable one (echoed back, and kept here; not unique).
    public var clientRequestID: String?
    /// When the request arrived, in microseconds since 1970 (UTC).
    public var createdAtMicros: Int64
    /// The gateway key's name; nil when the request was not authenticated.
    public var keyName: String?
    /// The route, e.g. `/v1/chat/completions`.
    public var endpoint: String
    /// `model` as the client asked for it.
    public var model: String?
    /// The upstream model that answered.
    public var servedModel: String?
    /// The provider (name) that answered.
    public var provider: String?
    /// The provider (name) tried first, when a fallback answered.
    public var originalProvider: String?
    /// HTTP status sent to the client (499 when the client left first).
    public var statusCode: Int
    /// The error message sent to the client, or the mid-stream error.
    public var errorMessage: String?
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var totalTokens: Int?
    public var cachedTokens: Int?
    /// What the answer cost, in USD; nil when the model has no price or nothing was used.
    public var costUSD: Double?
    /// What a cache hit saved, in USD.
    public var savedCostUSD: Double?
    /// Milliseconds from arrival to the end of the answer.
    public var latencyMs: Int
    /// Milliseconds from arrival to the first byte sent to the client.
    public var ttfbMs: Int?
    public var cacheHit: Bool
    public var failoverUsed: Bool
    public var attempts: Int
    public var stream: Bool
    /// `X-Customer-Id`, else the OpenAI `user` field.
    public var customer: String?
    /// `X-Feature`.
    public var feature: String?
    /// `X-Metadata-<name>` headers and the OpenAI `metadata` object, as a JSON object.
    public var metadata: [String: String]
    /// `chat` or `embeddings`.
    public var kind: String = "chat"
    /// Which cache tier answered (`exact`, `semantic`); nil when none did.
    public var cacheHitKind: String?
    /// A semantic hit's cosine similarity.
    public var cacheSimilarity: Double?
    /// The semantic cache entry a hit used (`ctl cache forget` takes it).
    public var cacheEntry: String?
    /// What the semantic cache's embedder call cost, in USD.
    public var embedderCostUSD: Double?
    /// How long the semantic cache's embedder call took.
    public var embedderLatencyMs: Int?
    /// The Responses API response the request asked to keep (`store: true`), written with the row.
    public var storedResponse: StoredResponse?

    public init(
        requestID: String, clientRequestID: String? = nil, createdAtMicros: Int64, keyName: String? = nil, endpoint: String = "/v1/chat/completions",
        model: String? = nil, servedModel: String? = nil, provider: String? = nil, originalProvider: String? = nil,
        statusCode: Int, errorMessage: String? = nil, promptTokens: Int? = nil, completionTokens: Int? = nil,
        totalTokens: Int? = nil, cachedTokens: Int? = nil, costUSD: Double? = nil, savedCostUSD: Double? = nil,
        latencyMs: Int = 0, ttfbMs: Int? = nil, cacheHit: Bool = false, failoverUsed: Bool = false, attempts: Int = 0,
        stream: Bool = false, customer: String? = nil, feature: String? = nil, metadata: [String: String] = [:], kind: String = "chat",
        cacheHitKind: String? = nil, cacheSimilarity: Double? = nil, cacheEntry: String? = nil, embedderCostUSD: Double? = nil,
        embedderLatencyMs: Int? = nil, storedResponse: StoredResponse? = nil
    ) {
        self.requestID = requestID
        self.clientRequestID = clientRequestID
        self.createdAtMicros = createdAtMicros
        self.keyName = keyName
        self.endpoint = endpoint
        self.model = model
        self.servedModel = servedModel
        self.provider = provider
        self.originalProvider = originalProvider
        self.statusCode = statusCode
        self.errorMessage = errorMessage
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
        self.cachedTokens = cachedTokens
        self.costUSD = costUSD
        self.savedCostUSD = savedCostUSD
        self.latencyMs = latencyMs
        self.ttfbMs = ttfbMs
        self.cacheHit = cacheHit
        self.failoverUsed = failoverUsed
        self.attempts = attempts
        self.stream = stream
        self.customer = customer
        self.feature = feature
        self.metadata = metadata
        self.kind = kind
        self.cacheHitKind = cacheHitKind
        self.cacheSimilarity = cacheSimilarity
        self.cacheEntry = cacheEntry
        self.embedderCostUSD = embedderCostUSD
        self.embedderLatencyMs = embedderLatencyMs
        self.storedResponse = storedResponse
        fitColumns()
    }

    /// Keeps every value within what the log's columns hold, so no row can fail its batch: text the client chose
    /// within 256 characters (an 8 KB model name would break PostgreSQL's index), error messages within 4 KB,
    /// integers within `0...Int32.max` (`INTEGER`), money within `0...9_999_999_999` and finite (`NUMERIC(20,10)`).
    private mutating func fitColumns() {
        model = Attribution.bounded(model)
        servedModel = Attribution.bounded(servedModel)
        provider = Attribution.bounded(provider)
        originalProvider = Attribution.bounded(originalProvider)
        if let message = errorMessage, message.utf8.count > 4096 { errorMessage = String(message.prefix(4000)) + "…" }
        promptTokens = promptTokens.map(Self.integerColumn)
        completionTokens = completionTokens.map(Self.integerColumn)
        totalTokens = totalTokens.map(Self.integerColumn)
        cachedTokens = cachedTokens.map(Self.integerColumn)
        ttfbMs = ttfbMs.map(Self.integerColumn)
        statusCode = Self.integerColumn(statusCode)
        latencyMs = Self.integerColumn(latencyMs)
        attempts = Self.integerColumn(attempts)
        costUSD = costUSD.flatMap(Self.moneyColumn)
        savedCostUSD = savedCostUSD.flatMap(Self.moneyColumn)
        embedderCostUSD = embedderCostUSD.flatMap(Self.moneyColumn)
        embedderLatencyMs = embedderLatencyMs.map(Self.integerColumn)
        if let similarity = cacheSimilarity, !similarity.isFinite { cacheSimilarity = nil }
    }

    static func integerColumn(_ value: Int) -> Int {
        min(max(value, 0), Int(Int32.max))
    }

    static func moneyColumn(_ value: Double) -> Double? {
        value.isFinite ? min(max(value, 0), 9_999_999_999) : nil
    }
}

/// How `llm-gateway stats` groups rows.
public enum StatsDimension: String, Sendable, CaseIterable {
    case model, key, provider, customer, feature
}

/// One line of `llm-gateway stats`.
public struct StatsRow: Sendable, Equatable {
    /// The group's value (model name, key name, ...); "(none)" for rows without one.
    public var group: String
    public var requests: Int
    public var errors: Int
    public var cacheHits: Int
    public var promptTokens: Int
    public var completionTokens: Int
    public var spendUSD: Double
    public var savedUSD: Double
    public var latencyP50Ms: Double?
    public var latencyP95Ms: Double?

    public init(
        group: String, requests: Int, errors: Int, cacheHits: Int, promptTokens: Int, completionTokens: Int, spendUSD: Double,
        savedUSD: Double, latencyP50Ms: Double?, latencyP95Ms: Double?
    ) {
        self.group = group
        self.requests = requests
        self.errors = errors
        self.cacheHits = cacheHits
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.spendUSD = spendUSD
        self.savedUSD = savedUSD
        self.latencyP50Ms = latencyP50Ms
        self.latencyP95Ms = latencyP95Ms
    }
}

extension RequestRecord {
    /// `metadata` as the JSON object text stored in the `metadata` column.
    static func metadataJSON(_ metadata: [String: String]) -> String {
        JSON.object(metadata.mapValues { JSON.string($0) }).serialized(sortedKeys: true)
    }
}

extension Array where Element == RequestRecord {
    /// The batch as consecutive runs of at most `rows` records, in order: each store writes a batch as several
    /// short statements in one transaction.
    func statementChunks(of rows: Int) -> [ArraySlice<RequestRecord>] {
        stride(from: 0, to: count, by: rows).map { self[$0..<Swift.min($0 + rows, count)] }
    }
}

/// Where request rows are kept: SQLite by default, PostgreSQL for fleets.
public protocol RequestLogStore: Sendable {
    /// Creates or upgrades the schema (idempotent; applied migrations are recorded in `schema_migrations`).
    func migrate() async throws
    /// Writes `records` in one batch. A record whose `requestID` is already stored is skipped, not duplicated.
    func insert(_ records: [RequestRecord]) async throws
    /// Aggregates the rows created at or after `sinceMicros`, grouped by `dimension`.
    func stats(sinceMicros: Int64, by dimension: StatsDimension) async throws -> [StatsRow]
    /// The spend of the rows created at or after `sinceMicros` that cost something, summed per quarter hour and per
    /// key, customer, feature, model, provider and metadata: what budgets rebuild their counters from.
    func spend(sinceMicros: Int64) async throws -> [SpendRow]
    /// Spend and requests per hour, key and customer of the rows created at or after `sinceMicros`: what spend
    /// anomalies are found in.
    func hourlySpend(sinceMicros: Int64) async throws -> [HourlySpend]
    /// The response `id` kept for `keyName`, unless it expired by `nowMicros` (or belongs to another key).
    func storedResponse(id: String, keyName: String, nowMicros: Int64) async throws -> StoredResponse?
    /// Deletes the response `id` of `keyName`; false when there was none.
    func deleteStoredResponse(id: String, keyName: String) async throws -> Bool
    /// Deletes the responses that expired at or before `expiredBeforeMicros`; returns how many.
    func purgeStoredResponses(expiredBeforeMicros: Int64) async throws -> Int
    /// Releases connections.
    func close() async

    /// Whether `error`, thrown by `insert`, refuses the rows' values (a value out of a column's range, too long to
    /// index, a constraint): the same rows would fail again, on a store that is otherwise up. False for everything
    /// that may pass (the store down, a timeout, a full disk), whose rows are kept in the spool and retried.
    func refusesRows(_ error: any Error) -> Bool
}
