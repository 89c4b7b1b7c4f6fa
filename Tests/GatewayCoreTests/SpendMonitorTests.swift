import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import GatewayCore

/// Forecasts, spend anomalies and window roll-overs, computed from a real SQLite request log at injected times.
@Suite("Spend monitor", .timeLimit(.minutes(1)))
struct SpendMonitorTests {
    static let logger = Logger(label: "spend-monitor-test")

    static func millis(_ text: String) -> Int64 { BudgetTests.millis(text) }

    /// A monitor over a fresh SQLite log holding `rows` (time, key, customer, cost), for the configuration `yaml`.
    static func withMonitor(
        _ yaml: String, rows: [(String, String, String?, Double)], _ body: (SpendMonitor, BudgetBook) async throws -> Void
    ) async throws {
        let directory = NSTemporaryDirectory() + "monitor-\(RandomID.make(prefix: "", length: 8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteRequestLogStore(path: directory + "/requests.db", logger: logger)
        try await store.migrate()
        try await store.insert(rows.enumerated().map { index, row in
            RequestRecord(
                requestID: "r\(index)", createdAtMicros: Self.millis(row.0) * 1000, keyName: row.1, model: "pricey", provider: "openai",
                statusCode: 200, costUSD: row.3, latencyMs: 1, customer: row.2)
        })
        let result = ConfigLoader.parse(yaml: yaml, file: "gateway.yaml", environment: [:])
        let snapshot = ConfigSnapshot(config: try #require(result.config, "\(result.problems)"))
        let book = BudgetBook(store: MemoryBudgetStore(), isShared: false, alerts: BudgetAlerts(logger: logger) { _ in })
        let monitor = SpendMonitor(book: book, log: store, snapshot: { snapshot }, publish: { _ in }, logger: logger)
        try await body(monitor, book)
        await store.close()
    }

    static let channels = """
        notifications:
          channels:
            hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
            pager: {type: pagerduty, routing_key: "0123456789abcdef0123456789abcdef"}
        """

    // MARK: Anomalies

    @Test func anAnomalyFiresOnASpikeResolvesAfterItAndNotOnSteadySpend() async throws {
        var rows: [(String, String, String?, Double)] = []
        for day in 1...7 {
            let date = "2026-11-\(String(format: "%02d", 30 - day))T09:15:00Z"
            rows.append((date, "app", "acme", 0.5))
            rows.append((date, "steady", nil, 2.0))
        }
        rows.append(("2026-11-30T09:20:00Z", "app", "acme", 5.0))
        rows.append(("2026-11-30T09:25:00Z", "steady", nil, 2.5))
        try await Self.withMonitor("anomaly: {factor: 3, min_usd: 1, notify: [hook]}\n" + Self.channels, rows: rows) { monitor, _ in
            let settings = try #require(monitor.snapshot().config.anomaly)
            // At 10:30 the last complete hour is 09:00–10:00.
            let spike = try await monitor.anomalies(settings, nowMillis: Self.millis("2026-11-30T10:30:00Z"))
            #expect(Set(spike.map { $0.bucket }) == [["key": "app"], ["customer": "acme"]])
            #expect(spike.allSatisfy { $0.action == .trigger && $0.type == "spend.anomaly" && $0.channels == ["hook"] })
            #expect(spike.first?.spentUSD == 5.0)
            // The same check again (another gateway, a later minute) gives the same ids: the outbox keeps one.
            let again = try await monitor.anomalies(settings, nowMillis: Self.millis("2026-11-30T10:45:00Z"))
            #expect(Set(again.map(\.id)) == Set(spike.map(\.id)))
            // The next hour is quiet: resolved, under the same PagerDuty dedup key.
            let after = try await monitor.anomalies(settings, nowMillis: Self.millis("2026-11-30T11:30:00Z"))
            #expect(Set(after.map { $0.bucket }) == [["key": "app"], ["customer": "acme"]])
            #expect(after.allSatisfy { $0.action == .resolve })
            #expect(Set(after.map(\.dedupKey)) == Set(spike.map(\.dedupKey)))
            // Two quiet hours: nothing.
            #expect(try await monitor.anomalies(settings, nowMillis: Self.millis("2026-11-30T12:30:00Z")).isEmpty)
        }
    }

    @Test func aBurstOfRequestsAtTheUsualPriceIsAnAnomalyToo() async throws {
        var rows: [(String, String, String?, Double)] = []
        for day in 1...7 { rows.append(("2026-11-\(String(format: "%02d", 30 - day))T09:15:00Z", "bot", nil, 1.5)) }
        // Ten requests where one was usual, each cheap: the spend is under factor × usual, the count is not.
        for minute in 0..<10 { rows.append(("2026-11-30T09:\(String(format: "%02d", 10 + minute)):00Z", "bot", nil, 0.4)) }
        try await Self.withMonitor("anomaly: {notify: [hook]}\n" + Self.channels, rows: rows) { monitor, _ in
            let settings = try #require(monitor.snapshot().config.anomaly)
            let events = try await monitor.anomalies(settings, nowMillis: Self.millis("2026-11-30T10:30:00Z"))
            #expect(events.map(\.bucket) == [["key": "bot"]])
        }
    }

    @Test func aSpikeUnderMinUSDIsNoAnomaly() async throws {
        let rows: [(String, String, String?, Double)] = [("2026-11-29T09:15:00Z", "app", nil, 0.01), ("2026-11-30T09:20:00Z", "app", nil, 0.5)]
        try await Self.withMonitor("anomaly: {notify: [hook]}\n" + Self.channels, rows: rows) { monitor, _ in
            let settings = try #require(monitor.snapshot().config.anomaly)
            #expect(try await monitor.anomalies(settings, nowMillis: Self.millis("2026-11-30T10:30:00Z")).isEmpty)
        }
    }

    // MARK: Forecasts

    static let monthly = """
        budgets:
          - {name: monthly, limit_usd: 10, window: month, notify: [hook]}

        """

    static func spend(_ book: BudgetBook, _ monitor: SpendMonitor, _ amount: Double, at now: Int64) async throws {
        let counters = book.counters(for: BudgetSubject(key: "app", model: "pricey", provider: "openai"), among: monitor.snapshot().budgets, atMillis: now)
        _ = try await book.store.settle(counters, id: nil, amount: BudgetMoney.nanos(amount), nowMillis: now)
    }

    @Test func withoutHistoryTheForecastExtendsTheSpendSoFar() async throws {
        try await Self.withMonitor(Self.monthly + Self.channels, rows: []) { monitor, book in
            let now = Self.millis("2026-11-16T00:00:00Z")  // half of November
            try await Self.spend(book, monitor, 4, at: now)
            #expect(try await monitor.forecasts(monitor.snapshot(), nowMillis: now).isEmpty, "$8 projected, under $10")
            try await Self.spend(book, monitor, 2, at: now)
            let events = try await monitor.forecasts(monitor.snapshot(), nowMillis: now)
            #expect(events.count == 1)
            #expect(events.first?.type == "budget.forecast")
            #expect(events.first?.summary.contains("$12.000000") == true, "\(events.first?.summary ?? "")")
        }
    }

    @Test func theForecastFollowsHowPastWindowsSpent() async throws {
        // October spent $1 in its first half and $4 in all: spend comes late in the month.
        let rows: [(String, String, String?, Double)] = [("2026-10-05T00:00:00Z", "app", nil, 1), ("2026-10-25T00:00:00Z", "app", nil, 3)]
        try await Self.withMonitor(Self.monthly + Self.channels, rows: rows) { monitor, book in
            let now = Self.millis("2026-11-16T00:00:00Z")
            try await Self.spend(book, monitor, 3, at: now)
            let events = try await monitor.forecasts(monitor.snapshot(), nowMillis: now)
            #expect(events.count == 1, "$3 so far, ×4 as in October: $12")
            #expect(events.first?.summary.contains("$12.000000") == true, "\(events.first?.summary ?? "")")
        }
    }

    // MARK: Roll-over

    @Test func aNewWindowResolvesLastWindowsIncidentsOnPagerDutyOnly() async throws {
        let yaml = """
            budgets:
              - {name: daily, per: [customer], limit_usd: 10, window: day, alerts: [50, 100], notify: [hook, pager]}

            """ + Self.channels
        let rows: [(String, String, String?, Double)] = [
            ("2026-11-29T10:00:00Z", "app", "acme", 6), ("2026-11-29T11:00:00Z", "app", "globex", 1),
        ]
        try await Self.withMonitor(yaml, rows: rows) { monitor, _ in
            let early = try await monitor.rollovers(monitor.snapshot(), nowMillis: Self.millis("2026-11-30T00:10:00Z"))
            #expect(early.count == 2, "threshold and exceeded, for acme only (globex stayed under 50 %)")
            #expect(early.allSatisfy { $0.action == .resolve && $0.channels == ["pager"] && $0.bucket == ["customer": "acme"] })
            #expect(Set(early.map(\.type)) == ["budget.threshold", "budget.exceeded"])
            #expect(try await monitor.rollovers(monitor.snapshot(), nowMillis: Self.millis("2026-11-30T02:00:00Z")).isEmpty, "only in a window's first hour")
        }
    }
}
