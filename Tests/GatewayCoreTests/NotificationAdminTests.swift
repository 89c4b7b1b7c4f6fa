import Foundation
import Testing
@testable import GatewayCore

/// The gateway as `serve` runs it: `Gateway.run` delivers what `gateway.notifications` publishes, and the admin
/// socket and `llm-gateway ctl notifications` show the outbox without a secret.
@Suite("Notifications in the running gateway", .timeLimit(.minutes(2)))
struct NotificationAdminTests {
    typealias Delivery = NotificationDeliveryTests

    @Test func theGatewayDeliversAndTheAdminSocketShowsTheOutbox() async throws {
        let receivers = NotificationReceivers()
        try await receivers.run { port in
            let folder = NSTemporaryDirectory() + "notify-gw-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let socket = folder + "/admin.sock"
            let yaml = """
                server: {listen: "127.0.0.1:0"}
                admin: {socket: "\(socket)"}
                request_log: {backend: sqlite, path: "\(folder)/requests.db"}
                notifications:
                  channels:
                    hook: {type: webhook, url: "http://127.0.0.1:\(port)/hook/tok-3141592653", secret: "\(receivers.secret)"}
                    slack: {type: slack, url: "http://127.0.0.1:\(port)/echo/T000/B000/XXXXsecretXXXX"}
                """
            let config = try #require(ConfigLoader.parse(yaml: yaml, file: "gateway.yaml", environment: [:]).config)
            let gateway = try Gateway(config: config, logger: Delivery.logger)
            let (started, running) = AsyncStream<Void>.makeStream()
            let task = Task { try await gateway.run { _ in running.yield() } }
            defer { task.cancel() }
            var iterator = started.makeAsyncIterator()
            await iterator.next()

            let event = Delivery.event(85, channels: ["hook", "slack"])
            #expect(try await gateway.notifications.publish(event))
            #expect(try await !gateway.notifications.publish(event))
            try await Delivery.waitUntil("the webhook has it and Slack's attempt failed") {
                let report = try await gateway.notifications.report()
                return report.channels["hook"]?.delivered == 1 && report.channels["slack"]?.lastError != nil
            }

            let answer = try await AdminClient(socketPath: socket).call(.get, "/notifications")
            #expect(answer.status == 200)
            let json = try JSON.parse(answer.body)
            #expect(json["backend"] == "sqlite")
            let channels = json["channels"]?.arrayValue ?? []
            let hook = try #require(channels.first { $0["name"] == "hook" })
            let slack = try #require(channels.first { $0["name"] == "slack" })
            #expect(hook["delivered"]?.intValue == 1 && hook["pending"]?.intValue == 0)
            #expect(slack["pending"]?.intValue == 1 && slack["failing"]?.intValue == 1)
            #expect(slack["last_error"] == "HTTP 503: no route for [redacted]")
            #expect(json["oldest_pending"]?.arrayValue?.first?["id"]?.stringValue == event.id)

            let table = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["ctl", "notifications", "--socket", socket])
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.hasPrefix("CHANNEL"))
            #expect(table.stdout.contains("OLDEST PENDING"))
            let asJSON = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["ctl", "notifications", "--json", "--socket", socket])
            #expect(try JSON.parse(asJSON.stdout)["channels"]?.arrayValue?.count == 2)
            let metrics = try await AdminClient(socketPath: socket).call(.get, "/metrics").body
            #expect(metrics.contains(#"llm_gateway_notifications_total{channel="hook",outcome="delivered"} 1"#))
            #expect(metrics.contains(#"llm_gateway_notifications_total{channel="slack",outcome="retried"}"#))
            for text in [answer.body, table.stdout, asJSON.stdout, metrics] {
                for secret in ["tok-3141592653", "XXXXsecretXXXX", receivers.secret] { #expect(!text.contains(secret), "\(secret) is shown") }
            }
            task.cancel()
            _ = await task.result
        }
    }
}
