import Hummingbird
import Logging
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
@testable import GatewayCore

/// An in-process stand-in for a provider's API, on a free loopback port.
///
/// It applies the provider's rules (`Fake…Rules`): it refuses what the real API refuses and answers the rest.
/// Model names steer it: `status-NNN` answers that status, `stream-truncate` cuts a stream short,
/// `slow-head` waits 5 s before answering (well past every first-byte timeout the tests set, even on a loaded machine), `slow-ok` 400 ms, `stall-stream` stops sending after two events, `slow-stream` sends an event every 300 ms, `stream-empty` answers
/// 200 and ends the stream at once. `failNext` scripts failures for the next requests.
final class FakeUpstream: Sendable {
    enum Kind: String, Sendable { case openai, anthropic, gemini }

    struct Recorded: Sendable {
        var path: String
        var headers: [String: String]
        var body: JSON?
        /// The body's bytes as they arrived.
        var raw: [UInt8] = []
    }

    let kind: Kind
    let key: String
    private let recorded = NIOLockedValueBox<[Recorded]>([])
    private let cancelled = NIOLockedValueBox(0)
    private let scriptedFailures = NIOLockedValueBox<[(status: Int, retryAfter: String?)]>([])
    /// The `/v1/responses` answers kept for `previous_response_id` (those not made with `store: false`).
    let storedResponses = FakeOpenAIResponses.Store()

    /// Makes the next `count` requests fail with `status` (and `Retry-After`, when given), whatever they ask for.
    func failNext(_ count: Int, status: Int, retryAfter: String? = nil) {
        scriptedFailures.withLockedValue { $0 += Array(repeating: (status, retryAfter), count: count) }
    }

    /// Streams that ended because the gateway went away before they were complete.
    var cancelledStreams: Int { cancelled.withLockedValue { $0 } }

    init(kind: Kind, key: String = "sk-fake-\(RandomID.make(prefix: "", length: 12))") {
        self.kind = kind
        self.key = key
    }

    /// Requests received so far.
    var requests: [Recorded] { recorded.withLockedValue { $0 } }

    /// The `base_url` to configure for this fake.
    func baseURL(port: Int) -> String {
        kind == .openai ? "http://127.0.0.1:\(port)/v1" : "http://127.0.0.1:\(port)"
    }

