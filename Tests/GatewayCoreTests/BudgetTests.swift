import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import GatewayCore

/// Budgets: their configuration, windows, the counters in memory and in a real Redis, and the refusals, headers,
/// settlements and alerts through the running gateway (one, and two sharing Redis).
@Suite("Budgets", .timeLimit(.minutes(3)))
struct BudgetTests {
    /// $0.001 a token both ways: a request of the fake costs about $0.02.
    static let pricey = Price(input: 1000, output: 1000)

    static func ask(_ text: String, model: String = "pricey", stream: Bool = false, maxTokens: Int = 20) -> JSON {
        var body: JSON = ["model": .string(model), "stream": .bool(stream), "max_tokens": .int(Int64(maxTokens)),
                          "messages": [["role": "user", "content": .string(text)]]]
        if stream { body["stream_options"] = ["include_usage": true] }
        return body
    }

    static func configure(_ config: inout GatewayConfig, _ budgets: [BudgetConfig]) {
        config.models["pricey"] = ModelConfig(name: "pricey", provider: "openai", upstream: "gpt-4o-mini", price: pricey)
        config.budgets = budgets
    }

    static func budget(_ name: String, limit: Double, mode: BudgetMode = .hard, per: [BudgetDimension] = [], alerts: [Int] = [70, 85, 100]) -> BudgetConfig {
        var budget = BudgetConfig(name: name, limitUSD: limit)
        budget.mode = mode
        budget.per = per
        budget.alerts = alerts
        return budget
    }

    /// Events a gateway published.
    final class EventLog: Sendable {
        let events = NIOLockedValueBox<[BudgetEvent]>([])
        var publisher: BudgetAlerts.Publisher { { event in self.events.withLockedValue { $0.append(event) } } }
        func waitFor(_ count: Int) async throws -> [BudgetEvent] {
            for _ in 0..<100 {
                let now = events.withLockedValue { $0 }
                if now.count >= count { return now }
                try await Task.sleep(for: .milliseconds(20))
            }
            return events.withLockedValue { $0 }
        }
    }

    // MARK: - Configuration

    @Test func theIssuesExampleParsesWithTheKeyShorthand() throws {
        let yaml = """
            providers:
              openai: {type: openai, api_key: sk-test}
            keys:
              - {name: app, sha256: \(String(repeating: "a", count: 64)), budget: {limit_usd: 50, window: month, mode: soft}}
            budgets:
              - name: customer-daily
                per: [customer]
                where: {feature: summarise, model: "gpt-4o*", metadata.team: search}
                limit_usd: 5
                window: day
                timezone: Europe/Berlin
                mode: hard
                alerts: [85, 70, 100]
                notify: [ops-slack, pager]
              - {name: rolling, limit_usd: 1.5, window: 24h}
            budgets_on_backend_error: deny
            notifications:
              channels:
                ops-slack: {type: slack, url: "https://hooks.slack.com/services/T000/B000/XXXX"}
                pager: {type: pagerduty, routing_key: "0123456789abcdef0123456789abcdef"}
            """
        let result = ConfigLoader.parse(yaml: yaml, file: "gateway.yaml", environment: [:])
        #expect(result.errors.isEmpty, "\(result.errors)")
        let config = try #require(result.config)
        let daily = try #require(config.budgets.first)
        #expect(daily.name == "customer-daily")
        #expect(daily.per == [.customer])
        #expect(daily.filter.map(\.dimension) == [.feature, .model, .metadata("team")])
        #expect(daily.filter[1].pattern.matches("gpt-4o-mini"))
        #expect(daily.limitNanos == 5_000_000_000)
        #expect(daily.window == .calendar(.day))
        #expect(daily.timeZone.identifier == "Europe/Berlin")
        #expect(daily.alerts == [70, 85, 100])
        #expect(daily.notify == ["ops-slack", "pager"])
        #expect(config.budgets[1].window == .rolling(.seconds(86_400)))
        #expect(config.budgetSettings.onBackendError == .deny)
        let key = try #require(config.allBudgets.last)
        #expect(key.name == "key-app")
        #expect(key.mode == .soft)
        #expect(key.filter.map(\.dimension) == [.key])
        #expect(key.window == .calendar(.month))
    }

    @Test(arguments: [
        ("per: [tenant]", "unknown dimension \"tenant\""),
        ("limit_usd: -5", "must not be negative"),
        ("alerts: [0]", "must be at least 1"),
        ("alerts: [101]", "a threshold is a percent from 1 to 100"),
        ("timezone: Mars/Olympus", "unknown time zone"),
        ("window: fortnight", "invalid window"),
        ("mode: strict", "invalid value \"strict\""),
        ("notify: [nowhere]", "unknown channel \"nowhere\""),
    ])
    func checkNamesEachBadBudgetSettingWithItsPosition(line: String, message: String) {
        let yaml = """
            budgets:
              - name: b
                \(line.hasPrefix("limit_usd") ? "window: day" : "limit_usd: 5")
                \(line)
            """
        let result = ConfigLoader.parse(yaml: yaml, file: "gateway.yaml", environment: [:])
        let problem = result.errors.first { $0.message.contains(message) }
        #expect(problem != nil, "\(result.problems)")
        #expect(problem?.line == 4, "reported where the setting is")
    }

