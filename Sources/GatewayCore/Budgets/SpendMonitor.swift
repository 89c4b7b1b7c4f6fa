import Foundation
import Logging
import ServiceLifecycle

/// `anomaly:`: spend anomalies per key and per customer.
public struct AnomalySettings: Sendable, Equatable {
    /// How many times the usual spend of an hour makes it an anomaly.
    public var factor = 3.0
    /// Below this spend in an hour nothing is an anomaly.
    public var minUSD = 1.0
    /// Channel names the events go to.
    public var notify: [String] = []
    public init() {}
}

/// Watches spend from the request log, every minute, off the request path, and raises what a request's
/// settlement cannot see:
///
/// - `budget.forecast`: a calendar window's projected spend passes its limit. The projection scales the spend so
///   far by how the same part of the past three windows related to their whole; without that history, by the
///   window's elapsed fraction (once a tenth of it has passed).
/// - `spend.anomaly` per key and per customer: the last complete hour's spend over `anomaly.min_usd`, and its spend
///   or its request count over `anomaly.factor` times the mean of the same hour on the past seven days; raised when an hour turns anomalous and
///   resolved when the next one is normal again, so every gateway of a fleet computes the same events (their ids
///   are stable and the outbox keeps one).
/// - At a new window, a `resolve` to PagerDuty channels for each bucket whose last window raised a threshold.
public struct SpendMonitor: Service {
    let book: BudgetBook
    let log: any RequestLogStore
    let snapshot: @Sendable () -> ConfigSnapshot
    let publish: @Sendable (NotificationEvent) async -> Void
    let logger: Logger
    var interval: Duration = .seconds(60)

    public func run() async throws {
        try? await cancelWhenGracefulShutdown { [interval] in
            while true {
                try await Task.sleep(for: interval)
                await check(nowMillis: book.clock())
            }
        }
    }