    func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            try await self.respond(to: request)
        }
        return Application(
            responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: Self.quietLogger)
    }

    private func respond(to request: Request) async throws -> Response {
        var request = request
        let body = Array(try await request.collectBody(upTo: 64 * 1024 * 1024).readableBytesView)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
        let path = request.uri.description
        let json = try? JSON.parse(body)
        recorded.withLockedValue { $0.append(Recorded(path: path, headers: headers, body: json, raw: body)) }

        if let scripted = scriptedFailures.withLockedValue({ $0.isEmpty ? nil : $0.removeFirst() }) {
            var response = Self.json(["error": ["message": .string("Scripted failure \(scripted.status)"), "type": "server_error", "code": .int(Int64(scripted.status))]], status: scripted.status)
            if let retryAfter = scripted.retryAfter { response.headers[HTTPField.Name("Retry-After")!] = retryAfter }
            return response
        }
        let method = request.method.rawValue
        if kind == .openai, path == FakeOpenAIResponses.path {
            if let rejection = FakeOpenAIResponses.check(method: method, headers: headers, body: body, expectedKey: key, store: storedResponses) {
                return Self.json(rejection.body, status: rejection.status)
            }
            let json = json ?? [:]
            if let model = json["model"]?.stringValue, model.hasPrefix("status-"), let status = Int(model.dropFirst(7)) {
                return Self.json(FakeOpenAIRules.error(status, "Fake failure \(status)", type: "server_error").body, status: status)
            }
            let answer = FakeOpenAIResponses.response(for: json)
            storedResponses.remember(answer, request: json)
            guard json["stream"]?.boolValue == true else { return Self.json(answer) }
            return eventStream(FakeOpenAIResponses.streamEvents(of: answer), answering: request)
        }
        if let answer = try await embeddingsAnswer(method: method, path: path, headers: headers, json: json) { return answer }
        let rejection: (status: Int, body: JSON)?
        switch kind {
        case .openai: rejection = FakeOpenAIRules.check(method: method, path: path, headers: headers, body: body, expectedKey: key)
        case .anthropic: rejection = FakeAnthropicRules.check(method: method, path: path, headers: headers, body: body, expectedKey: key)
        case .gemini: rejection = FakeGeminiRules.check(method: method, path: path, headers: headers, body: body, expectedKey: key)
        }
        if let rejection { return Self.json(rejection.body, status: rejection.status) }
        guard let json else { return Self.json(["error": "unreadable"], status: 400) }
        if kind == .anthropic, path == FakeAnthropicRules.countTokensPath { return Self.json(FakeAnthropicRules.tokenCount(for: json)) }

        let model: String
        let stream: Bool
        switch kind {
        case .gemini:
            let route = FakeGeminiRules.route(path: path)
            model = route?.model ?? ""
            stream = route?.stream ?? false
        default:
            model = json["model"]?.stringValue ?? ""
            stream = json["stream"]?.boolValue ?? false
        }
        if kind == .openai, model.hasPrefix("status-"), let status = Int(model.dropFirst(7)) {
            return Self.json(FakeOpenAIRules.error(status, "Fake failure \(status)", type: "server_error").body, status: status)
        }
        if model == "slow-head" { try await Task.sleep(for: .seconds(5)) }
        if model == "slow-ok" { try await Task.sleep(for: .milliseconds(400)) }
        if model == "stream-empty" {
            return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: ResponseBody { writer in try await writer.finish(nil) })
        }
        guard stream else {
            let answer: JSON
            switch kind {
            case .openai: answer = FakeOpenAIRules.response(for: json)
            case .anthropic: answer = FakeAnthropicRules.response(for: json)
            case .gemini: answer = FakeGeminiRules.response(for: json, model: model)
            }
            return Self.json(answer)
        }
        let events: [ServerSentEvent]
        switch kind {
        case .openai: events = FakeOpenAIRules.streamEvents(for: json)
        case .anthropic: events = FakeAnthropicRules.streamEvents(for: json)
        case .gemini: events = FakeGeminiRules.streamEvents(for: json, model: model)
        }
        let stall = model == "stall-stream"
        let slow = model == "slow-stream"
        return eventStream(events, answering: request) { index in
            if stall && index == 2 { try await Task.sleep(for: .seconds(30)) }
            if slow && index > 0 { try await Task.sleep(for: .milliseconds(300)) }
        }
    }

    /// A `text/event-stream` response writing `events`, each after `pause(index)`; a client that leaves cancels it
    /// (counted in `cancelled`).
    private func eventStream(
        _ events: [ServerSentEvent], answering request: Request, pause: @escaping @Sendable (Int) async throws -> Void = { _ in }
    ) -> Response {
        let requestBody = request.body
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream"],
            body: ResponseBody { writer in
                do {
                    try await requestBody.consumeWithCancellationOnInboundClose { _ in
                        for (index, event) in events.enumerated() {
                            try await pause(index)
                            var buffer = ByteBuffer()
                            event.write(to: &buffer)
                            try await writer.write(buffer)
                        }
                    }
                } catch {
                    self.cancelled.withLockedValue { $0 += 1 }
                    throw error
                }
                try await writer.finish(nil)
            })
    }

    static let quietLogger: Logger = {
        var logger = Logger(label: "fake-upstream")
        logger.logLevel = .critical
        return logger
    }()

    /// The answer to an embeddings call (`FakeEmbeddings`), or nil when the request is not one.
    private func embeddingsAnswer(method: String, path: String, headers: [String: String], json: JSON?) async throws -> Response? {
        let model: String
        switch kind {
        case .openai:
            guard path == "/v1/embeddings" else { return nil }
            guard method == "POST" else { return Self.json(FakeOpenAIRules.error(405, "Method not allowed").body, status: 405) }
            guard headers["authorization"] == "Bearer \(key)" else { return Self.json(FakeOpenAIRules.error(401, "Incorrect API key provided.").body, status: 401) }
            guard let json else { return Self.json(FakeOpenAIRules.error(400, "We could not parse the JSON body of your request.").body, status: 400) }
            if let rejection = FakeEmbeddings.openAIRejection(json) { return Self.json(rejection.body, status: rejection.status) }
            model = json["model"]?.stringValue ?? ""
        case .gemini:
            guard let route = FakeEmbeddings.geminiRoute(path: path) else { return nil }
            guard headers["x-goog-api-key"] == key else { return Self.json(FakeGeminiRules.error(400, "API key not valid. Please pass a valid API key.").body, status: 400) }
            guard let json else { return Self.json(FakeGeminiRules.error(400, "Invalid JSON payload received.").body, status: 400) }
            if let rejection = FakeEmbeddings.geminiRejection(json, model: route.model, batch: route.batch) {
                return Self.json(rejection.body, status: rejection.status)
            }
            model = route.model
        case .anthropic:
            return nil
        }
        if model.hasPrefix("status-"), let status = Int(model.dropFirst(7)) {
            return Self.json(FakeOpenAIRules.error(status, "Fake failure \(status)", type: "server_error").body, status: status)
        }
        if model == "slow-embed" { try await Task.sleep(for: .seconds(5)) }
        switch kind {
        case .gemini: return Self.json(FakeEmbeddings.geminiResponse(for: json!, batch: FakeEmbeddings.geminiRoute(path: path)!.batch))
        default: return Self.json(FakeEmbeddings.openAIResponse(for: json!))
        }
    }

    static func json(_ value: JSON, status: Int = 200) -> Response {
        Response(
            status: .init(code: status), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: value.bytes())))
    }
}
