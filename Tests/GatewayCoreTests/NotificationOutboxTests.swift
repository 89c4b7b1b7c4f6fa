import Foundation
import Logging
import Testing
@testable import GatewayCore

/// The outbox's durability and once-only promises, on real SQLite files, a real PostgreSQL and a real Redis.
@Suite("Notification outbox", .timeLimit(.minutes(2)))
struct NotificationOutboxTests {
    typealias Delivery = NotificationDeliveryTests

    static let hookOnly: @Sendable (Int, NotificationReceivers) -> NotificationSettings = { port, receivers in
        var settings = Delivery.settings(port: port, receivers: receivers)
        settings.channels = settings.channels.filter { $0.key == "hook" }
        return settings
    }

    @Test func publishingAnIdTwiceStoresItOnce() async throws {
        let path = Delivery.temporaryDatabase()
        let settings = NotificationSettings(channels: [
            "a": NotificationChannel(name: "a", kind: .slack(url: "https://hooks.example.com/a")),
            "b": NotificationChannel(name: "b", kind: .slack(url: "https://hooks.example.com/b")),
        ])
        for store in [try await NotificationOutboxStores.open(config: Delivery.sqliteConfig(path), logger: Delivery.logger), MemoryOutboxStore()] {
            let outbox = NotificationOutbox(store: store, settings: { settings }, logger: Delivery.logger)
            let event = Delivery.event(70, channels: ["a", "b", "unknown"])
            #expect(try await outbox.publish(event), "\(store.backend)")
            #expect(try await !outbox.publish(event), "\(store.backend): the same id again")
            var again = Delivery.event(70, channels: ["b"])
            again.summary = "another text, same id"
            #expect(try await !outbox.publish(again), "\(store.backend)")
            let report = try await outbox.report()
            #expect(report.channels["a"]?.pending == 1 && report.channels["b"]?.pending == 1, "\(store.backend)")
            #expect(report.channels["unknown"] == nil, "\(store.backend): an unconfigured channel is skipped")
            #expect(report.oldestPending.map(\.eventID) == [event.id, event.id])
            await store.close()
        }
        // Another instance on the same file (a restart) knows the id too.
        let reopened = try await NotificationOutboxStores.open(config: Delivery.sqliteConfig(path), logger: Delivery.logger)
        #expect(try await !NotificationOutbox(store: reopened, settings: { settings }, logger: Delivery.logger).publish(Delivery.event(70, channels: ["a"])))
        await reopened.close()
    }

    /// A gateway stops with events pending, one of them claimed by a gateway killed mid-delivery: a new outbox on
    /// the same SQLite file delivers them all, in order, once the dead gateway's lease has run out.
    @Test func aRestartDeliversWhatWasPending() async throws {
        let path = Delivery.temporaryDatabase()
        let clock = ManualNotificationClock()
        let receivers = NotificationReceivers()
        try await receivers.run { port in
            let settings = Self.hookOnly(port, receivers)
            let events = (1...3).map { Delivery.event($0, channels: ["hook"]) }
            let first = try await NotificationOutboxStores.open(config: Delivery.sqliteConfig(path), logger: Delivery.logger)
            for event in events { #expect(try await NotificationOutbox(store: first, settings: { settings }, clock: clock, logger: Delivery.logger).publish(event)) }
            // The killed gateway: it claimed the head and never said how the attempt went.
            let claimed = try await first.claimHead(
                channel: "hook", owner: "killed", nowMicros: clock.nowMicros(), leaseUntilMicros: clock.nowMicros() + 120_000_000)
            #expect(claimed?.event == events[0])
            await first.close()

            let second = try await NotificationOutboxStores.open(config: Delivery.sqliteConfig(path), logger: Delivery.logger)
            let outbox = NotificationOutbox(store: second, settings: { settings }, clock: clock, logger: Delivery.logger)
            #expect(try await outbox.report().channels["hook"]?.pending == 3)
            #expect(try await second.claimHead(channel: "hook", owner: "other", nowMicros: clock.nowMicros(), leaseUntilMicros: clock.nowMicros() + 1) == nil,
                    "the head is leased, and nothing may overtake it")
            let start = clock.now()
            try await Delivery.delivering(NotificationDelivery(outbox: outbox)) {
                try await Delivery.waitUntil("all three are delivered") { try await outbox.report().channels["hook"]?.delivered == 3 }
            }
            #expect(receivers.accepted("/hook").map(Delivery.eventID) == events.map(\.id))
            #expect(clock.now().timeIntervalSince(start) >= 120, "the dead gateway's lease ran out first")
            #expect(try await outbox.report().channels["hook"]?.delivered == 3)
            await second.close()
        }
    }

