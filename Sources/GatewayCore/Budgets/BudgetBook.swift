import Atomics
import Foundation
import Logging
import NIOConcurrencyHelpers

/// What a request is, as budgets see it: the values of every dimension.
public struct BudgetSubject: Sendable, Equatable {
    public var key: String
    public var customer: String?
    public var feature: String?
    public var model: String
    public var provider: String
    public var metadata: [String: String] = [:]

    public init(key: String, customer: String? = nil, feature: String? = nil, model: String, provider: String, metadata: [String: String] = [:]) {
        self.key = key
        self.customer = customer
        self.feature = feature
        self.model = model
        self.provider = provider
        self.metadata = metadata
    }

    /// The value of `dimension`; nil when the request has none.
    public func value(of dimension: BudgetDimension) -> String? {
        switch dimension {
        case .key: key
        case .customer: customer
        case .feature: feature
        case .model: model
        case .provider: provider
        case .metadata(let name): metadata[name]
        }
    }

    /// Whether every `where` entry of `budget` matches (a dimension the request lacks matches nothing).
    public func isCounted(by budget: BudgetConfig) -> Bool {
        budget.filter.allSatisfy { entry in value(of: entry.dimension).map(entry.pattern.matches) ?? false }
    }

    /// The bucket of `budget` this request falls in; a missing value is the shared bucket `(none)`.
    public func bucket(in budget: BudgetConfig) -> [BudgetBucketValue] {
        budget.per.map { BudgetBucketValue(dimension: $0.description, value: value(of: $0) ?? BudgetBook.noValue) }
    }
}

/// The gateway's budgets at run time: the counters a request is charged to, held before the call and settled after,
/// and the alerts their levels raise. One book lives for the whole process; its store keeps the spend across
/// reloads, and the configuration snapshot says which budgets there are.
public final class BudgetBook: Sendable {
    /// The bucket value of a request that lacks a `per` dimension.
    public static let noValue = "(none)"

    let store: any BudgetStore
    /// Whether `store` is shared by a fleet (Redis).
    let isShared: Bool
    let outage = OutageLog(name: "budget store")
    /// Milliseconds since 1970 (injected by tests).
    let clock: @Sendable () -> Int64
    let alerts: BudgetAlerts
    /// Each budget's span, by name, with the window and zone it was computed for.
    private let spans = NIOLockedValueBox<[String: (window: BudgetWindow, timeZone: TimeZone, span: BudgetSpan)]>([:])
    /// Reservation ids: this process's random prefix and a counter.
    private let reservationPrefix = RandomID.make(prefix: "", length: 12)
    private let reservations = ManagedAtomic<Int64>(0)

    /// A reservation id no other gateway or request uses.
    func nextReservationID() -> String {
        reservationPrefix + String(reservations.wrappingIncrementThenLoad(ordering: .relaxed))
    }
    /// What this gateway did per budget since start, for the metrics.
    private let tallies = NIOLockedValueBox<[String: BudgetTally]>([:])

    /// This gateway's figures of one budget since start.
    public struct BudgetTally: Sendable, Equatable {
        /// Spend charged by this gateway's requests.
        public var chargedNanos: Int64 = 0
        /// Held now by this gateway's requests under way.
        public var heldNanos: Int64 = 0
        /// Requests refused.
        public var refusals = 0

        mutating func add(charged: Int64, held: Int64, refused: Bool) {
            chargedNanos = chargedNanos.addingSaturated(charged)
            heldNanos = heldNanos.addingSaturated(held)
            if refused { refusals += 1 }
        }
    }

    /// Every budget's tally.
    public var tally: [String: BudgetTally] { tallies.withLockedValue { $0 } }

    /// Adds to the tallies of each budget of `counters`, under one lock.
    func count(_ counters: [BudgetCounter], charged: Int64 = 0, held: Int64 = 0, refused: Bool = false) {
        tallies.withLockedValue { tallies in
            for counter in counters {
                tallies[counter.budget, default: BudgetTally()].add(charged: charged, held: held, refused: refused)
            }
        }
    }

    public init(store: any BudgetStore, isShared: Bool, alerts: BudgetAlerts, clock: @escaping @Sendable () -> Int64 = BudgetBook.systemClock) {
        self.store = store
        self.isShared = isShared
        self.alerts = alerts
        self.clock = clock
    }

    /// The wall clock in milliseconds since 1970.
    public static let systemClock: @Sendable () -> Int64 = { UnixTime.nowMicros() / 1000 }