    @Test func badNamesAndMissingLimitsAreErrorsAndAnUnpricedModelUnderAHardBudgetAWarning() {
        let yaml = """
            providers:
              local: {type: openai, base_url: "http://127.0.0.1:9/v1"}
            models:
              llama: {provider: local}
            budgets:
              - {name: "Bad Name", limit_usd: 1}
              - {name: nolimit}
              - {name: all, limit_usd: 1}
              - {name: all, limit_usd: 2}
            """
        let result = ConfigLoader.parse(yaml: yaml, file: "gateway.yaml", environment: [:])
        #expect(result.errors.contains { $0.message.contains("budget names use a-z") })
        #expect(result.errors.contains { $0.message.contains("missing limit_usd") })
        #expect(result.errors.contains { $0.message.contains("duplicate budget name \"all\"") })
        let soft = ConfigLoader.parse(
            yaml: "providers:\n  local: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\nmodels:\n  llama: {provider: local}\nbudgets:\n  - {name: all, limit_usd: 1}\n",
            file: "gateway.yaml", environment: [:])
        #expect(soft.warnings.contains { $0.message.contains("hard budget \"all\" covers models without a price (llama") })
    }

    // MARK: - Windows

    static func millis(_ text: String) -> Int64 {
        Int64(ISO8601DateFormatter().date(from: text)!.timeIntervalSince1970 * 1000)
    }

    @Test func aDayInBerlinRollsOverAtLocalMidnight() {
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        let late = BudgetWindow.calendar(.day).span(atMillis: Self.millis("2026-12-07T22:59:59Z"), in: berlin)
        #expect(late.startMillis == Self.millis("2026-12-06T23:00:00Z"))
        #expect(late.endMillis == Self.millis("2026-12-07T23:00:00Z"))
        #expect(late.secondsToReset(fromMillis: Self.millis("2026-12-07T22:59:59Z")) == 1)
        let next = BudgetWindow.calendar(.day).span(atMillis: Self.millis("2026-12-07T23:00:00Z"), in: berlin)
        #expect(next.startMillis == late.endMillis)
        #expect(next.storageID != late.storageID, "a new window is a new counter")
        // The day summer time ends has 25 hours.
        let autumn = BudgetWindow.calendar(.day).span(atMillis: Self.millis("2026-10-25T12:00:00Z"), in: berlin)
        #expect(autumn.endMillis - autumn.startMillis == 25 * 3_600_000)
    }

    @Test func weeksStartOnMondayAndMonthsOnTheFirst() {
        let utc = TimeZone(identifier: "UTC")!
        let week = BudgetWindow.calendar(.week).span(atMillis: Self.millis("2026-12-09T10:00:00Z"), in: utc)
        #expect(week.startMillis == Self.millis("2026-12-07T00:00:00Z"))
        #expect(week.endMillis == Self.millis("2026-12-14T00:00:00Z"))
        let month = BudgetWindow.calendar(.month).span(atMillis: Self.millis("2026-02-15T10:00:00Z"), in: utc)
        #expect(month.startMillis == Self.millis("2026-02-01T00:00:00Z"))
        #expect(month.endMillis == Self.millis("2026-03-01T00:00:00Z"))
    }

    @Test func aRollingWindowCountsItsLast24Slots() {
        let window = BudgetWindow.rolling(.seconds(86_400))
        let now = Self.millis("2026-12-07T10:30:00Z")
        let span = window.span(atMillis: now, in: TimeZone(identifier: "UTC")!)
        #expect(span.currentSlot - span.oldestSlot == 23)
        #expect(span.endMillis == Self.millis("2026-12-07T11:00:00Z"), "the oldest hour leaves at the next hour")
        #expect(span.startMillis == Self.millis("2026-12-06T11:00:00Z"))
    }

    @Test func moneyIsExactInNanoDollarsAndShownWithSixDecimals() {
        #expect(BudgetMoney.nanos(0.000_000_001) == 1)
        #expect(BudgetMoney.nanos(5) == 5_000_000_000)
        #expect(BudgetMoney.nanos(-1) == 0)
        #expect(BudgetMoney.nanos(.infinity) == 0)
        #expect(BudgetMoney.nanos(1e300) == 1_000_000_000_000_000)
        #expect(BudgetMoney.sixDecimals(4_300_000_000) == "4.300000")
        #expect(BudgetMoney.sixDecimals(1_234) == "0.000001")
        #expect(BudgetMoney.sixDecimals(-5) == "0.000000")
    }

    // MARK: - Counters, in memory and in Redis

    static func counter(_ budget: String = "b", limit: Int64 = 100, hard: Bool = true, bucket: String = "acme", span: BudgetSpan? = nil) -> BudgetCounter {
        BudgetCounter(
            budget: budget, bucket: [BudgetBucketValue(dimension: "customer", value: bucket)],
            span: span ?? BudgetWindow.calendar(.day).span(atMillis: 1_000_000, in: TimeZone(identifier: "UTC")!), limitNanos: limit, hard: hard)
    }

