import Crypto
import Foundation
import Hummingbird
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
@testable import GatewayCore

/// In-process receivers of notifications on one free loopback port, each checking what the real one checks:
/// - `/hook/<token>`: a webhook that verifies `X-Gateway-Signature-256` against `secret` (401 when wrong or missing);
/// - `/slack/<token>`: a Slack incoming webhook (400 `invalid_payload` for bad JSON, 400 `no_text` without `text`);
/// - `/pagerduty`: PagerDuty Events API v2 (400 `Event object is invalid` with the errors, else 202 like the real one).
///
/// `down` makes every receiver answer 503 while it returns true (an outage); `echo` paths answer 503 with the
/// request's path in the body (a receiver that repeats a secret back).
final class NotificationReceivers: Sendable {
    struct Received: Sendable {
        var path: String
        var headers: [String: String]
        var body: String
        var json: JSON? { try? JSON.parse(body) }
        /// Whether the receiver accepted it (2xx).
        var accepted: Bool
        var status: Int
    }

    let secret: String
    let routingKey: String
    private let log = NIOLockedValueBox<[Received]>([])
    let down: @Sendable () -> Bool

    init(secret: String = "hook-secret-0123456789", routingKey: String = "R0UT1NGKEY0123456789ABCDEF012345", down: @escaping @Sendable () -> Bool = { false }) {
        self.secret = secret
        self.routingKey = routingKey
        self.down = down
    }

    /// Every request so far, in arrival order.
    var received: [Received] { log.withLockedValue { $0 } }
    /// The accepted requests to paths starting with `prefix`.
    func accepted(_ prefix: String) -> [Received] { received.filter { $0.accepted && $0.path.hasPrefix(prefix) } }

    /// Runs the receivers while `body` runs with their port.
    func run<Result: Sendable>(_ body: @Sendable (Int) async throws -> Result) async throws -> Result {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let responder = CallbackResponder<BasicRequestContext> { request, _ in try await self.respond(to: request) }
        let app = Application(
            responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: FakeUpstream.quietLogger)
        // Stopped gracefully, not cancelled: a connection a client's pool was still opening when the test ended
        // would otherwise reach a server whose accept loop is gone (NIO traps on the unconsumed channel).
        let services = ServiceGroup(configuration: .init(services: [app], logger: FakeUpstream.quietLogger))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            var ports = stream.makeAsyncIterator()
            let port = await ports.next() ?? 0
            do {
                let result = try await body(port)
                await services.triggerGracefulShutdown()
                return result
            } catch {
                await services.triggerGracefulShutdown()
                throw error
            }
        }
    }

    private func respond(to request: Request) async throws -> Response {
        var request = request
        let bytes = Array(try await request.collectBody(upTo: 1 << 20).readableBytesView)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
        let path = request.uri.path
        let (status, answer) = down() ? (503, "down for maintenance")
            : path.hasPrefix("/echo") ? (503, "no route for \(path)")
            : path.hasPrefix("/hook") ? checkWebhook(bytes, headers)
            : path.hasPrefix("/slack") ? checkSlack(bytes)
            : path.hasPrefix("/pagerduty") ? checkPagerDuty(bytes)
            : (404, "not found")
        log.withLockedValue {
            $0.append(Received(path: path, headers: headers, body: String(decoding: bytes, as: UTF8.self), accepted: status / 100 == 2, status: status))
        }
        return Response(status: .init(code: status), body: .init(byteBuffer: ByteBuffer(string: answer)))
    }

    private func checkWebhook(_ body: [UInt8], _ headers: [String: String]) -> (Int, String) {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        let expected = "sha256=" + code.map { String(format: "%02x", $0) }.joined()
        guard headers["x-gateway-signature-256"] == expected else { return (401, "bad signature") }
        guard let json = try? JSON.parse(body), json["id"]?.stringValue != nil else { return (400, "no id") }
        return (200, "ok")
    }

    private func checkSlack(_ body: [UInt8]) -> (Int, String) {
        guard let json = try? JSON.parse(body), json.objectValue != nil else { return (400, "invalid_payload") }
        guard let text = json["text"]?.stringValue, !text.isEmpty else { return (400, "no_text") }
        if let blocks = json["blocks"] {
            guard let list = blocks.arrayValue, list.count <= 50, list.allSatisfy({ $0["type"]?.stringValue != nil }) else {
                return (400, "invalid_blocks")
            }
        }
        return (200, "ok")
    }

    /// The Events API v2 rules: routing_key (32 characters), event_action, dedup_key ≤ 255; for trigger a payload
    /// with summary (≤ 1024), source and severity (critical, error, warning, info).
    private func checkPagerDuty(_ body: [UInt8]) -> (Int, String) {
        guard let json = try? JSON.parse(body) else { return (400, #"{"status":"invalid event","message":"Event object is invalid"}"#) }
        var errors: [String] = []
        if json["routing_key"]?.stringValue?.count != 32 { errors.append("'routing_key' must be 32 characters") }
        let action = json["event_action"]?.stringValue ?? ""
        if !["trigger", "acknowledge", "resolve"].contains(action) { errors.append("'event_action' is invalid") }
        if let key = json["dedup_key"], (key.stringValue?.count ?? 256) > 255 { errors.append("'dedup_key' is invalid") }
        if action != "trigger", json["dedup_key"]?.stringValue == nil { errors.append("'dedup_key' is required") }
        if action == "trigger" {
            let payload = json["payload"]
            let summary = payload?["summary"]?.stringValue ?? ""
            if summary.isEmpty || summary.count > 1024 { errors.append("'payload.summary' is invalid") }
            if (payload?["source"]?.stringValue ?? "").isEmpty { errors.append("'payload.source' is missing") }
            if !["critical", "error", "warning", "info"].contains(payload?["severity"]?.stringValue ?? "") {
                errors.append("'payload.severity' is invalid")
            }
            if let timestamp = payload?["timestamp"], timestamp.stringValue.flatMap({ ISO8601DateFormatter().date(from: $0) }) == nil {
                errors.append("'payload.timestamp' is invalid")
            }
        }
        guard errors.isEmpty else {
            let answer: JSON = ["status": "invalid event", "message": "Event object is invalid", "errors": .array(errors.map(JSON.string))]
            return (400, answer.serialized())
        }
        let answer: JSON = ["status": "success", "message": "Event processed", "dedup_key": json["dedup_key"] ?? .null]
        return (202, answer.serialized())
    }
}

/// A clock for the outbox that a test moves: `sleep` moves it forward at once (after a real millisecond, so the
/// loop that sleeps does not hold a core), and `advance` moves it by hand.
final class ManualNotificationClock: NotificationClock {
    private let current: NIOLockedValueBox<Date>

    init(start: Date = Date(timeIntervalSince1970: 1_796_000_000)) {
        current = NIOLockedValueBox(start)
    }

    func now() -> Date { current.withLockedValue { $0 } }

    func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: .milliseconds(1))
        advance(duration)
    }

    func advance(_ duration: Duration) {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        current.withLockedValue { $0 += seconds }
    }
}
