#if canImport(Glibc)
import Glibc
#endif
import HTTPTypes
import NIOConcurrencyHelpers

/// Receives finished request records (the request log's writer; nothing when the log is off).
public protocol RequestRecordSink: Sendable {
    /// Takes one record without waiting for any database.
    func record(_ record: RequestRecord)
}

/// What is known about one request as it goes, filled in by the route and turned into its `RequestRecord`.
///
/// The logging middleware writes the record when the handler returns, unless the answer is a stream:
/// then the stream's task writes it when the stream ends.
final class RequestOutcome: Sendable {
    struct Fields {
        var keyName: String?
        var model: String?
        var servedModel: String?
        var provider: String?
        var originalProvider: String?
        var errorMessage: String?
        var usage: Usage?
        var costUSD: Double?
        var savedCostUSD: Double?
        var ttfbMs: Int?
        var cacheHit = false
        var failoverUsed = false
        var attempts = 0
        var stream = false
        var customer: String?
        var feature: String?
        var metadata: [String: String] = [:]
        /// The stream's task writes the record.
        var deferred = false
        /// `chat` or `embeddings`.
        var kind = "chat"
        var cacheHitKind: String?
        var cacheSimilarity: Double?
        var cacheEntry: String?
        var embedderCostUSD: Double?
        var embedderLatencyMs: Int?
        /// The Responses API response to keep with the row.
        var storedResponse: StoredResponse?
    }

    let requestID: String
    let clientRequestID: String?
    let createdAtMicros: Int64
    let endpoint: String
    let startedAt: ContinuousClock.Instant
    private let fields = NIOLockedValueBox(Fields())
    private let written = NIOLockedValueBox(false)

    init(requestID: String, clientRequestID: String? = nil, endpoint: String, startedAt: ContinuousClock.Instant) {
        self.requestID = requestID
        self.clientRequestID = clientRequestID
        self.endpoint = endpoint
        self.startedAt = startedAt
        self.createdAtMicros = UnixTime.nowMicros()
    }

    /// Changes what is known.
    func update(_ change: (inout Fields) -> Void) {
        fields.withLockedValue { change(&$0) }
    }

    /// Whether the stream's task will write the record.
    var isDeferred: Bool { fields.withLockedValue { $0.deferred } }

    /// Writes the record once (later calls do nothing).
    /// - Parameter finishedAt: when the answer was complete (its latency ends there); now when not given.
    func finish(status: Int, into sink: (any RequestRecordSink)?, finishedAt: ContinuousClock.Instant = .now) {
        guard let sink, written.withLockedValue({ done in defer { done = true }; return !done }) else { return }
        let latency = Int((finishedAt - startedAt).wholeMilliseconds)
        let fields = self.fields.withLockedValue { $0 }
        sink.record(
            RequestRecord(
                requestID: requestID, clientRequestID: clientRequestID, createdAtMicros: createdAtMicros, keyName: fields.keyName, endpoint: endpoint, model: fields.model,
                servedModel: fields.servedModel, provider: fields.provider, originalProvider: fields.originalProvider, statusCode: status,
                errorMessage: fields.errorMessage, promptTokens: fields.usage?.promptTokens, completionTokens: fields.usage?.completionTokens,
                totalTokens: fields.usage?.totalTokens, cachedTokens: fields.usage?.cachedTokens, costUSD: fields.costUSD,
                savedCostUSD: fields.savedCostUSD, latencyMs: latency, ttfbMs: fields.ttfbMs, cacheHit: fields.cacheHit,
                failoverUsed: fields.failoverUsed, attempts: fields.attempts, stream: fields.stream, customer: fields.customer,
                feature: fields.feature, metadata: fields.metadata, kind: fields.kind, cacheHitKind: fields.cacheHitKind, cacheSimilarity: fields.cacheSimilarity, cacheEntry: fields.cacheEntry,
                embedderCostUSD: fields.embedderCostUSD, embedderLatencyMs: fields.embedderLatencyMs, storedResponse: fields.storedResponse))
    }
}

/// Who a request is for, from `X-Customer-Id`, `X-Feature`, `X-Metadata-<name>` and the OpenAI `user` and
/// `metadata` fields. Values are cut to 256 characters and at most 32 metadata entries are kept; they are
/// stored as bound values, never as SQL.
/// Who a request is for, as the client says: what the request log records and budgets partition by.
struct RequestAttribution: Sendable, Equatable {
    var customer: String?
    var feature: String?
    var metadata: [String: String] = [:]
}

enum Attribution {
    static let maximumLength = 256
    static let maximumEntries = 32

    static func apply(headers: HTTPFields, request: ChatRequest, to fields: inout RequestOutcome.Fields) {
        apply(read(headers: headers, request: request), to: &fields)
    }

    static func apply(_ attribution: RequestAttribution, to fields: inout RequestOutcome.Fields) {
        fields.customer = attribution.customer
        fields.feature = attribution.feature
        fields.metadata = attribution.metadata
    }

    /// The customer (`X-Customer-Id`, else OpenAI's `user`), feature (`X-Feature`) and metadata (the body's
    /// `metadata` object and `X-Metadata-*` headers) of a request, each bounded.
    static func read(headers: HTTPFields, request: ChatRequest) -> RequestAttribution {
        read(headers: headers, body: request.body)
    }

    /// The same, from any OpenAI request body (`user`, `metadata`).
    static func read(headers: HTTPFields, body: [String: JSON]) -> RequestAttribution {
        var attribution = RequestAttribution()
        attribution.customer = bounded(headers[.customerID] ?? body["user"]?.stringValue)
        attribution.feature = bounded(headers[.feature])
        var metadata: [String: String] = [:]
        if let object = body["metadata"]?.objectValue {
            for (name, value) in object.sorted(by: { $0.key < $1.key }) where metadata.count < maximumEntries {
                if let text = bounded(value.stringValue ?? value.serialized()), let key = bounded(name) { metadata[key] = text }
            }
        }
        for field in headers where metadata.count < maximumEntries {
            // Already lower case: HTTP field names compare by their canonical (lower-case) spelling.
            let name = field.name.canonicalName
            guard name.utf8.count > 11, name.hasPrefix("x-metadata-") else { continue }
            if let key = bounded(String(name.dropFirst(11))), let value = bounded(field.value) { metadata[key] = value }
        }
        attribution.metadata = metadata
        return attribution
    }

    static func bounded(_ text: String?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        // At most as many characters as UTF-8 bytes: most texts are answered without counting characters.
        guard text.utf8.count > maximumLength else { return text }
        return text.count > maximumLength ? String(text.prefix(maximumLength)) : text
    }
}

extension UnixTime {
    /// `2026-11-23T09:15:02Z`: microseconds since 1970 as an ISO 8601 UTC time, to the second.
    public static func iso8601(micros: Int64) -> String {
        var seconds = time_t(micros / 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    /// Microseconds since 1970.
    public static func nowMicros() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }
}

extension HTTPField.Name {
    static let customerID = HTTPField.Name("X-Customer-Id")!
    static let feature = HTTPField.Name("X-Feature")!
}