    /// The same assertions against both stores.
    static func exerciseStore(_ store: any BudgetStore) async throws {
        let now: Int64 = 1_000_000
        let hard = counter()
        let soft = counter("s", limit: 100, hard: false)
        #expect(try await store.reserve([hard, soft], amount: 60, id: "r1", expiresAtMillis: now + 1000, nowMillis: now)
            == .held([BudgetLevel(spentNanos: 0, reservedNanos: 60), BudgetLevel(spentNanos: 0, reservedNanos: 60)]))
        // 60 held + 50 > 100: refused, and nothing held on the soft counter either.
        #expect(try await store.reserve([soft, hard], amount: 50, id: "r2", expiresAtMillis: now + 1000, nowMillis: now)
            == .refused(index: 1, level: BudgetLevel(spentNanos: 0, reservedNanos: 60)))
        #expect(try await store.settle([hard, soft], id: "r1", amount: 30, nowMillis: now)
            == [BudgetLevel(spentNanos: 30, reservedNanos: 0), BudgetLevel(spentNanos: 30, reservedNanos: 0)])
        // A soft counter never refuses.
        #expect(try await store.reserve([soft], amount: 500, id: "r3", expiresAtMillis: now + 1000, nowMillis: now)
            == .held([BudgetLevel(spentNanos: 30, reservedNanos: 500)]))
        // A failure releases: nothing spent.
        #expect(try await store.settle([soft], id: "r3", amount: 0, nowMillis: now) == [BudgetLevel(spentNanos: 30, reservedNanos: 0)])
        // A reservation left by a gateway that died expires.
        _ = try await store.reserve([hard], amount: 70, id: "dead", expiresAtMillis: now + 10, nowMillis: now)
        #expect(try await store.reserve([hard], amount: 70, id: "r4", expiresAtMillis: now + 1000, nowMillis: now + 11)
            == .held([BudgetLevel(spentNanos: 30, reservedNanos: 70)]))
        _ = try await store.settle([hard], id: "r4", amount: 0, nowMillis: now + 12)
        // Another bucket and another window are other counters.
        #expect(try await store.reserve([counter(bucket: "globex")], amount: 100, id: "r5", expiresAtMillis: now + 1000, nowMillis: now)
            == .held([BudgetLevel(spentNanos: 0, reservedNanos: 100)]))
        let listed = try await store.counters(of: "b", span: hard.span, nowMillis: now + 12)
        #expect(listed.count == 2)
        #expect(listed.first { $0.storageKey == hard.storageKey }?.level == BudgetLevel(spentNanos: 30, reservedNanos: 0))
        #expect(listed.first { $0.storageKey == hard.storageKey }?.bucket == hard.bucket)
        // Seeding adds once.
        let fresh = counter("seeded")
        try await store.seed(fresh, amount: 40, nowMillis: now)
        try await store.seed(fresh, amount: 40, nowMillis: now)
        #expect(try await store.settle([fresh], id: nil, amount: 0, nowMillis: now) == [BudgetLevel(spentNanos: 40, reservedNanos: 0)])
        // An operator's reset of one bucket.
        #expect(try await store.reset("b", span: hard.span, bucketDigest: hard.bucketDigest, nowMillis: now) == 1)
        #expect(try await store.settle([hard], id: nil, amount: 0, nowMillis: now) == [BudgetLevel(spentNanos: 0, reservedNanos: 0)])
        // A rolling window forgets the slots that left it.
        let window = BudgetWindow.rolling(.seconds(2400))
        let early = window.span(atMillis: now, in: TimeZone(identifier: "UTC")!)
        let rolling = counter("rolling", span: early)
        _ = try await store.settle([rolling], id: nil, amount: 25, nowMillis: now)
        let later = window.span(atMillis: now + 2_400_000, in: TimeZone(identifier: "UTC")!)
        #expect(try await store.settle([counter("rolling", span: later)], id: nil, amount: 5, nowMillis: now + 2_400_000)
            == [BudgetLevel(spentNanos: 5, reservedNanos: 0)])
    }

    @Test func theMemoryStoreHoldsSettlesAndRefusesAtomically() async throws {
        try await Self.exerciseStore(MemoryBudgetStore())
    }

    @Test func theRedisStoreHoldsSettlesAndRefusesAtomically() async throws {
        let redis = try await RedisServerProcess.start()
        let client = RedisClient(configuration: try RedisConfiguration(url: redis.url()), logger: Logger(label: "test"))
        try await Self.exerciseStore(RedisBudgetStore(client: client, prefix: "t-\(RandomID.make(prefix: "", length: 6)):"))
        await client.shutdown()
        await redis.stop()
    }

    // MARK: - Through the gateway

    @Test func aHardBudgetRefusesBeforeTheProviderIsCalled() async throws {
        try await GatewayHarness.with(configure: { Self.configure(&$0, [Self.budget("daily", limit: 0.05, per: [.customer])]) }) { gateway in
            var spent = 0
            var refusal: GatewayHarness.Reply?
            for index in 0..<10 where refusal == nil {
                let reply = try await gateway.post(json: Self.ask("hello \(index)"), headers: ["X-Customer-Id": "acme"])
                if reply.status == 429 {
                    refusal = reply
                } else {
                    #expect(reply.status == 200)
                    spent += 1
                    let remaining = try #require(reply.header("X-Budget-Remaining-USD").flatMap(Double.init))
                    #expect(remaining < 0.05 && remaining >= 0)
                    #expect(reply.header("X-Budget-Remaining-USD")?.split(separator: ".").last?.count == 6)
                    let reset = try #require(reply.header("X-Budget-Reset").flatMap(Int.init))
                    #expect(reset > 0 && reset <= 86_400)
                }
            }
            let refused = try #require(refusal)
            #expect(spent >= 1 && spent <= 3)
            #expect(refused.json?["error"]?["type"]?.stringValue == "budget_exceeded")
            #expect(refused.json?["error"]?["code"]?.stringValue == "budget_exceeded")
            #expect(refused.json?["error"]?["message"]?.stringValue?.contains("'daily'") == true)
            #expect(refused.json?["error"]?["message"]?.stringValue?.contains("acme") == false, "no bucket values in the message")
            let retryAfter = try #require(refused.header("Retry-After").flatMap(Int.init))
            #expect(retryAfter >= 1 && retryAfter <= 86_400)
            #expect(gateway.openai.requests.count == spent, "the refused request never reached the provider")
            // Another customer has a bucket of their own.
            let other = try await gateway.post(json: Self.ask("hello"), headers: ["X-Customer-Id": "globex"])
            #expect(other.status == 200)
            // A request without the dimension counts in the shared (none) bucket, not nowhere.
            let anonymous = try await gateway.post(json: Self.ask("anonymous"))
            #expect(anonymous.status == 200)
        }
    }

    @Test func aSoftBudgetNeverRefusesButRaisesEachThresholdOnce() async throws {
        let events = EventLog()
        try await GatewayHarness.with(configure: { Self.configure(&$0, [Self.budget("soft", limit: 0.05, mode: .soft)]) }, budgetEvents: events.publisher) { gateway in
            for index in 0..<8 {
                #expect(try await gateway.post(json: Self.ask("soft \(index)")).status == 200)
            }
            let published = try await events.waitFor(3)
            #expect(published.filter { $0.type == "budget.threshold" }.compactMap(\.threshold).sorted() == [70, 85, 100])
            #expect(Set(published.map(\.id)).count == published.count)
            #expect(published.allSatisfy { $0.budget == "soft" && $0.limitNanos == 50_000_000 })
            let hundred = try #require(published.first { $0.threshold == 100 })
            #expect(hundred.spentNanos >= 50_000_000)
        }
    }

    @Test func aHardRefusalRaisesExceededAndTheHundredPercentThresholdOnce() async throws {
        let events = EventLog()
        try await GatewayHarness.with(configure: { Self.configure(&$0, [Self.budget("hard", limit: 0.05, alerts: [100])]) }, budgetEvents: events.publisher) { gateway in
            var refusals = 0
            for index in 0..<8 where try await gateway.post(json: Self.ask("hard \(index)")).status == 429 { refusals += 1 }
            #expect(refusals >= 5)
            let published = try await events.waitFor(2)
            try await Task.sleep(for: .milliseconds(100))
            let all = events.events.withLockedValue { $0 }
            #expect(all.filter { $0.type == "budget.exceeded" }.count == 1, "one exceeded event per window, not one per refusal")
            #expect(all.filter { $0.threshold == 100 }.count == 1)
            #expect(published.count == all.count)
        }
    }

    @Test func aCacheHitReleasesItsHoldAndSpendsNothing() async throws {
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config, [Self.budget("hits", limit: 0.05)])
            config.cache.backend = .memory
        }) { gateway in
            let first = try await gateway.post(json: Self.ask("same"))
            #expect(first.status == 200)
            let afterFirst = try #require(first.header("X-Budget-Remaining-USD").flatMap(Double.init))
            let cost = try #require(first.header("X-Cost-USD").flatMap(Double.init))
            for _ in 0..<5 {
                let hit = try await gateway.post(json: Self.ask("same"))
                #expect(hit.status == 200)
                #expect(hit.header("X-Cache-Hit") == "exact")
            }
            let probe = try await gateway.post(json: Self.ask("same"))
            let remaining = try #require(probe.header("X-Budget-Remaining-USD").flatMap(Double.init))
            // What is left is the limit less the first request's real cost and this request's own hold (the same
            // hold as the first's): the hits between held and released, and spent nothing.
            #expect(abs(remaining - (afterFirst - cost)) < 0.000_002, "\(remaining) vs \(afterFirst) - \(cost)")
        }
    }

    @Test func aStreamedAnswerIsChargedItsRealCost() async throws {
        try await GatewayHarness.with(configure: { Self.configure(&$0, [Self.budget("streams", limit: 0.05)]) }) { gateway in
            var answered = 0
            for index in 0..<10 {
                let reply = try await gateway.post(json: Self.ask("stream \(index)", stream: true))
                if reply.status == 429 { break }
                #expect(reply.status == 200)
                answered += 1
            }
            #expect(answered >= 1 && answered <= 3, "streams spend: \(answered) answered before the refusal")
        }
    }

    @Test func aFailoverToAPricierModelIsChargedToTheProviderThatServed() async throws {
        var budget = Self.budget("anthropic", limit: 1)
        budget.filter = [BudgetFilter(.provider, "anthropic")]
        let anthropicOnly = budget
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config, [Self.budget("all", limit: 1), anthropicOnly])
            config.models["cheap"] = ModelConfig(name: "cheap", provider: "openai", upstream: "gpt-4o-mini", fallbacks: ["dear"], price: Price(input: 1, output: 1))
            config.models["dear"] = ModelConfig(name: "dear", provider: "anthropic", upstream: "claude-haiku-4-5", fallbacks: [], price: Self.pricey)
        }) { gateway in
            gateway.openai.failNext(1, status: 500)
            let failedOver = try await gateway.post(json: Self.ask("fail over", model: "cheap"))
            #expect(failedOver.status == 200)
            #expect(failedOver.header("X-Provider") == "anthropic")
            let cost = try #require(failedOver.header("X-Cost-USD").flatMap(Double.init))
            #expect(cost > 0.005, "charged at the pricier model's price: \(cost)")
            // The pricier fallback was held before the call: the hold covered what it cost.
            let held = 1 - (try #require(failedOver.header("X-Budget-Remaining-USD").flatMap(Double.init)))
            #expect(held >= cost, "held \(held), cost \(cost)")
            // The anthropic-only budget, not held at admission (openai came first), was charged after.
            let direct = try await gateway.post(json: Self.ask("fail over", model: "dear"))
            let directCost = BudgetMoney.usd(BudgetAdmission.estimate(
                ExpectedUsage(chat: try ChatRequest(json: Self.ask("fail over", model: "dear"))), price: Self.pricey, defaultOutput: 4096))
            let remaining = try #require(direct.header("X-Budget-Remaining-USD").flatMap(Double.init))
            #expect(abs(remaining - (1 - cost - directCost)) < 0.000_002, "\(remaining) vs 1 - \(cost) - \(directCost)")
        }
    }

    @Test func aBerlinDayRollsOverAtLocalMidnightThroughTheGateway() async throws {
        let now = ManagedClock(Self.millis("2026-12-07T22:59:30Z"))  // 23:59:30 in Berlin
        var daily = Self.budget("berlin", limit: 0.05)
        daily.timeZone = TimeZone(identifier: "Europe/Berlin")!
        let budget = daily
        try await GatewayHarness.with(configure: { Self.configure(&$0, [budget]) }, budgetClock: { now.value }) { gateway in
            var status = 200
            for index in 0..<10 where status == 200 { status = try await gateway.post(json: Self.ask("late \(index)")).status }
            #expect(status == 429)
            let refused = try await gateway.post(json: Self.ask("still late"))
            #expect(refused.header("Retry-After") == "30", "30 s to Berlin's midnight")
            now.set(Self.millis("2026-12-07T23:00:00Z"))
            let fresh = try await gateway.post(json: Self.ask("a new day"))
            #expect(fresh.status == 200, "a new window, a new counter")
            #expect(fresh.header("X-Budget-Reset") == "86400")
        }
    }

    /// A clock tests move by hand.
    final class ManagedClock: Sendable {
        private let millis: NIOLockedValueBox<Int64>
        init(_ start: Int64) { millis = NIOLockedValueBox(start) }
        var value: Int64 { millis.withLockedValue { $0 } }
        func set(_ value: Int64) { millis.withLockedValue { $0 = value } }
    }

    @Test func aStreamTheClientLeavesIsChargedWhatItWasSent() async throws {
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config, [Self.budget("cut", limit: 1)])
            config.models["stall-priced"] = ModelConfig(name: "stall-priced", provider: "openai", upstream: "stall-stream", price: Self.pricey)
        }) { gateway in
            #expect(try await gateway.readTheStartOfAStallingStreamThenLeave(model: "stall-priced"))
            let records = try await gateway.records.waitFor(1)
            let record = try #require(records.first)
            let cost = try #require(record.costUSD, "a stream cut short is not free")
            #expect(cost > 0 && (record.completionTokens ?? 0) >= 1)
            // The budget was charged it: what is left is the limit less that cost and the next request's hold.
            let next = try await gateway.post(json: Self.ask("after"))
            let hold = BudgetMoney.usd(BudgetAdmission.estimate(ExpectedUsage(chat: try ChatRequest(json: Self.ask("after"))), price: Self.pricey, defaultOutput: 4096))
            let remaining = try #require(next.header("X-Budget-Remaining-USD").flatMap(Double.init))
            #expect(abs(remaining - (1 - cost - hold)) < 0.000_002, "\(remaining) vs 1 - \(cost) - \(hold)")
        }
    }

    @Test func aModelWithoutAPriceCannotBeUsedUnderAHardBudget() async throws {
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config, [Self.budget("all", limit: 1)])
            config.models["free"] = ModelConfig(name: "free", provider: "openai", upstream: "llama-without-a-price")
        }) { gateway in
            var unpriced = Self.ask("x", model: "free")
            unpriced["model"] = "free"
            let reply = try await gateway.post(json: unpriced)
            #expect(reply.status == 400)
            #expect(reply.json?["error"]?["code"]?.stringValue == "budget_unpriced_model")
            #expect(gateway.openai.requests.isEmpty)
        }
    }

    @Test func sixtyFourConcurrentRequestsOverTwoGatewaysOnRedisNeverOvershoot() async throws {
        let redis = try await RedisServerProcess.start()
        let url = redis.url()
        let prefix = "b-\(RandomID.make(prefix: "", length: 8)):"
        let limit = 0.2
        @Sendable func configure(_ config: inout GatewayConfig) {
            Self.configure(&config, [Self.budget("fleet", limit: limit)])
            config.redis.url = url
            config.redis.prefix = prefix
            config.redisConfigured = true
        }
        try await GatewayHarness.with(configure: configure) { first in
            var second = first.config
            configure(&second)
            try await first.withAnotherGateway(config: second) { other in
                let replies = try await withThrowingTaskGroup(of: GatewayHarness.Reply.self) { group in
                    for index in 0..<64 {
                        let gateway = index.isMultiple(of: 2) ? first : other
                        group.addTask { try await gateway.post(json: Self.ask("concurrent \(index)")) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let answered = replies.filter { $0.status == 200 }
                let unexpected = replies.filter { $0.status != 200 && $0.status != 429 }
                #expect(unexpected.isEmpty, "\(unexpected.map { "\($0.status) \($0.body)" })")
                #expect(!answered.isEmpty && answered.count < 64)
                let spent = answered.compactMap { $0.header("X-Cost-USD").flatMap(Double.init) }.reduce(0, +)
                let reservation = BudgetMoney.usd(BudgetAdmission.estimate(
                    ExpectedUsage(chat: try ChatRequest(json: Self.ask("concurrent 10"))), price: Self.pricey, defaultOutput: 4096))
                #expect(spent <= limit + reservation, "spent \(spent) of \(limit) (one reservation: \(reservation))")
                #expect(spent > limit / 2, "the budget was used, not refused from the start: \(spent)")
            }
        }
        await redis.stop()
    }

    @Test(arguments: [BudgetSettings.OnBackendError.allow, .deny])
    func aRedisOutageFollowsBudgetsOnBackendError(onError: BudgetSettings.OnBackendError) async throws {
        let redis = try await RedisServerProcess.start()
        let url = redis.url()
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config, [Self.budget("fleet", limit: 10)])
            config.budgetSettings.onBackendError = onError
            config.redis.url = url
            config.redis.connectTimeout = .milliseconds(500)
            config.redis.commandTimeout = .milliseconds(300)
            config.redisConfigured = true
        }) { gateway in
            #expect(try await gateway.post(json: Self.ask("before")).status == 200)
            await redis.kill()
            let reply = try await gateway.post(json: Self.ask("during"))
            #expect(reply.status == (onError == .allow ? 200 : 503))
            #expect(reply.header("X-Budget-Remaining-USD") == nil)
        }
        await redis.stop()
    }

    // MARK: - Restarts and reloads

    @Test func spendIsRebuiltFromTheRequestLogAndAReloadedLimitKeepsIt() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("budget-\(RandomID.make(prefix: "", length: 8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteRequestLogStore(path: directory + "/requests.db", logger: Logger(label: "test"))
        try await store.migrate()
        let now = UnixTime.nowMicros()
        var records: [RequestRecord] = []
        for (index, (customer, cost)) in [("acme", 1.25), ("acme", 0.5), ("globex", 2.0), (nil, 0.25)].enumerated() {
            records.append(RequestRecord(
                requestID: "r\(index)", createdAtMicros: now - Int64(index) * 1_000_000, keyName: "app", model: "pricey", provider: "openai",
                statusCode: 200, costUSD: cost, latencyMs: 1, customer: customer))
        }
        let old = RequestRecord(
            requestID: "older", createdAtMicros: now - 8 * 86_400_000_000, keyName: "app", model: "pricey", provider: "openai", statusCode: 200,
            costUSD: 100, latencyMs: 1, customer: "acme")
        try await store.insert(records + [old])
        let book = BudgetBook(store: MemoryBudgetStore(), isShared: false, alerts: BudgetAlerts(logger: Logger(label: "test")) { _ in })
        var budget = Self.budget("daily", limit: 5, per: [.customer])
        budget.window = .calendar(.week)
        await book.rebuild([budget], from: store, logger: Logger(label: "test"))
        func spent(_ customer: String?, _ budget: BudgetConfig) async throws -> Int64 {
            let subject = BudgetSubject(key: "app", customer: customer, model: "pricey", provider: "openai")
            let counters = book.counters(for: subject, among: [budget], atMillis: book.clock())
            return try await book.store.settle(counters, id: nil, amount: 0, nowMillis: book.clock())[0].spentNanos
        }
        #expect(try await spent("acme", budget) == 1_750_000_000, "last week's $100 is another window")
        #expect(try await spent("globex", budget) == 2_000_000_000)
        #expect(try await spent(nil, budget) == 250_000_000, "the (none) bucket")
        // A reload that changes the limit keeps the spend: counters are the budget's, not its limit's.
        budget.limitUSD = 50
        #expect(try await spent("acme", budget) == 1_750_000_000)
        // Rebuilding again (a second start on a shared store) does not count twice.
        await book.rebuild([budget], from: store, logger: Logger(label: "test"))
        #expect(try await spent("acme", budget) == 1_750_000_000)
        await store.close()
    }
}