    /// One round of checks at `nowMillis`.
    public func check(nowMillis: Int64) async {
        let snapshot = snapshot()
        do {
            for event in try await forecasts(snapshot, nowMillis: nowMillis) + (try await rollovers(snapshot, nowMillis: nowMillis)) {
                await publish(event)
            }
            if let anomaly = snapshot.config.anomaly {
                for event in try await anomalies(anomaly, nowMillis: nowMillis) { await publish(event) }
            }
        } catch {
            logger.warning("spend could not be checked for forecasts and anomalies", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Forecasts

    static let historyWindows = 3

    func forecasts(_ snapshot: ConfigSnapshot, nowMillis: Int64) async throws -> [NotificationEvent] {
        let budgets = snapshot.budgets.filter { budget in
            if case .calendar = budget.window { return !budget.notify.isEmpty }
            return false
        }
        guard !budgets.isEmpty else { return [] }
        var histories: [[BudgetSpan]] = []
        for budget in budgets {
            var spans = [book.span(of: budget, atMillis: nowMillis)]
            for _ in 0..<Self.historyWindows {
                spans.append(budget.window.span(atMillis: spans.last!.startMillis - 1, in: budget.timeZone))
            }
            histories.append(spans)
        }
        let since = histories.compactMap { $0.last?.startMillis }.min() ?? nowMillis
        let rows = try await log.spend(sinceMicros: since * 1000)
        var events: [NotificationEvent] = []
        for (budget, spans) in zip(budgets, histories) {
            let current = spans[0]
            let elapsed = nowMillis - current.startMillis
            // Past windows' spend per bucket: up to the same elapsed point, and whole.
            var partial: [String: Int64] = [:]
            var whole: [String: Int64] = [:]
            for row in rows where row.subject.isCounted(by: budget) {
                let micros = row.createdAtMicros
                guard let past = spans.dropFirst().first(where: { micros >= $0.startMillis * 1000 && micros < $0.endMillis * 1000 }) else { continue }
                let bucket = BudgetCounter.describe(row.subject.bucket(in: budget))
                let amount = BudgetMoney.nanos(row.costUSD)
                whole[bucket, default: 0] += amount
                if micros < (past.startMillis + elapsed) * 1000 { partial[bucket, default: 0] += amount }
            }
            for counter in try await book.store.counters(of: budget.name, span: current, nowMillis: nowMillis) {
                let spent = counter.level.spentNanos
                guard spent > 0, spent < budget.limitNanos else { continue }
                let bucket = BudgetCounter.describe(counter.bucket)
                let projected: Double
                if let before = partial[bucket], before > 0, let total = whole[bucket] {
                    projected = Double(spent) * Double(total) / Double(before)
                } else if elapsed * 10 >= current.endMillis - current.startMillis {
                    projected = Double(spent) * Double(current.endMillis - current.startMillis) / Double(max(1, elapsed))
                } else {
                    continue
                }
                guard projected > Double(budget.limitNanos) else { continue }
                var event = BudgetEvent(
                    type: "budget.forecast", budget: budget.name, bucket: counter.bucket, threshold: nil, spentNanos: spent,
                    limitNanos: budget.limitNanos, span: current, occurredAtMillis: nowMillis, channels: budget.notify)
                event.projectedNanos = Int64(min(projected, 1e15))
                events.append(NotificationEvent(event))
            }
        }
        return events
    }

    // MARK: Window roll-over

    /// In the first hour of a window, a resolve for each bucket whose previous window passed its lowest threshold,
    /// to the budget's PagerDuty channels (the others have nothing to close).
    func rollovers(_ snapshot: ConfigSnapshot, nowMillis: Int64) async throws -> [NotificationEvent] {
        let channels = snapshot.config.notifications.channels
        var events: [NotificationEvent] = []
        var pending: [(BudgetConfig, BudgetSpan, [String])] = []
        for budget in snapshot.budgets {
            guard case .calendar = budget.window, let lowest = budget.alerts.min(), lowest > 0 else { continue }
            let pagers = budget.notify.filter { channels[$0]?.type == "pagerduty" }
            let current = book.span(of: budget, atMillis: nowMillis)
            guard !pagers.isEmpty, nowMillis - current.startMillis < 3_600_000 else { continue }
            pending.append((budget, budget.window.span(atMillis: current.startMillis - 1, in: budget.timeZone), pagers))
        }
        guard let since = pending.map(\.1.startMillis).min() else { return [] }
        let rows = try await log.spend(sinceMicros: since * 1000)
        for (budget, previous, pagers) in pending {
            let lowest = budget.alerts.min() ?? 100
            let inWindow = rows.filter { $0.createdAtMicros < previous.endMillis * 1000 }
            for (counter, spent) in BudgetBook.counters(of: [budget], in: [previous], from: inWindow)
            where spent >= BudgetAlerts.mark(budget.limitNanos, percent: lowest) {
                for type in ["budget.threshold", "budget.exceeded"] {
                    var event = BudgetEvent(
                        type: type, budget: budget.name, bucket: counter.bucket, threshold: nil, spentNanos: spent,
                        limitNanos: budget.limitNanos, span: previous, occurredAtMillis: nowMillis, channels: pagers)
                    event.resolves = true
                    events.append(NotificationEvent(event))
                }
            }
        }
        return events
    }

    // MARK: Anomalies

    func anomalies(_ settings: AnomalySettings, nowMillis: Int64) async throws -> [NotificationEvent] {
        let hour: Int64 = 3_600_000
        let last = nowMillis / hour - 1
        let rows = try await log.hourlySpend(sinceMicros: (last - 1 - 7 * 24) * hour * 1000)
        // Spend and requests per subject and hour.
        var spend: [String: [Int64: (Double, Int)]] = [:]
        for row in rows {
            let slot = row.hourStartMicros / (hour * 1000)
            for subject in [row.key.map { "key=\($0)" }, row.customer.map { "customer=\($0)" }].compactMap({ $0 }) {
                let before = spend[subject, default: [:]][slot] ?? (0, 0)
                spend[subject, default: [:]][slot] = (before.0 + row.costUSD, before.1 + row.requests)
            }
        }
        // Over min_usd, and over factor times the usual spend or the usual request count of that hour.
        func isAnomalous(_ hours: [Int64: (Double, Int)], _ slot: Int64) -> Bool {
            let (spent, requests) = hours[slot] ?? (0, 0)
            let past = (1...7).map { hours[slot - Int64($0) * 24] ?? (0, 0) }
            let usualSpend = past.map(\.0).reduce(0, +) / 7
            let usualRequests = Double(past.map(\.1).reduce(0, +)) / 7
            return spent > settings.minUSD && (spent > settings.factor * usualSpend || Double(requests) > settings.factor * usualRequests)
        }
        var events: [NotificationEvent] = []
        for (subject, hours) in spend.sorted(by: { $0.key < $1.key }) {
            let now = isAnomalous(hours, last)
            let before = isAnomalous(hours, last - 1)
            guard now != before else { continue }
            let parts = subject.split(separator: "=", maxSplits: 1).map(String.init)
            let spent = hours[last]?.0 ?? 0
            let requests = hours[last]?.1 ?? 0
            let usual = (1...7).map { hours[last - Int64($0) * 24]?.0 ?? 0 }.reduce(0, +) / 7
            let id = "evt_" + KeyHash.sha256Hex("spend.anomaly|\(now ? "trigger" : "resolve")|\(subject)|\(last)").prefix(32)
            let summary = now
                ? "spend anomaly for \(parts[0]) \(parts[1]): $\(CostFormat.usd(spent)) and \(requests) requests in the hour to \(UnixTime.iso8601(micros: (last + 1) * hour * 1000)), usually $\(CostFormat.usd(usual))"
                : "spend for \(parts[0]) \(parts[1]) is back to normal: $\(CostFormat.usd(spent)) in the last hour, usually $\(CostFormat.usd(usual))"
            events.append(
                NotificationEvent(
                    id: String(id), type: "spend.anomaly", action: now ? .trigger : .resolve, bucket: [parts[0]: parts[1]],
                    spentUSD: spent, limitUSD: usual * settings.factor,
                    windowStart: Date(timeIntervalSince1970: Double(last * hour) / 1000),
                    windowEnd: Date(timeIntervalSince1970: Double((last + 1) * hour) / 1000),
                    occurredAt: Date(timeIntervalSince1970: Double(nowMillis) / 1000), channels: settings.notify, summary: summary))
        }
        return events
    }
}

/// Spend and requests of one key and customer in one hour, from the request log.
public struct HourlySpend: Sendable, Equatable {
    public var hourStartMicros: Int64
    public var key: String?
    public var customer: String?
    public var costUSD: Double
    public var requests: Int
    public init(hourStartMicros: Int64, key: String?, customer: String?, costUSD: Double, requests: Int) {
        self.hourStartMicros = hourStartMicros
        self.key = key
        self.customer = customer
        self.costUSD = costUSD
        self.requests = requests
    }
}
