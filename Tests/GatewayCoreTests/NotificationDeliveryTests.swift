import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import GatewayCore

/// Delivery to in-process receivers that check what the real ones check: signatures, Slack's and PagerDuty's
/// schemas, outages (with a clock that runs ten minutes in a second), order and once-only delivery.
@Suite("Notification delivery", .timeLimit(.minutes(2)))
struct NotificationDeliveryTests {
    static let logger = FakeUpstream.quietLogger

    static let windowStart = Date(timeIntervalSince1970: 1_796_000_000)

    static func event(_ number: Int, channels: [String], action: NotificationEvent.Action = .trigger, summary: String? = nil) -> NotificationEvent {
        NotificationEvent(
            id: "budget.threshold:customer-daily:customer=acme:2026-12-07:\(number)", type: "budget.threshold", action: action,
            budget: "customer-daily", bucket: ["customer": "acme", "feature": "chat"], threshold: number, spentUSD: 4.25,
            limitUSD: 5, windowStart: windowStart, windowEnd: windowStart + 86_400, occurredAt: windowStart + 3600,
            channels: channels, summary: summary ?? "customer-daily at \(number) % for customer=acme: $4.25 of $5.00")
    }

    /// A webhook, a Slack and a PagerDuty channel on `receivers`' port.
    static func settings(port: Int, receivers: NotificationReceivers, secret: String? = nil) -> NotificationSettings {
        NotificationSettings(channels: [
            "hook": NotificationChannel(
                name: "hook", kind: .webhook(url: "http://127.0.0.1:\(port)/hook/tok-3141592653", secret: secret ?? receivers.secret)),
            "slack": NotificationChannel(name: "slack", kind: .slack(url: "http://127.0.0.1:\(port)/slack/T000/B000/XXXXsecretXXXX")),
            "pager": NotificationChannel(
                name: "pager", kind: .pagerduty(routingKey: receivers.routingKey, url: "http://127.0.0.1:\(port)/pagerduty")),
        ])
    }

    static func temporaryDatabase() -> String {
        NSTemporaryDirectory() + "outbox-\(UUID().uuidString.prefix(8))/requests.db"
    }

    static func sqliteConfig(_ path: String) -> GatewayConfig {
        var config = GatewayConfig()
        config.requestLog.backend = .sqlite
        config.requestLog.path = path
        return config
    }

    /// Runs `delivery` while `body` runs, then stops it.
    static func delivering<Result: Sendable>(_ delivery: NotificationDelivery, _ body: () async throws -> Result) async throws -> Result {
        let task = Task { try await delivery.run() }
        defer { task.cancel() }
        let result = try await body()
        task.cancel()
        _ = await task.result
        return result
    }

    /// Waits (in real time) until `condition` holds.
    static func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting until \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: - Payloads

    @Test func theWebhookBodyIsSignedAndCarriesTheIssuesFields() async throws {
        let receivers = NotificationReceivers()
        try await receivers.run { port in
            let sender = NotificationSender(http: HTTPClient.shared, timeout: .seconds(10))
            let settings = Self.settings(port: port, receivers: receivers)
            let event = Self.event(85, channels: ["hook"])
            #expect(await sender.send(event, via: settings.channels["hook"]!) == .delivered)
            let received = try #require(receivers.accepted("/hook").first)
            let body = try #require(received.json)
            #expect(Set(body.objectValue?.keys.map { $0 } ?? []) == [
                "id", "type", "action", "budget", "bucket", "threshold", "spent_usd", "limit_usd", "window", "occurred_at",
            ])
            #expect(body["id"]?.stringValue == event.id)
            #expect(body["bucket"] == ["customer": "acme", "feature": "chat"])
            #expect(body["threshold"]?.intValue == 85 && body["spent_usd"]?.doubleValue == 4.25 && body["limit_usd"]?.doubleValue == 5)
            #expect(body["window"] == ["start": "2026-11-30T00:53:20Z", "end": "2026-12-01T00:53:20Z"])
            #expect(body["occurred_at"]?.stringValue == "2026-11-30T01:53:20Z")
            #expect(received.headers["x-gateway-signature-256"] == NotificationEvent.signature(of: Array(received.body.utf8), secret: receivers.secret))
            #expect(received.headers["x-gateway-event-id"] == event.id)

