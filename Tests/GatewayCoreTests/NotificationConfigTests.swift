import Testing
@testable import GatewayCore

/// `notifications:` in gateway.yaml: what `check` accepts, and every problem with its position.
@Suite("Notification configuration")
struct NotificationConfigTests {
    /// The file's result, keeping only the problems of `notifications` (a file without keys has a warning of its own).
    static func parse(_ yaml: String, environment: [String: String] = [:]) -> ConfigLoadResult {
        var result = ConfigLoader.parse(yaml: yaml, file: "gateway.yaml", environment: environment)
        result.problems.removeAll { !$0.path.hasPrefix("notifications") }
        return result
    }

    @Test func theIssuesFourChannelsParse() throws {
        let yaml = """
            request_log: {backend: sqlite, path: /tmp/requests.db}
            notifications:
              give_up_after: 36h
              channels:
                ops-hook:   {type: webhook, url: "https://hooks.example.com/in", secret: "${HOOK_SECRET}"}
                ops-slack:  {type: slack, url: "${SLACK_WEBHOOK_URL}"}
                pager:      {type: pagerduty, routing_key: "${PD_ROUTING_KEY}", url: "https://events.pagerduty.com/v2/enqueue"}
                finance:    {type: email, smtp: "smtp://relay:p%40ss@relay.internal:2525", from: "gateway@corp", to: ["finance@corp"], starttls: auto}
            """
        let result = Self.parse(yaml, environment: [
            "HOOK_SECRET": "s3cret", "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XYZ", "PD_ROUTING_KEY": "R0UT1NG",
        ])
        #expect(result.problems.isEmpty, "\(result.problems)")
        let settings = try #require(result.config?.notifications)
        #expect(settings.channelNames == ["ops-hook", "ops-slack", "pager", "finance"])
        #expect(settings.giveUpAfter == .seconds(36 * 3600))
        #expect(settings.channels["ops-hook"]?.kind == .webhook(url: "https://hooks.example.com/in", secret: "s3cret"))
        #expect(settings.channels["ops-slack"]?.redactedTarget == "https://hooks.slack.com/[redacted]")
        #expect(settings.channels["pager"]?.kind == .pagerduty(routingKey: "R0UT1NG", url: NotificationChannel.pagerDutyURL))
        guard case .email(let email) = settings.channels["finance"]?.kind else {
            Issue.record("finance is not an email channel")
            return
        }
        #expect(email.host == "relay.internal" && email.port == 2525 && !email.implicitTLS)
        #expect(email.username == "relay" && email.password == "p@ss")
        #expect(email.to == ["finance@corp"] && email.startTLS == .auto)
        #expect(settings.channels["finance"]?.redactedTarget == "smtp://relay:[redacted]@relay.internal:2525 to finance@corp")
    }

    @Test func pagerDutyDefaultsItsURLAndAnEmailTakesOneAddress() throws {
        let result = Self.parse("""
            notifications:
              channels:
                pager: {type: pagerduty, routing_key: abc}
                mail: {type: email, smtp: "smtps://mail.example.com", from: a@b.c, to: ops@b.c}
            """)
        let channels = try #require(result.config?.notifications.channels)
        #expect(channels["pager"]?.kind == .pagerduty(routingKey: "abc", url: "https://events.pagerduty.com/v2/enqueue"))
        guard case .email(let email) = channels["mail"]?.kind else { throw Mismatch() }
        #expect(email.implicitTLS && email.port == 465 && email.to == ["ops@b.c"])
        #expect(result.warnings.isEmpty, "the default request log is SQLite: the outbox is durable")
    }

    struct Mismatch: Error {}

    @Test func everyMistakeIsReportedWithItsPosition() {
        let yaml = """
            notifications:
              give_up_after: 10s
              colour: red
              channels:
                a: {type: teams, url: "https://x"}
                b: {type: webhook}
                c: {type: slack, url: "ftp://hooks.slack.com/services/T0/B0/SECRETPATH"}
                d: {type: pagerduty, url: "https://events.pagerduty.com/v2/enqueue"}
                e: {type: email, smtp: "http://relay", from: "not-an-address", starttls: sometimes}
                f: {type: webhook, url: "https://x", secrte: y}
                g: {type: email, smtp: "smtp://relay", from: a@b.c, to: []}
                "bad name": {type: slack, url: "https://x"}
            """
        let problems = Self.parse(yaml).problems.map(\.description)
        let expected = [
            "gateway.yaml:2:18: error: notifications.give_up_after: must be at least 1m (a receiver needs time to come back)",
            "gateway.yaml:3:3: error: notifications.colour: unknown key \"colour\"",
            "gateway.yaml:5:15: error: notifications.channels.a.type: invalid value \"teams\" (use webhook, slack, pagerduty or email)",
            "gateway.yaml:6:9: error: notifications.channels.b.url: missing url",
            "gateway.yaml:7:27: error: notifications.channels.c.url: invalid URL \"ftp://hooks.slack.com/[redacted]\" (must start with https:// or http://)",
            "gateway.yaml:8:9: error: notifications.channels.d.routing_key: missing routing_key",
            "gateway.yaml:9:28: error: notifications.channels.e.smtp: invalid SMTP URL \"http://relay\": the scheme must be smtp:// or smtps://",
            "gateway.yaml:9:50: error: notifications.channels.e.from: invalid mail address \"not-an-address\" (expected name@domain)",
            "gateway.yaml:9:78: error: notifications.channels.e.starttls: invalid value \"sometimes\" (use auto, always or never)",
            "gateway.yaml:9:8: error: notifications.channels.e.to: missing to (the recipients' addresses)",
            "gateway.yaml:10:42: error: notifications.channels.f.secrte: unknown key \"secrte\" (did you mean \"secret\"?)",
            "gateway.yaml:11:61: error: notifications.channels.g.to: needs at least one address",
            "gateway.yaml:12:5: error: notifications.channels.bad name: invalid channel name \"bad name\" (use letters, digits, \"-\", \"_\" and \".\")",
        ]
        for line in expected { #expect(problems.contains(line), "missing: \(line)\nin: \(problems.joined(separator: "\n"))") }
        #expect(!problems.joined().contains("SECRETPATH"), "a Slack URL's path is its secret")
    }

    @Test func anOutboxInMemoryIsAWarning() {
        let result = Self.parse("""
            request_log: {backend: off}
            notifications:
              channels:
                s: {type: slack, url: "https://hooks.slack.com/services/T/B/C"}
            """)
        #expect(result.config != nil)
        #expect(result.warnings.map(\.description) == [
            "gateway.yaml:2:1: warning: notifications: request_log.backend is off: the notification outbox is kept in memory, so events not yet delivered are lost at a restart",
        ])
    }
}
