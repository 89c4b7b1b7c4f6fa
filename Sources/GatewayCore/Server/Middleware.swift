import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
    static let provider = HTTPField.Name("X-Provider")!
    static let servedModel = HTTPField.Name("X-Model")!
    static let latency = HTTPField.Name("X-Latency-Ms")!
    static let cost = HTTPField.Name("X-Cost-USD")!
    /// `count_tokens`: `provider` (the provider's count) or `estimate` (the gateway's).
    static let tokenCount = HTTPField.Name("X-Token-Count")!
    static let trailer = HTTPField.Name("Trailer")!
}

/// Gives every request the gateway's own id, the current configuration snapshot and a logger tagged with the id;
/// echoes the client's `X-Request-Id` when it sent a sane one (else the gateway's id) on every response. The
/// client's id is never the request log's row key: a client repeating one cannot merge or hide rows.
public struct RequestIDMiddleware: RouterMiddleware {
    let store: ConfigStore

    public init(store: ConfigStore) {
        self.store = store
    }

    public func handle(
        _ request: Request, context: GatewayRequestContext, next: (Request, GatewayRequestContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        context.startedAt = .now
        context.snapshot = store.snapshot
        context.requestID = RandomID.timeOrdered(prefix: "req_")
        context.logger[metadataKey: "request_id"] = .string(context.requestID)
        if let given = request.headers[.requestID], Self.isAcceptable(given) {
            context.clientRequestID = given
            context.logger[metadataKey: "client_request_id"] = .string(given)
        }
        var response = try await next(request, context)
        response.headers[.requestID] = context.clientRequestID ?? context.requestID
        return response
    }

    /// Ids up to 128 characters of letters, digits and `-_.:`; anything else is replaced.
    static func isAcceptable(_ id: String) -> Bool {
        guard !id.isEmpty, id.utf8.count <= 128 else { return false }
        return id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
        }
    }
}

/// Writes one request-log row per API request (`/v1/…`), whatever its outcome, once the answer is known
/// (streams write theirs when they end). Health probes are not logged.
///
/// On an event loop the row is made just after the answer has gone out, not before: building it and counting it
/// in the metrics took 15–20 µs off a cache hit's latency at one connection (see the README's performance section).
public struct RequestLogMiddleware: RouterMiddleware {
    let sink: (any RequestRecordSink)?

    public init(sink: (any RequestRecordSink)?) {
        self.sink = sink
    }

    public func handle(
        _ request: Request, context: GatewayRequestContext, next: (Request, GatewayRequestContext) async throws -> Response
    ) async throws -> Response {
        guard let sink, request.uri.path.hasPrefix("/v1/") else { return try await next(request, context) }
        var context = context
        let outcome = RequestOutcome(
            requestID: context.requestID, clientRequestID: context.clientRequestID, endpoint: request.uri.path, startedAt: context.startedAt)
        context.outcome = outcome
        do {
            let response = try await next(request, context)
            if !outcome.isDeferred {
                let status = Int(response.status.code)
                let finishedAt = ContinuousClock.now
                // On an event loop, the record is made right after the answer has been written, which is done in
                // this same turn of the loop: the client does not wait for it.
                if let loop = MultiThreadedEventLoopGroup.currentEventLoop {
                    loop.execute { outcome.finish(status: status, into: sink, finishedAt: finishedAt) }
                } else {
                    outcome.finish(status: status, into: sink, finishedAt: finishedAt)
                }
            }
            return response
        } catch {
            outcome.finish(status: 500, into: sink)
            throw error
        }
    }
}

/// Turns every error thrown below it into the error envelope of the route's dialect (OpenAI's for every path
/// without one of its own), so no client ever sees another shape.
public struct ErrorEnvelopeMiddleware: RouterMiddleware {
    /// The dialect of each API path that has one.
    let dialects: [String: any ClientDialect]

    /// - Parameter dialects: the dialect whose envelope each path's errors take, by the request's path.
    public init(dialects: [String: any ClientDialect] = [:]) {
        self.dialects = dialects
    }

