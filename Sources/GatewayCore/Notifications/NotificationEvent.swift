import Crypto
import Foundation

/// One thing worth telling people about (a budget threshold, an anomaly), to be delivered to some channels.
///
/// The producer computes `id` from what makes the event unique (event type, budget, bucket and window), so the same
/// event published twice, by two gateways or after a restart, is stored and delivered once; receivers see the same
/// `id` on every retry and can dedupe on it.
///
/// ```swift
/// let event = NotificationEvent(
///     id: "budget.threshold:customer-daily:customer=acme:2026-12-07:85", type: "budget.threshold",
///     budget: "customer-daily", bucket: ["customer": "acme"], threshold: 85, spentUSD: 4.27, limitUSD: 5,
///     windowStart: start, windowEnd: end, channels: ["ops-slack"],
///     summary: "customer-daily at 85 % for customer=acme: $4.27 of $5.00")
/// let stored = try await gateway.notifications.publish(event)
/// ```
public struct NotificationEvent: Sendable, Codable, Equatable {
    /// `trigger` opens a condition (a PagerDuty incident), `resolve` closes it.
    public enum Action: String, Sendable, Codable, Equatable {
        case trigger
        case resolve
    }

    /// Stable per event: the outbox keeps one row per id and channel, receivers dedupe on it.
    public var id: String
    /// `budget.threshold`, `budget.exceeded`, `budget.forecast` or `spend.anomaly`.
    public var type: String
    public var action: Action
    /// The budget's name; nil for events about no budget (an anomaly).
    public var budget: String?
    /// The bucket's dimensions and values, e.g. `["customer": "acme"]`; empty for a budget with one counter.
    public var bucket: [String: String]
    /// The threshold crossed, in percent.
    public var threshold: Int?
    public var spentUSD: Double
    public var limitUSD: Double?
    public var windowStart: Date
    public var windowEnd: Date
    public var occurredAt: Date
    /// The names of the channels (`notifications.channels`) it goes to.
    public var channels: [String]
    /// One line for people (Slack's text, PagerDuty's summary, the mail's subject).
    public var summary: String

    public init(
        id: String, type: String, action: Action = .trigger, budget: String? = nil, bucket: [String: String] = [:],
        threshold: Int? = nil, spentUSD: Double, limitUSD: Double? = nil, windowStart: Date, windowEnd: Date,
        occurredAt: Date = Date(), channels: [String], summary: String
    ) {
        self.id = id
        self.type = type
        self.action = action
        self.budget = budget
        self.bucket = bucket
        self.threshold = threshold
        self.spentUSD = spentUSD
        self.limitUSD = limitUSD
        self.windowStart = windowStart
        self.windowEnd = windowEnd
        self.occurredAt = occurredAt
        self.channels = channels
        self.summary = summary
    }
}

// MARK: - What receivers get

extension NotificationEvent {
    /// The webhook's body, which PagerDuty's `custom_details` and the mail repeat: times in ISO 8601 UTC.
    ///
    /// `{"action","bucket","budget","id","limit_usd","occurred_at","spent_usd","threshold","type","window":{"end","start"}}`
    public var webhookJSON: JSON {
        [
            "id": .string(id),
            "type": .string(type),
            "action": .string(action.rawValue),
            "budget": budget.map(JSON.string) ?? .null,
            "bucket": .object(bucket.mapValues(JSON.string)),
            "threshold": threshold.map { .int(Int64($0)) } ?? .null,
            "spent_usd": .double(spentUSD),
            "limit_usd": limitUSD.map(JSON.double) ?? .null,
            "window": ["start": .string(Self.iso8601(windowStart)), "end": .string(Self.iso8601(windowEnd))],
            "occurred_at": .string(Self.iso8601(occurredAt)),
        ]
    }

    /// The webhook's body as sent: keys sorted, so every retry sends (and signs) the same bytes.
    public var webhookBody: [UInt8] { webhookJSON.bytes(sortedKeys: true) }

    /// `sha256=<lowercase hex HMAC-SHA256 of body with secret>`, the `X-Gateway-Signature-256` header's value.
    public static func signature(of body: [UInt8], secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + Array(code).map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    }

    /// PagerDuty's `dedup_key`: the same for every event of one type, budget and bucket, so a `resolve` closes the
    /// incident its `trigger` opened (the window is left out on purpose). Readable when short, a hash beyond 255 bytes.
    public var dedupKey: String {
        let bucketText = bucket.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        let key = "llm-gateway/\(type)/\(budget ?? "-")/\(bucketText)"
        guard key.utf8.count > 255 else { return key }
        return "llm-gateway/\(type)/" + KeyHash.sha256Hex(key)
    }

    /// `budget.exceeded` is critical, a threshold of 100 % or more an error, anything else a warning.
    public var severity: String {
        if type == "budget.exceeded" { return "critical" }
        if let threshold, threshold >= 100 { return "error" }
        return "warning"
    }

    /// `2026-12-07T10:00:00Z`.
    static func iso8601(_ date: Date) -> String {
        UnixTime.iso8601(micros: Int64((date.timeIntervalSince1970 * 1_000_000).rounded()))
    }
}