    /// `budget`'s span at `nowMillis`, computed once per window (calendar arithmetic in a time zone is not free).
    public func span(of budget: BudgetConfig, atMillis nowMillis: Int64) -> BudgetSpan {
        if case .calendar = budget.window, let cached = spans.withLockedValue({ $0[budget.name] }), cached.window == budget.window,
            cached.span.startMillis <= nowMillis, nowMillis < cached.span.endMillis, cached.timeZone == budget.timeZone
        {
            return cached.span
        }
        let span = budget.window.span(atMillis: nowMillis, in: budget.timeZone)
        spans.withLockedValue { $0[budget.name] = (budget.window, budget.timeZone, span) }
        return span
    }

    /// The counters `subject` is charged to among `budgets`, at `nowMillis`.
    public func counters(for subject: BudgetSubject, among budgets: [BudgetConfig], atMillis nowMillis: Int64) -> [BudgetCounter] {
        budgets.compactMap { budget in
            guard subject.isCounted(by: budget) else { return nil }
            return BudgetCounter(
                budget: budget.name, bucket: subject.bucket(in: budget), span: span(of: budget, atMillis: nowMillis),
                limitNanos: budget.limitNanos, hard: budget.mode == .hard)
        }
    }

    // MARK: Rebuilding spend from the request log

    /// Seeds every budget's counters with the spend the request log holds for their current window, for each counter
    /// not seeded yet: at start, and for budgets a reload adds. A Redis store is seeded once for the fleet.
    public func rebuild(_ budgets: [BudgetConfig], from log: any RequestLogStore, logger: Logger) async {
        guard !budgets.isEmpty else { return }
        let now = clock()
        let spans = budgets.map { span(of: $0, atMillis: now) }
        guard let earliest = spans.map(\.startMillis).min() else { return }
        do {
            let rows = try await log.spend(sinceMicros: earliest * 1000)
            let totals = Self.counters(of: budgets, in: spans, from: rows)
            for (counter, amount) in totals { try await store.seed(counter, amount: amount, nowMillis: now) }
            logger.info("budgets rebuilt from the request log", metadata: ["budgets": "\(budgets.count)", "counters": "\(totals.count)"])
        } catch {
            logger.warning("budgets could not be rebuilt from the request log; they count from zero", metadata: ["error": "\(error)"])
        }
    }
}

extension BudgetBook {
    /// The counters the request log's `rows` charge among `budgets` (each in its span, same order), with their spend:
    /// what a restart seeds, and what `stats --by budget` shows.
    public static func counters(of budgets: [BudgetConfig], in spans: [BudgetSpan], from rows: [SpendRow]) -> [(BudgetCounter, Int64)] {
        var totals: [String: (BudgetCounter, Int64)] = [:]
        var order: [String] = []
        for row in rows {
            for (budget, span) in zip(budgets, spans) where row.createdAtMicros >= span.startMillis * 1000 && row.subject.isCounted(by: budget) {
                let counter = BudgetCounter(
                    budget: budget.name, bucket: row.subject.bucket(in: budget), span: span, limitNanos: budget.limitNanos,
                    hard: budget.mode == .hard)
                if totals[counter.storageKey] == nil { order.append(counter.storageKey) }
                totals[counter.storageKey, default: (counter, 0)].1 += BudgetMoney.nanos(row.costUSD)
            }
        }
        return order.compactMap { totals[$0] }
    }
}

/// One row of spend from the request log, for rebuilding budgets: a group of requests with the same dimensions.
public struct SpendRow: Sendable, Equatable {
    /// The earliest `created_at` of the group (groups are per quarter hour).
    public var createdAtMicros: Int64
    /// The group's dimensions; a column without a value is `(none)`.
    public var subject: BudgetSubject
    public var costUSD: Double

    public init(
        createdAtMicros: Int64, key: String?, customer: String?, feature: String?, model: String?, provider: String?,
        metadata: [String: String], costUSD: Double
    ) {
        self.createdAtMicros = createdAtMicros
        self.subject = BudgetSubject(
            key: key ?? BudgetBook.noValue, customer: customer, feature: feature, model: model ?? BudgetBook.noValue,
            provider: provider ?? BudgetBook.noValue, metadata: metadata)
        self.costUSD = costUSD
    }

    /// The string values of a `metadata` column's JSON object (keys lower-cased, as `metadata.<name>` matches them).
    static func metadata(fromJSON text: String) -> [String: String] {
        guard let object = (try? JSON.parse(text))?.objectValue else { return [:] }
        var metadata: [String: String] = [:]
        for (name, value) in object { metadata[name.lowercased()] = value.stringValue ?? value.serialized() }
        return metadata
    }
}