/// Budgets as an operator meets them in the real daemon: `ctl budgets`, a reset, the metrics, and a restart that
/// rebuilds the window's spend from the SQLite request log.
@Suite("Budgets in the daemon", .timeLimit(.minutes(2)))
struct BudgetDaemonTests {
    /// The listener, the fake OpenAI, the model `pricey` ($0.001 a token) and the request log in `log`.
    static func base(_ fakes: GatewayHarness, port: Int, log: String) -> String {
        let upstream = fakes.openai.baseURL(port: fakes.fakePorts[.openai]!)
        return """
            server: {listen: "127.0.0.1:\(port)"}
            providers:
              openai: {type: openai, base_url: "\(upstream)", api_key: "\(fakes.openai.key)"}
            models:
              pricey: {provider: openai, upstream: gpt-4o-mini, price: {input: 1000, output: 1000}}
            cache: {backend: off}
            request_log: {backend: sqlite, path: "\(log)", flush_interval: 50ms}

            """
    }

    static func yaml(_ fakes: GatewayHarness, port: Int, log: String) -> String {
        base(fakes, port: port, log: log) + """
            keys:
              - name: app
                sha256: \(KeyHash.sha256Hex(GatewayHarness.clientKey))
                budget: {limit_usd: 100, window: month}
            budgets:
              - name: customer-daily
                per: [customer]
                limit_usd: 5
                window: day
                timezone: Europe/Berlin
            """
    }

