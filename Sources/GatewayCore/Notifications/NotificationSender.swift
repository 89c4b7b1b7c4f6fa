import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// What one delivery attempt came to.
public enum DeliveryResult: Sendable, Equatable {
    case delivered
    /// Worth another try later (network, timeout, 5xx, 408, 429, a receiver or credentials an operator can fix).
    case retry(String)
    /// The receiver refuses this event itself (a 4xx such as 400, 410, 413, 422; a mailbox the relay rejects):
    /// the same bytes would be refused again, and the channel's later events wait behind it.
    case refused(String)
}

/// Sends an event to one channel: webhook, Slack, PagerDuty over one shared `HTTPClient`, email over SMTP.
///
/// Receivers are untrusted: every attempt is bounded in time (`timeout`) and in what is read back (`maxAnswerBytes`),
/// and what is kept of an answer or an error is one line without the channel's secrets.
public struct NotificationSender: Sendable {
    let http: HTTPClient
    /// Bound on one attempt, from connecting to the answer's last byte (an SMTP conversation included).
    let timeout: Duration
    static let maxAnswerBytes = 64 * 1024
    /// Longest error text kept in the outbox and shown by `ctl notifications`.
    static let maxErrorLength = 300

    /// - Parameter http: the one client all HTTP channels share (created and shut down by `NotificationDelivery`).
    public init(http: HTTPClient, timeout: Duration = .seconds(15)) {
        self.http = http
        self.timeout = timeout
    }

    /// One attempt to deliver `event` through `channel`.
    public func send(_ event: NotificationEvent, via channel: NotificationChannel) async -> DeliveryResult {
        let result: DeliveryResult
        switch channel.kind {
        case .webhook(let url, let secret):
            let body = event.webhookBody
            var headers: [(String, String)] = [("X-Gateway-Event-Id", Self.headerSafe(event.id))]
            if let secret { headers.append(("X-Gateway-Signature-256", NotificationEvent.signature(of: body, secret: secret))) }
            result = await post(body, to: url, headers: headers)
        case .slack(let url):
            result = await post(SlackMessage.body(for: event), to: url, headers: [])
        case .pagerduty(let routingKey, let url):
            result = await post(PagerDutyEvent.body(for: event, routingKey: routingKey), to: url, headers: [])
        case .email(let settings):
            result = await SMTPClient(settings: settings, timeout: timeout).send(MailMessage(event: event, settings: settings))
        }
        switch result {
        case .delivered: return .delivered
        case .retry(let text): return .retry(Self.sanitised(text, for: channel))
        case .refused(let text): return .refused(Self.sanitised(text, for: channel))
        }
    }

    // MARK: - HTTP

    private func post(_ body: [UInt8], to url: String, headers: [(String, String)]) async -> DeliveryResult {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "llm-gateway/\(GatewayVersion.current)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let http = self.http, timeout = self.timeout, prepared = request
        do {
            let (status, answer) = try await withDeadline(.now + timeout) {
                let response = try await http.execute(prepared, timeout: TimeAmount(timeout))
                var answer = ByteBuffer()
                // What a receiver says beyond the bound is left unread (the connection is then closed).
                for try await part in response.body {
                    var part = part
                    answer.writeBuffer(&part)
                    if answer.readableBytes >= Self.maxAnswerBytes { break }
                }
                return (response.status, String(buffer: answer).prefix(200))
            }
            return Self.classify(status, answer: String(answer))
        } catch is DeadlineExceeded {
            return .retry("no complete answer within \(timeout)")
        } catch {
            return .retry(Self.describe(error))
        }
    }

    /// 2xx delivered; 408, 429, 5xx, and 401, 403, 404 (credentials or a URL an operator fixes by a reload) retried;
    /// any other 4xx refuses the event itself; anything else (a redirect, which is not followed) retried.
    static func classify(_ status: HTTPResponseStatus, answer: String) -> DeliveryResult {
        let text = "HTTP \(status.code)" + (answer.isEmpty ? "" : ": \(answer)")
        switch status.code {
        case 200..<300: return .delivered
        case 401, 403, 404, 408, 429: return .retry(text)
        case 400..<500: return .refused(text)
        default: return .retry(text)
        }
    }

    /// An error as one short line: its type and description, which AsyncHTTPClient and NIO keep free of URLs' paths.
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        return "\(type(of: error)): \(error)"
    }

    /// `text` on one line, without the channel's secrets or control characters, at most `maxErrorLength` characters.
    static func sanitised(_ text: String, for channel: NotificationChannel) -> String {
        let line = String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) })
        let redacted = channel.redactingSecrets(line)
        return redacted.count > maxErrorLength ? String(redacted.prefix(maxErrorLength)) + "…" : redacted
    }

    /// A header value without line breaks.
    static func headerSafe(_ text: String) -> String {
        String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.map(Character.init))
    }
}

// MARK: - Payloads

/// A Slack incoming webhook's message: `text` (the notification and fallback) plus Block Kit `blocks`.
enum SlackMessage {
    static func body(for event: NotificationEvent) -> [UInt8] {
        var facts = ["*\(event.type)*" + (event.action == .resolve ? " (resolved)" : "")]
        if let budget = event.budget { facts.append("budget `\(budget)`") }
        if !event.bucket.isEmpty {
            facts.append(event.bucket.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        }
        var spend = "spent $" + String(format: "%.2f", event.spentUSD)
        if let limit = event.limitUSD { spend += " of $" + String(format: "%.2f", limit) }
        facts.append(spend)
        let json: JSON = [
            "text": .string(event.summary),
            "blocks": [
                ["type": "section", "text": ["type": "mrkdwn", "text": .string(slackEscaped(event.summary))]],
                ["type": "context", "elements": [["type": "mrkdwn", "text": .string(slackEscaped(facts.joined(separator: " · ")))]]],
                ["type": "context", "elements": [["type": "plain_text", "text": .string("event \(event.id)")]]],
            ],
        ]
        return json.bytes(sortedKeys: true)
    }

    /// Slack's three control characters escaped, as its formatting rules ask.
    static func slackEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}

/// A PagerDuty Events API v2 event: `trigger` or `resolve` under the event's stable `dedup_key`.
enum PagerDutyEvent {
    static func body(for event: NotificationEvent, routingKey: String) -> [UInt8] {
        var json: JSON = [
            "routing_key": .string(routingKey),
            "event_action": .string(event.action.rawValue),
            "dedup_key": .string(event.dedupKey),
        ]
        if event.action == .trigger {
            json["payload"] = [
                "summary": .string(event.summary.count > 1024 ? String(event.summary.prefix(1023)) + "…" : event.summary),
                "source": "llm-gateway",
                "severity": .string(event.severity),
                "timestamp": .string(NotificationEvent.iso8601(event.occurredAt)),
                "component": .string(event.budget ?? "spend"),
                "class": .string(event.type),
                "custom_details": event.webhookJSON,
            ]
        }
        return json.bytes(sortedKeys: true)
    }
}