    /// Two gateways with a SQLite file each and one Redis: the event is stored (and so delivered) by one of them.
    @Test func redisClaimsAnEventForTheWholeFleet() async throws {
        try await withRedisServer { server in
            let redis = RedisClient(configuration: try RedisConfiguration(url: server.url()), logger: Delivery.logger)
            let settings = NotificationSettings(channels: ["a": NotificationChannel(name: "a", kind: .slack(url: "https://hooks.example.com/a"))])
            var stores: [any NotificationOutboxStore] = []
            var outcomes: [Bool] = []
            for _ in 0..<2 {
                let store = try await NotificationOutboxStores.open(config: Delivery.sqliteConfig(Delivery.temporaryDatabase()), logger: Delivery.logger)
                stores.append(store)
                let outbox = NotificationOutbox(store: store, redis: redis, redisPrefix: "test:", settings: { settings }, logger: Delivery.logger)
                outcomes.append(try await outbox.publish(Delivery.event(85, channels: ["a"])))
            }
            #expect(outcomes == [true, false])
            #expect(try await stores[1].report(oldest: 10).oldestPending.isEmpty, "the second gateway stored nothing")
            let ttl = try await redis.send("TTL", "test:notification:" + KeyHash.sha256Hex(Delivery.event(85, channels: []).id))
            #expect((ttl.integer ?? 0) > 39 * 86_400, "the claim lasts 40 days")
            for store in stores { await store.close() }
            await redis.shutdown()
        }
    }

    /// Two gateways on one PostgreSQL both publish every event and both deliver: each arrives once, in order.
    @Test func twoGatewaysOnOnePostgreSQLDeliverEachEventOnce() async throws {
        try await withPostgresServer { server in
            let receivers = NotificationReceivers()
            try await receivers.run { port in
                let settings = Self.hookOnly(port, receivers)
                var config = GatewayConfig()
                config.requestLog.backend = .postgres
                config.postgres.url = server.url
                let stores = [
                    try await NotificationOutboxStores.open(config: config, logger: Delivery.logger),
                    try await NotificationOutboxStores.open(config: config, logger: Delivery.logger),
                ]
                let outboxes = stores.map { NotificationOutbox(store: $0, settings: { settings }, logger: Delivery.logger) }
                let events = (1...12).map { Delivery.event($0, channels: ["hook"]) }
                for event in events {
                    let stored = [try await outboxes[0].publish(event), try await outboxes[1].publish(event)]
                    #expect(stored == [true, false])
                }
                let deliveries = outboxes.map { NotificationDelivery(outbox: $0, pollInterval: .milliseconds(20)) }
                try await Delivery.delivering(deliveries[0]) {
                    try await Delivery.delivering(deliveries[1]) {
                        try await Delivery.waitUntil("all are delivered") { try await outboxes[0].report().channels["hook"]?.delivered == 12 }
                    }
                }
                #expect(receivers.accepted("/hook").map(Delivery.eventID) == events.map(\.id), "once each, in order")
                #expect(try await server.psql("SELECT count(DISTINCT lease_owner), count(*) FROM notification_outbox") == "0|12\n")
                for store in stores { await store.close() }
            }
        }
    }

    /// No secret (webhook secret or URL, Slack URL, routing key, SMTP password) in the admin answer, the table,
    /// the stored errors or the metrics, even when a receiver repeats the secret URL back.
    @Test func secretsStayOutOfTheAdminAnswerAndTheErrors() async throws {
        let receivers = NotificationReceivers()
        try await receivers.run { port in
            let secrets = ["tok-echo-271828", "hook-secret-0123456789", "XXXXsecretXXXX", receivers.routingKey, "smtp-pass-9876"]
            let settings = NotificationSettings(channels: [
                "hook": NotificationChannel(name: "hook", kind: .webhook(url: "http://127.0.0.1:\(port)/echo/tok-echo-271828", secret: secrets[1])),
                "slack": NotificationChannel(name: "slack", kind: .slack(url: "http://127.0.0.1:\(port)/echo/T000/B000/XXXXsecretXXXX")),
                "pager": NotificationChannel(name: "pager", kind: .pagerduty(routingKey: receivers.routingKey, url: "http://127.0.0.1:\(port)/echo/\(receivers.routingKey)")),
                "mail": NotificationChannel(
                    name: "mail", kind: .email(try EmailSettings(smtp: "smtp://gw:smtp-pass-9876@127.0.0.1:1", from: "gw@example.com", to: ["ops@example.com"]))),
            ])
            let metrics = GatewayMetrics()
            let outbox = NotificationOutbox(store: MemoryOutboxStore(), settings: { settings }, logger: Delivery.logger)
            #expect(try await outbox.publish(Delivery.event(90, channels: ["hook", "slack", "pager", "mail"])))
            let json = try await Delivery.delivering(NotificationDelivery(outbox: outbox, metrics: metrics)) {
                try await Delivery.waitUntil("every channel has failed once") {
                    try await outbox.report().channels.values.filter { $0.lastError != nil }.count == 4
                }
                return try await outbox.adminJSON()
            }
            let text = json.serialized(sortedKeys: true) + AdminReport.notifications(json) + String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
            for secret in secrets { #expect(!text.contains(secret), "\(secret) is shown") }
            let channels = json["channels"]?.arrayValue ?? []
            #expect(channels.map { $0["name"]?.stringValue ?? "" } == ["hook", "mail", "pager", "slack"])
            #expect(channels.first?["target"]?.stringValue == "http://127.0.0.1:\(port)/[redacted]")
            #expect(channels.first?["last_error"]?.stringValue == "HTTP 503: no route for [redacted]")
            #expect(channels[1]["target"] == "smtp://gw:[redacted]@127.0.0.1:1 to ops@example.com")
            #expect(json["oldest_pending"]?.arrayValue?.count == 4)
        }
    }
}
