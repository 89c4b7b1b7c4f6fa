import NIOConcurrencyHelpers

/// What each gateway key used since the daemon started, for `GET /keys` on the admin socket.
public final class KeyUsage: RequestRecordSink, Sendable {
    /// One key's figures.
    public struct Totals: Sendable, Equatable {
        public var requests = 0
        /// Answers with a status of 400 or more (rate-limited requests included).
        public var errors = 0
        public var rateLimited = 0
        public var promptTokens = 0
        public var completionTokens = 0
        public var costUSD = 0.0
        /// When the key was last used, in microseconds since 1970.
        public var lastUsedMicros: Int64?
    }

    private let totals = NIOLockedValueBox<[String: Totals]>([:])

    public init() {}

    public func record(_ record: RequestRecord) {
        guard let key = record.keyName else { return }
        totals.withLockedValue { totals in
            var entry = totals[key, default: Totals()]
            entry.requests += 1
            if record.statusCode >= 400 { entry.errors += 1 }
            if record.isRateLimitRefusal { entry.rateLimited += 1 }
            if !record.cacheHit {
                entry.promptTokens = entry.promptTokens.addingSaturated(record.promptTokens ?? 0)
                entry.completionTokens = entry.completionTokens.addingSaturated(record.completionTokens ?? 0)
            }
            entry.costUSD += record.costUSD ?? 0
            entry.lastUsedMicros = record.createdAtMicros
            totals[key] = entry
        }
    }

    /// The figures of the key named `name`; zero when it was not used.
    public func totals(for name: String) -> Totals {
        totals.withLockedValue { $0[name] ?? Totals() }
    }
}

extension RequestRecord {
    /// A 429 the gateway's own rate limit gave: no provider was tried (a provider's 429 comes after an attempt).
    var isRateLimitRefusal: Bool {
        statusCode == 429 && attempts == 0 && !cacheHit && !(errorMessage?.hasPrefix(BudgetRefusal.messagePrefix) ?? false)
    }
}