            // The receiver checks the signature: a gateway with another secret is turned away (and will retry).
            let wrong = Self.settings(port: port, receivers: receivers, secret: "not-the-secret")
            #expect(await sender.send(event, via: wrong.channels["hook"]!) == .retry("HTTP 401: bad signature"))
        }
    }

    @Test func slackAndPagerDutyGetTheirDocumentedShapes() async throws {
        let receivers = NotificationReceivers()
        try await receivers.run { port in
            let sender = NotificationSender(http: HTTPClient.shared, timeout: .seconds(10))
            let settings = Self.settings(port: port, receivers: receivers)
            // The fakes refuse what the real services refuse.
            var junk = HTTPClientRequest(url: "http://127.0.0.1:\(port)/slack/T000/B000/x")
            junk.method = .POST
            junk.body = .bytes(.init(string: #"{"blocks": []}"#))
            #expect(try await HTTPClient.shared.execute(junk, timeout: .seconds(5)).status.code == 400)
            junk.url = "http://127.0.0.1:\(port)/pagerduty"
            junk.body = .bytes(.init(string: #"{"routing_key": "short", "event_action": "trigger", "payload": {"summary": "x"}}"#))
            #expect(try await HTTPClient.shared.execute(junk, timeout: .seconds(5)).status.code == 400)

            let long = String(repeating: "spend is up ", count: 200)
            let trigger = Self.event(100, channels: ["slack", "pager"], summary: long)
            #expect(await sender.send(trigger, via: settings.channels["slack"]!) == .delivered)
            #expect(await sender.send(trigger, via: settings.channels["pager"]!) == .delivered)
            var resolve = Self.event(100, channels: ["pager"], action: .resolve)
            resolve.id += ":resolve"
            #expect(await sender.send(resolve, via: settings.channels["pager"]!) == .delivered)

            let slack = try #require(receivers.accepted("/slack").first?.json)
            #expect(slack["text"]?.stringValue == long)
            #expect(slack["blocks"]?.arrayValue?.first?["type"] == "section")
            let pager = receivers.accepted("/pagerduty")
            #expect(pager.map(\.status) == [202, 202], "PagerDuty answers 202 Accepted")
            let opened = try #require(pager.first?.json), closed = try #require(pager.last?.json)
            #expect(opened["event_action"] == "trigger" && closed["event_action"] == "resolve")
            #expect(opened["dedup_key"] == closed["dedup_key"], "the resolve closes the incident its trigger opened")
            #expect(opened["dedup_key"]?.stringValue == "llm-gateway/budget.threshold/customer-daily/customer=acme,feature=chat")
            #expect(opened["payload"]?["summary"]?.stringValue?.count == 1024)
            #expect(opened["payload"]?["severity"] == "error" && opened["payload"]?["source"] == "llm-gateway")
            #expect(opened["payload"]?["custom_details"]?["id"]?.stringValue == trigger.id)
        }
    }

    // MARK: - Outages, order, once

    /// The receivers are down for ten minutes (of the test's clock): every event arrives after they return, within
    /// a minute of it, in order, once, and every attempt carried the same id.
    @Test func aTenMinuteOutageDeliversEverythingAfterwardsInOrderOnce() async throws {
        let clock = ManualNotificationClock()
        let back = clock.now() + 600
        let receivers = NotificationReceivers { clock.now() < back }
        let path = Self.temporaryDatabase()
        try await receivers.run { port in
            let settings = Self.settings(port: port, receivers: receivers)
            let store = try await NotificationOutboxStores.open(config: Self.sqliteConfig(path), logger: Self.logger)
            let outbox = NotificationOutbox(store: store, settings: { settings }, clock: clock, logger: Self.logger)
            let events = (1...5).map { Self.event($0, channels: ["hook", "slack", "pager"]) }
            for event in events { #expect(try await outbox.publish(event)) }
            let metrics = GatewayMetrics()
            let delivery = NotificationDelivery(outbox: outbox, metrics: metrics, attemptTimeout: .seconds(5))
            try await Self.delivering(delivery) {
                try await Self.waitUntil("every event is delivered on every channel") {
                    try await outbox.report().channels.values.map(\.delivered) == [5, 5, 5]
                }
            }
            for prefix in ["/hook", "/slack", "/pagerduty"] {
                let attempts = receivers.received.filter { $0.path.hasPrefix(prefix) }
                #expect(attempts.count > 5, "\(prefix): the outage was met")
                #expect(attempts.filter { !$0.accepted }.allSatisfy { Self.eventID($0) == events[0].id }, "\(prefix): nothing overtook the first event")
                #expect(receivers.accepted(prefix).map(Self.eventID) == events.map(\.id), "\(prefix): in order, once each")
            }
            let report = try await outbox.report()
            #expect(report.channels["hook"]?.delivered == 5 && report.channels["hook"]?.pending == 0)
            #expect(report.channels["slack"]?.lastError == "HTTP 503: down for maintenance")
            let exposition = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
            #expect(exposition.contains(#"llm_gateway_notifications_total{channel="hook",outcome="delivered"} 5"#))
            #expect(exposition.contains(#"llm_gateway_notifications_total{channel="hook",outcome="retried"}"#))
            await store.close()
        }
        // Back within a minute of the receivers' return: the backoff never waits longer.
        #expect(clock.now() < back + 60 + 5)
    }

    static func eventID(_ received: NotificationReceivers.Received) -> String? {
        let json = received.json
        return json?["id"]?.stringValue ?? json?["payload"]?["custom_details"]?["id"]?.stringValue
            ?? json?["blocks"]?.arrayValue?.last?["elements"]?.arrayValue?.first?["text"]?.stringValue.map { String($0.dropFirst("event ".count)) }
    }

    @Test func aRefusedEventFailsAtOnceAndTheNextOneGoesOut() async throws {
        let receivers = NotificationReceivers()
        try await receivers.run { port in
            let clock = ManualNotificationClock()
            // A routing key PagerDuty refuses: 400 for every event, no retry.
            let settings = NotificationSettings(channels: [
                "pager": NotificationChannel(name: "pager", kind: .pagerduty(routingKey: "too-short", url: "http://127.0.0.1:\(port)/pagerduty")),
            ])
            let outbox = NotificationOutbox(store: MemoryOutboxStore(), settings: { settings }, clock: clock, logger: Self.logger)
            #expect(try await outbox.publish(Self.event(1, channels: ["pager"])))
            #expect(try await outbox.publish(Self.event(2, channels: ["pager"])))
            try await Self.delivering(NotificationDelivery(outbox: outbox)) {
                try await Self.waitUntil("both are given up") { try await outbox.report().channels["pager"]?.failed == 2 }
            }
            #expect(receivers.received.count == 2, "one attempt each")
            #expect(try await outbox.report().channels["pager"]?.lastError?.hasPrefix("HTTP 400: {") == true)
        }
    }

    @Test func aReceiverDownLongerThanGiveUpAfterFailsTheEvent() async throws {
        let receivers = NotificationReceivers { true }
        try await receivers.run { port in
            let clock = ManualNotificationClock()
            var settings = Self.settings(port: port, receivers: receivers)
            settings.channels = settings.channels.filter { $0.key == "hook" }
            settings.giveUpAfter = .seconds(3600)
            let outbox = NotificationOutbox(store: MemoryOutboxStore(), settings: { [settings] in settings }, clock: clock, logger: Self.logger)
            #expect(try await outbox.publish(Self.event(1, channels: ["hook"])))
            let start = clock.now()
            try await Self.delivering(NotificationDelivery(outbox: outbox)) {
                try await Self.waitUntil("it is given up") { try await outbox.report().channels["hook"]?.failed == 1 }
            }
            let elapsed = clock.now().timeIntervalSince(start)
            #expect(elapsed >= 3600 && elapsed < 3600 + 120, "retried for give_up_after, then given up")
            #expect(receivers.received.count >= 60, "at least one attempt a minute")
        }
    }
}
