import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// `POST /v1/chat/completions`: authenticate, validate, route, translate, relay.
public struct ChatCompletionsRoute: Sendable {
    let proxy: ChatProxy

    public init(proxy: ChatProxy) {
        self.proxy = proxy
    }

    /// Handles one request.
    public func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        guard let snapshot = context.snapshot, let key = context.key else {
            throw GatewayError.unauthorized("Missing API key.")
        }
        var request = request
        let limit = snapshot.config.server.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw GatewayError.payloadTooLarge(limit: limit)
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw GatewayError.payloadTooLarge(limit: limit)
        }
        let chat = try ChatRequest(parsing: body.readableBytesView)
        guard let model = snapshot.models.resolve(chat.model) else {
            throw GatewayError.notFound(
                "The model '\(chat.model)' does not exist or is not configured on this gateway. GET /v1/models lists the models your key can use.",
                param: "model", code: "model_not_found")
        }
        guard key.allows(model: chat.model) else {
            throw GatewayError.forbidden("Your key '\(key.name)' is not allowed to use the model '\(chat.model)'.", param: "model")
        }
        let opened = try await proxy.open(chat, model: model, logger: context.logger)
        var headers: HTTPFields = [:]
        headers[.provider] = model.provider.type.rawValue
        headers[.servedModel] = model.upstream
        if chat.stream {
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            headers[.latency] = String(context.elapsedMilliseconds)
            let requestBody = request.body
            let relay = StreamRelay(opened: opened, requestedModel: chat.model, includeUsage: chat.includeUsage, logger: context.logger)
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody { writer in
                    try await requestBody.consumeWithCancellationOnInboundClose { _ in
                        await relay.run(into: &writer)
                    }
                    try await writer.finish(nil)
                })
        }
        let completion = try await proxy.completion(from: opened, requestedModel: chat.model)
        headers[.latency] = String(context.elapsedMilliseconds)
        if let usage = completion.usage, let price = model.price {
            headers[.cost] = CostFormat.usd(usage.cost(at: price))
        }
        return .json(completion.body, headers: headers)
    }
}

extension KeyConfig {
    /// Whether the allow-list admits `model`.
    public func allows(model: String) -> Bool {
        models.contains { Glob($0).matches(model) }
    }
}

/// Formats of money.
public enum CostFormat {
    /// USD with six decimals, e.g. `0.000123`.
    public static func usd(_ amount: Double) -> String {
        let micros = Int64((amount * 1_000_000).rounded())
        let whole = micros / 1_000_000
        let fraction = String(micros % 1_000_000)
        return "\(whole)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }
}