    public func handle(
        _ request: Request, context: GatewayRequestContext, next: (Request, GatewayRequestContext) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            // A refused or failed request used no tokens: it costs nothing, and says how long it took.
            let dialect = dialects[request.uri.path] ?? OpenAIChatDialect()
            var response = Self.answer(for: error, in: dialect, request: request, context: context)
            response.headers[.latency] = String(context.elapsedMilliseconds)
            response.headers[.cost] = CostFormat.usd(0)
            if let attempts = (error as? GatewayError)?.attempts { response.headers[.attempts] = String(attempts) }
            if Self.leavesBodyUnread(error, request: request), let channel = context.channel {
                return Self.closingAfterwards(response, channel: channel)
            }
            return response
        }
    }

    /// Codes of the refusals made before a request's body is read (no key, unknown path or method, a declared
    /// length over the limit, or the limit reached while reading).
    static let refusedBeforeTheBody: Set<String> = ["invalid_api_key", "unknown_url", "method_not_allowed", "request_too_large"]

    /// Whether `error` refused the request before reading a body it declares: answered, the rest of the body would be
    /// read and thrown away, without limit, to keep the connection.
    static func leavesBodyUnread(_ error: any Error, request: Request) -> Bool {
        let code: String?
        switch error {
        case let error as GatewayError: code = error.code
        case let error as any HTTPResponseError:
            switch error.status {
            case .contentTooLarge: code = "request_too_large"
            case .notFound: code = "unknown_url"
            case .methodNotAllowed: code = "method_not_allowed"
            default: code = nil
            }
        default: code = nil
        }
        guard let code, refusedBeforeTheBody.contains(code) else { return false }
        let declared = request.headers[.contentLength].flatMap(Int.init) ?? 0
        return declared > 0 || request.headers[.transferEncoding] != nil
    }

    /// `response` with `Connection: close`, the connection closed once it is written: the unread body is not read.
    static func closingAfterwards(_ response: Response, channel: any Channel) -> Response {
        var headers = response.headers
        headers[.connection] = "close"
        let body = response.body
        return Response(
            status: response.status, headers: headers,
            body: ResponseBody { writer in
                try await body.write(writer)
                channel.close(promise: nil)
            })
    }

    /// The dialect's error envelope for `error`, with its status.
    static func answer(for error: any Error, in dialect: any ClientDialect, request: Request, context: GatewayRequestContext) -> Response {
        do {
            throw error
        } catch let error as GatewayError {
            context.outcome?.update { fields in
                fields.errorMessage = error.message
                if let attempts = error.attempts { fields.attempts = attempts }
            }
            if error.status >= 500 {
                context.logger.warning("request failed", metadata: ["status": "\(error.status)", "error": "\(error.message)"])
            } else {
                context.logger.info("request refused", metadata: ["status": "\(error.status)", "error": "\(error.message)"])
            }
            return .json(text: dialect.errorBody(error), status: error.status)
        } catch let refusal as any RefusalWithHeaders {
            context.outcome?.update { $0.errorMessage = refusal.error.message }
            context.logger.info("refused", metadata: ["key": "\(context.key?.name ?? "")", "code": "\(refusal.error.code ?? "")"])
            return .json(text: dialect.errorBody(refusal.error), status: refusal.error.status, headers: refusal.headers)
        } catch is CancellationError {
            context.outcome?.update { $0.errorMessage = "The client closed the connection." }
            context.logger.info("client went away before the answer")
            let closed = GatewayError(status: 499, type: "api_error", message: "The client closed the connection.", code: "cancelled")
            return .json(text: dialect.errorBody(closed), status: 499)
        } catch let error as any HTTPResponseError {
            let gatewayError = Self.translate(error, request: request)
            context.outcome?.update { $0.errorMessage = gatewayError.message }
            return .json(text: dialect.errorBody(gatewayError), status: gatewayError.status)
        } catch {
            context.logger.error("internal error", metadata: ["error": "\(type(of: error))"])
            let failed = GatewayError(status: 500, type: "api_error", message: "The gateway failed to handle the request.", code: "internal_error")
            return .json(text: dialect.errorBody(failed), status: 500)
        }
    }

    static func translate(_ error: any HTTPResponseError, request: Request) -> GatewayError {
        let status = Int(error.status.code)
        switch status {
        case 404:
            return .notFound("Unknown request URL: \(request.method) \(request.uri.path).", code: "unknown_url")
        case 405:
            return GatewayError(
                status: 405, type: "invalid_request_error", message: "Method \(request.method) is not allowed on \(request.uri.path).",
                code: "method_not_allowed")
        case 413:
            return GatewayError(status: 413, type: "invalid_request_error", message: "Request body too large.", code: "request_too_large")
        default:
            let message = (error as? HTTPError)?.body ?? error.status.reasonPhrase
            return GatewayError(status: status, type: status >= 500 ? "api_error" : "invalid_request_error", message: message)
        }
    }
}

/// Checks `Authorization: Bearer gw_...` against the snapshot's key hashes. The key itself is never logged or kept.
public struct AuthMiddleware: RouterMiddleware {
    public init() {}

    public func handle(
        _ request: Request, context: GatewayRequestContext, next: (Request, GatewayRequestContext) async throws -> Response
    ) async throws -> Response {
        let secret: String
        if let header = request.headers[.authorization] {
            guard let space = header.utf8.firstIndex(of: UInt8(ascii: " ")), Self.isBearer(header.utf8[..<space]) else {
                throw GatewayError.unauthorized("The Authorization header must be 'Bearer <gateway key>'.")
            }
            secret = header[header.index(after: space)...].trimmingWhitespace()
        } else if let header = request.headers[Self.apiKeyHeader] {
            // Anthropic's SDKs send their key in `x-api-key`.
            secret = Substring(header).trimmingWhitespace()
        } else {
            throw GatewayError.unauthorized(
                "You didn't provide an API key. Send your gateway key in the Authorization header as 'Bearer gw_...' (or in x-api-key).")
        }
        guard let snapshot = context.snapshot, let key = snapshot.key(forSecret: secret) else {
            throw GatewayError.unauthorized("Incorrect API key provided. Use a gateway key listed (by its sha256) under 'keys:' in gateway.yaml.")
        }
        var context = context
        context.key = key
        context.logger[metadataKey: "key"] = .string(key.name)
        context.outcome?.update { $0.keyName = key.name }
        return try await next(request, context)
    }

    static let apiKeyHeader = HTTPField.Name("x-api-key")!

    /// Whether `scheme` is `Bearer` in any case, compared on its bytes.
    static func isBearer(_ scheme: Substring.UTF8View) -> Bool {
        scheme.count == 6 && zip(scheme, "bearer".utf8).allSatisfy { byte, lower in byte | 0x20 == lower }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    func trimmingWhitespace() -> String {
        let bytes = utf8
        func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, isBlank(bytes[start]) { start = bytes.index(after: start) }
        while end > start, isBlank(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
        return String(self[start..<end])
    }
}

extension Response {
    /// A JSON response.
    static func json(_ value: JSON, status: Int = 200, headers: HTTPFields = [:]) -> Response {
        json(text: ByteBuffer(string: value.serialized()), status: status, headers: headers)
    }

    /// A JSON response whose text is already written.
    static func json(text: ByteBuffer, status: Int = 200, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        headers[.contentLength] = String(text.readableBytes)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: text))
    }
}
