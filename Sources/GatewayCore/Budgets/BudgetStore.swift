/// One counter a request is charged to: a budget's bucket in its current span.
public struct BudgetCounter: Sendable, Equatable {
    /// The budget's name.
    public let budget: String
    /// The partition's values, in the budget's `per` order: `[("customer", "acme")]`; empty for a budget with no
    /// partition. A value the request lacks is `(none)`.
    public let bucket: [BudgetBucketValue]
    public let span: BudgetSpan
    public let limitNanos: Int64
    public let hard: Bool
    /// Names the bucket in storage: its description when that is short, else the first 16 hex digits of its
    /// SHA-256 (the values are the client's, and may be long).
    public let bucketDigest: String
    /// Where the counter is stored: budget, window and bucket digest.
    public let storageKey: String

    public init(budget: String, bucket: [BudgetBucketValue], span: BudgetSpan, limitNanos: Int64, hard: Bool) {
        self.budget = budget
        self.bucket = bucket
        self.span = span
        self.limitNanos = limitNanos
        self.hard = hard
        let description = Self.describe(bucket)
        bucketDigest = description.utf8.count <= 48 ? description : String(KeyHash.sha256Hex(description).prefix(16))
        storageKey = "\(budget):\(span.storageID):\(bucketDigest)"
    }

    /// `customer=acme,feature=search`; `(all)` for a budget with no partition.
    public var bucketDescription: String { Self.describe(bucket) }

    static func describe(_ bucket: [BudgetBucketValue]) -> String {
        bucket.isEmpty ? "(all)" : bucket.map { "\($0.dimension)=\($0.value)" }.joined(separator: ",")
    }
}

/// One dimension's value in a bucket.
public struct BudgetBucketValue: Sendable, Equatable, Codable {
    public var dimension: String
    public var value: String
    public init(dimension: String, value: String) {
        self.dimension = dimension
        self.value = value
    }
}

/// A counter's state: spend in its window and what requests under way hold.
public struct BudgetLevel: Sendable, Equatable {
    public var spentNanos: Int64
    public var reservedNanos: Int64
    public init(spentNanos: Int64 = 0, reservedNanos: Int64 = 0) {
        self.spentNanos = spentNanos
        self.reservedNanos = reservedNanos
    }
    public var totalNanos: Int64 { spentNanos.addingSaturated(reservedNanos) }
}

/// What a reservation came to.
public enum BudgetReservation: Sendable, Equatable {
    /// Held on every counter; their levels after it.
    case held([BudgetLevel])
    /// A hard counter (its index) cannot afford the amount; nothing was held. Its level.
    case refused(index: Int, level: BudgetLevel)
}

/// A counter as listed by `ctl budgets`.
public struct BudgetCounterState: Sendable, Equatable {
    public var budget: String
    public var bucket: [BudgetBucketValue]
    public var storageKey: String
    public var level: BudgetLevel
}

/// Where budget counters live: in this process, or in Redis for a fleet.
///
/// Every call is atomic over all the counters it names: a reservation is held on all of them or on none.
public protocol BudgetStore: Sendable {
    /// Holds `amount` on every counter under reservation `id` until `expiresAtMillis`, unless a hard counter's
    /// spend plus reservations plus `amount` would pass its limit.
    func reserve(_ counters: [BudgetCounter], amount: Int64, id: String, expiresAtMillis: Int64, nowMillis: Int64) async throws
        -> BudgetReservation
    /// Releases reservation `id` (when given) on every counter and adds `amount` to its spend; the levels after.
    func settle(_ counters: [BudgetCounter], id: String?, amount: Int64, nowMillis: Int64) async throws -> [BudgetLevel]
    /// Adds `amount` to the counter's spend unless it has been seeded already (a start-up or a reload rebuilding
    /// spend from the request log; on a fleet's Redis, the first gateway to seed a counter does it for all).
    func seed(_ counter: BudgetCounter, amount: Int64, nowMillis: Int64) async throws
    /// Every counter of `budget` in `span` with its level.
    func counters(of budget: String, span: BudgetSpan, nowMillis: Int64) async throws -> [BudgetCounterState]
    /// Forgets the spend and reservations of `budget`'s counters in `span` (all of them, or the one whose bucket
    /// digest is `bucketDigest`); how many were reset.
    func reset(_ budget: String, span: BudgetSpan, bucketDigest: String?, nowMillis: Int64) async throws -> Int
}