    @Test func ctlShowsBudgetsAResetForgetsABucketAndARestartRemembersTheSpend() async throws {
        let directory = NSTemporaryDirectory() + "budget-daemon-\(RandomID.make(prefix: "", length: 8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/requests.db"
        try await GatewayHarness.with { fakes in
            var daemon = try await DaemonProcess { port in Self.yaml(fakes, port: port, log: log) }
            var api = AdminTests.client(daemon, fakes)
            for customer in ["acme", "acme", "globex"] {
                let reply = try await api.post(json: BudgetTests.ask("hi \(customer)"), headers: ["X-Customer-Id": customer])
                #expect(reply.status == 200)
                #expect(reply.header("X-Budget-Remaining-USD") != nil)
            }
            func ctl(_ arguments: String...) async throws -> ProcessRunner.Result {
                try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["ctl"] + arguments + ["--socket", daemon.adminSocket])
            }
            let listing = try await ctl("budgets")
            #expect(listing.status == 0)
            #expect(listing.stdout.contains("customer-daily") && listing.stdout.contains("customer=acme") && listing.stdout.contains("key-app"))
            let listed = try JSON.parse(try await ctl("budgets", "--json").stdout)
            let daily = try #require(listed["budgets"]?.arrayValue?.first { $0["name"]?.stringValue == "customer-daily" })
            let acme = try #require(daily["buckets"]?.arrayValue?.first { $0["bucket"]?["customer"]?.stringValue == "acme" })
            let acmeSpent = try #require(acme["spent_usd"]?.doubleValue)
            #expect(acmeSpent > 0.01)
            #expect(daily["timezone"]?.stringValue == "Europe/Berlin")
            let metrics = try await ctl("metrics")
            #expect(metrics.stdout.contains("llm_gateway_budget_limit_usd{budget=\"customer-daily\"} 5"))
            #expect(metrics.stdout.contains("llm_gateway_budget_spend_usd_total{budget=\"customer-daily\"}"))

            // Written to the log, then a restart: the window's spend is rebuilt from it.
            try await Task.sleep(for: .milliseconds(300))
            #expect(await daemon.stop() == 0)
            // `stats --by budget` reads the same spend from the log.
            try Self.yaml(fakes, port: 0, log: log).write(toFile: directory + "/gateway.yaml", atomically: true, encoding: .utf8)
            let stats = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["stats", "--by", "budget", "--json", "--config", directory + "/gateway.yaml"])
            #expect(stats.status == 0, "\(stats.stderr)")
            let statsRows = try #require(try JSON.parse(stats.stdout).arrayValue)
            let acmeRow = statsRows.first { $0["budget"]?.stringValue == "customer-daily" && $0["bucket"]?.stringValue == "customer=acme" }
            #expect(abs((acmeRow?["spent_usd"]?.doubleValue ?? 0) - acmeSpent) < 0.000_001, "\(statsRows)")
            #expect(acmeRow?["limit_usd"]?.doubleValue == 5)
            #expect(statsRows.contains { $0["budget"]?.stringValue == "key-app" && $0["bucket"]?.stringValue == "(all)" })
            let table = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["stats", "--by", "budget", "--config", directory + "/gateway.yaml"])
            #expect(table.stdout.contains("customer-daily") && table.stdout.contains("LIMIT USD"))

            daemon = try await DaemonProcess { port in Self.yaml(fakes, port: port, log: log) }
            api = AdminTests.client(daemon, fakes)
            let rebuilt = try JSON.parse(try await ctl("budgets", "--json").stdout)
            let again = rebuilt["budgets"]?.arrayValue?.first { $0["name"]?.stringValue == "customer-daily" }?["buckets"]?.arrayValue?
                .first { $0["bucket"]?["customer"]?.stringValue == "acme" }
            #expect(abs((again?["spent_usd"]?.doubleValue ?? 0) - acmeSpent) < 0.000_001, "\(rebuilt)")

            let reset = try await ctl("budgets", "reset", "customer-daily", "--bucket", "customer=acme")
            #expect(reset.status == 0, "\(reset.stdout)")
            #expect(reset.stdout.contains("1 bucket(s) reset"))
            let afterReset = try JSON.parse(try await ctl("budgets", "--json").stdout)
            let buckets = afterReset["budgets"]?.arrayValue?.first { $0["name"]?.stringValue == "customer-daily" }?["buckets"]?.arrayValue ?? []
            #expect(buckets.first { $0["bucket"]?["customer"]?.stringValue == "acme" }?["spent_usd"]?.doubleValue == 0)
            #expect((buckets.first { $0["bucket"]?["customer"]?.stringValue == "globex" }?["spent_usd"]?.doubleValue ?? 0) > 0)
            let unknown = try await ctl("budgets", "reset", "nope")
            #expect(unknown.status == 1)

            // A reload that raises the limit keeps the spend; a budget it adds starts from the log's spend.
            var file = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
            file = file.replacingOccurrences(of: "limit_usd: 5\n", with: "limit_usd: 7\n")
            file = file.replacingOccurrences(of: "\nadmin:", with: "\n  - {name: added, per: [customer], limit_usd: 9}\nadmin:")
            try file.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
            let reload = try await ctl("reload")
            #expect(reload.status == 0, "\(reload.stdout)")
            var reloaded: JSON = [:]
            for _ in 0..<50 {
                reloaded = try JSON.parse(try await ctl("budgets", "--json").stdout)
                let added = reloaded["budgets"]?.arrayValue?.first { $0["name"]?.stringValue == "added" }
                if (added?["buckets"]?.arrayValue?.count ?? 0) >= 2 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let raised = reloaded["budgets"]?.arrayValue?.first { $0["name"]?.stringValue == "customer-daily" }
            #expect(raised?["limit_usd"]?.doubleValue == 7)
            let globex = raised?["buckets"]?.arrayValue?.first { $0["bucket"]?["customer"]?.stringValue == "globex" }
            #expect((globex?["spent_usd"]?.doubleValue ?? 0) > 0, "the spend so far is kept")
            let added = try #require(reloaded["budgets"]?.arrayValue?.first(where: { $0["name"]?.stringValue == "added" }))
            let addedBuckets = added["buckets"]?.arrayValue ?? []
            let customers = addedBuckets.map { $0["bucket"]?["customer"]?.stringValue ?? "?" }
            let addedAcme = addedBuckets.first { $0["bucket"]?["customer"]?.stringValue == "acme" }
            #expect(abs((addedAcme?["spent_usd"]?.doubleValue ?? 0) - acmeSpent) < 0.000_001, "rebuilt from the log: \(customers) \(addedBuckets.count)")
            #expect(await daemon.stop() == 0)
        }
    }

    /// Runs `body` with the fakes and a daemon configuration (taking its port): the model `pricey`, a soft budget
    /// `team` of $0.05 notifying the webhook `hook` of `receivers`, and a SQLite log in a folder of its own.
    static func withSoftBudgetOnAWebhook(
        _ receivers: NotificationReceivers, _ body: @escaping @Sendable (GatewayHarness, @escaping @Sendable (Int) -> String) async throws -> Void
    ) async throws {
        let directory = NSTemporaryDirectory() + "budget-hook-\(RandomID.make(prefix: "", length: 8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await receivers.run { hookPort in
            try await GatewayHarness.with { fakes in
                try await body(fakes) { port in
                    Self.base(fakes, port: port, log: "\(directory)/requests.db") + """
                    keys:
                      - {name: app, sha256: \(KeyHash.sha256Hex(GatewayHarness.clientKey))}
                    budgets:
                      - {name: team, limit_usd: 0.05, mode: soft, notify: [hook]}
                    notifications:
                      channels:
                        hook: {type: webhook, url: "http://127.0.0.1:\(hookPort)/hook", secret: "\(receivers.secret)"}
                    """
                }
            }
        }
    }

    @Test func thresholdsReachAWebhookSignedAndOnceAcrossARestart() async throws {
        let receivers = NotificationReceivers()
        try await Self.withSoftBudgetOnAWebhook(receivers) { fakes, yaml in
            var daemon = try await DaemonProcess(configuration: yaml)
            var api = AdminTests.client(daemon, fakes)
            for index in 0..<6 { #expect(try await api.post(json: BudgetTests.ask("spend \(index)")).status == 200) }
            func thresholds() -> [Int] {
                receivers.accepted("/hook").compactMap { $0.json?["threshold"]?.intValue }.map { Int($0) }.sorted()
            }
            let started = ContinuousClock.now
            // A delivery attempt that fails is retried after 1 s, 2 s, 4 s, …: a loaded machine may need a few.
            while thresholds().count < 3, ContinuousClock.now - started < .seconds(60) { try await Task.sleep(for: .milliseconds(50)) }
            #expect(thresholds() == [70, 85, 100], Comment(rawValue: daemon.logTail()))
            let first = try #require(receivers.accepted("/hook").first?.json)
            #expect(first["type"]?.stringValue == "budget.threshold")
            #expect(first["budget"]?.stringValue == "team")
            #expect(first["limit_usd"]?.doubleValue == 0.05)
            #expect(first["window"]?["start"]?.stringValue != nil && first["window"]?["end"]?.stringValue != nil)
            let rejected = receivers.received.filter { !$0.accepted }
            #expect(rejected.isEmpty, "every body was signed with the secret")
            try await Task.sleep(for: .milliseconds(200))
            #expect(await daemon.stop() == 0)

            // A restart rebuilds the spend: more spending passes no threshold again, and nothing is sent twice.
            daemon = try await DaemonProcess(configuration: yaml)
            api = AdminTests.client(daemon, fakes)
            for index in 0..<2 { #expect(try await api.post(json: BudgetTests.ask("more \(index)")).status == 200) }
            try await Task.sleep(for: .seconds(1))
            #expect(thresholds() == [70, 85, 100], Comment(rawValue: daemon.logTail()))
            #expect(Set(receivers.accepted("/hook").compactMap { $0.json?["id"]?.stringValue }).count == 3)
            #expect(await daemon.stop() == 0)
        }
    }

    @Test func alertsPendingWhenTheGatewayIsKilledAreDeliveredAfterItRestarts() async throws {
        let receiverDown = NIOLockedValueBox(true)
        let receivers = NotificationReceivers(down: { receiverDown.withLockedValue { $0 } })
        try await Self.withSoftBudgetOnAWebhook(receivers) { fakes, yaml in
            var daemon = try await DaemonProcess(configuration: yaml)
            let api = AdminTests.client(daemon, fakes)
            for index in 0..<6 { #expect(try await api.post(json: BudgetTests.ask("spend \(index)")).status == 200) }
            // The receiver refuses while the events wait in the outbox; then the gateway dies without a word.
            let started = ContinuousClock.now
            while receivers.received.count < 2, ContinuousClock.now - started < .seconds(10) { try await Task.sleep(for: .milliseconds(50)) }
            #expect(receivers.accepted("/hook").isEmpty)
            kill(daemon.pid, SIGKILL)
            while daemon.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            receiverDown.withLockedValue { $0 = false }
            daemon = try await DaemonProcess(configuration: yaml)
            func thresholds() -> [Int] {
                receivers.accepted("/hook").compactMap { $0.json?["threshold"]?.intValue }.map { Int($0) }.sorted()
            }
            let restarted = ContinuousClock.now
            // A row the dead gateway was sending stays its own for the lease (30 s), then goes out.
            while thresholds().count < 3, ContinuousClock.now - restarted < .seconds(50) { try await Task.sleep(for: .milliseconds(50)) }
            #expect(thresholds() == [70, 85, 100], "every event published before the kill arrives once")
            #expect(await daemon.stop() == 0)
        }
    }
}
