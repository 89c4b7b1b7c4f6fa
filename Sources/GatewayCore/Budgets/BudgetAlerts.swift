import Foundation
import Logging
import NIOConcurrencyHelpers

/// An event a budget raised: a threshold passed, the first refusal of a window.
public struct BudgetEvent: Sendable, Equatable {
    /// `budget.threshold` or `budget.exceeded`.
    public var type: String
    public var budget: String
    public var bucket: [BudgetBucketValue]
    /// The percent passed (`budget.threshold`).
    public var threshold: Int?
    public var spentNanos: Int64
    public var limitNanos: Int64
    public var span: BudgetSpan
    public var occurredAtMillis: Int64
    /// Where it goes (the budget's `notify`).
    public var channels: [String]
    /// `budget.forecast`: the spend projected for the window's end.
    public var projectedNanos: Int64?
    /// A resolve (PagerDuty closes the incident the trigger opened): at a new window.
    public var resolves = false

    /// Stable for the event, budget, bucket, window and threshold: the same on every gateway and after a restart,
    /// so the outbox and the receivers can drop a second copy.
    public var id: String {
        let bucketText = bucket.map { "\($0.dimension)=\($0.value)" }.joined(separator: ",")
        let source = "\(resolves ? "resolve|" : "")\(type)|\(budget)|\(bucketText)|\(span.startMillis)|\(threshold.map(String.init) ?? "")"
        return "evt_" + KeyHash.sha256Hex(source).prefix(32)
    }

    /// One line for people: `budget customer-daily (customer=acme) passed 85 %: $4.30 of $5.00`.
    public var summary: String {
        let bucketText = bucket.isEmpty ? "" : " (" + bucket.map { "\($0.dimension)=\($0.value)" }.joined(separator: ", ") + ")"
        let money = "$\(CostFormat.usd(BudgetMoney.usd(spentNanos))) of $\(CostFormat.usd(BudgetMoney.usd(limitNanos)))"
        if resolves { return "budget \(budget)\(bucketText): a new window began" }
        switch type {
        case "budget.exceeded": return "budget \(budget)\(bucketText) refused a request: \(money) spent or held"
        case "budget.forecast":
            return "budget \(budget)\(bucketText) is projected to spend $\(CostFormat.usd(BudgetMoney.usd(projectedNanos ?? spentNanos))) of $\(CostFormat.usd(BudgetMoney.usd(limitNanos))) this window"
        default: return "budget \(budget)\(bucketText) passed \(threshold ?? 100) %: \(money)"
        }
    }
}

/// Turns budget levels into events, and hands each to its publisher once: a threshold when a settlement (or the
/// first refusal) carries spend over it, `budget.exceeded` at the first refusal of a window. The publisher runs off
/// the request path.
public final class BudgetAlerts: Sendable {
    /// Where events go (the notification outbox; tests record them).
    public typealias Publisher = @Sendable (BudgetEvent) async -> Void

    private let publisher: Publisher
    /// Ids this process has published, so a run of refusals publishes one event (bounded; the outbox dedupes too).
    private let published = NIOLockedValueBox<Set<String>>([])
    /// The last event of each budget, bucket and window, for `ctl budgets` (bounded like `published`).
    private let lastEvents = NIOLockedValueBox<[String: String]>([:])
    private let logger: Logger

    public init(logger: Logger, publisher: @escaping Publisher) {
        self.logger = logger
        self.publisher = publisher
    }

    /// After a settlement: the thresholds `amount` carried the spend over.
    func settled(_ counter: BudgetCounter, budget: BudgetConfig, amount: Int64, level: BudgetLevel, nowMillis: Int64) {
        guard amount > 0, counter.limitNanos > 0 else { return }
        let before = level.spentNanos - amount
        for threshold in budget.alerts {
            let mark = Self.mark(counter.limitNanos, percent: threshold)
            if before < mark, level.spentNanos >= mark {
                emit(Self.event("budget.threshold", counter, budget, threshold: threshold, spent: level.spentNanos, nowMillis: nowMillis))
            }
        }
    }

    /// At a refusal: `budget.exceeded`, and the 100 % threshold when spend has not reached the limit (a hard cap's
    /// reservations refuse before it does).
    func refused(_ counter: BudgetCounter, budget: BudgetConfig, level: BudgetLevel, nowMillis: Int64) {
        emit(Self.event("budget.exceeded", counter, budget, threshold: nil, spent: level.spentNanos, nowMillis: nowMillis))
        if budget.alerts.contains(100), level.spentNanos < counter.limitNanos {
            emit(Self.event("budget.threshold", counter, budget, threshold: 100, spent: level.spentNanos, nowMillis: nowMillis))
        }
    }

    /// The last event this gateway raised for a budget's bucket in the window starting at `spanStart`.
    public func lastEvent(budget: String, bucket: [BudgetBucketValue], spanStart: Int64) -> String? {
        lastEvents.withLockedValue { $0[Self.lastEventKey(budget, bucket, spanStart)] }
    }

    private static func lastEventKey(_ budget: String, _ bucket: [BudgetBucketValue], _ spanStart: Int64) -> String {
        "\(budget)|\(bucket.map { "\($0.dimension)=\($0.value)" }.joined(separator: ","))|\(spanStart)"
    }

    /// `percent` of `limit`, in nano-USD, rounded up: a threshold is passed when spend reaches it.
    static func mark(_ limit: Int64, percent: Int) -> Int64 {
        (limit.multipliedReportingOverflow(by: Int64(percent)).partialValue + 99) / 100
    }

    private static func event(_ type: String, _ counter: BudgetCounter, _ budget: BudgetConfig, threshold: Int?, spent: Int64, nowMillis: Int64)
        -> BudgetEvent
    {
        BudgetEvent(
            type: type, budget: budget.name, bucket: counter.bucket, threshold: threshold, spentNanos: spent, limitNanos: counter.limitNanos,
            span: counter.span, occurredAtMillis: nowMillis, channels: budget.notify)
    }

    private func emit(_ event: BudgetEvent) {
        let id = event.id
        let fresh = published.withLockedValue { ids in
            if ids.count >= 100_000 { ids.removeAll() }
            return ids.insert(id).inserted
        }
        guard fresh else { return }
        let label = event.threshold.map { "\(event.type) \($0)%" } ?? event.type
        lastEvents.withLockedValue { events in
            if events.count >= 100_000 { events.removeAll() }
            events[Self.lastEventKey(event.budget, event.bucket, event.span.startMillis)] = label
        }
        logger.notice(
            "budget event", metadata: ["event": "\(event.type)", "budget": "\(event.budget)", "id": "\(id)", "summary": "\(event.summary)"])
        let publisher = self.publisher
        Task(executorPreference: TaskPlacement.preferredExecutor) { await publisher(event) }
    }
}
