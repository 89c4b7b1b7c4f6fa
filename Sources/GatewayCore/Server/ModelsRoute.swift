import Hummingbird

/// `GET /v1/models` and `GET /v1/models/{id}`: the models the calling key may use.
public struct ModelsRoute: Sendable {
    public init() {}

    /// Lists the models of enabled providers that the key's allow-list admits: in Anthropic's list shape when the
    /// request carries `anthropic-version` (the Anthropic SDKs and Claude Code send it), else in OpenAI's.
    public func list(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        guard let snapshot = context.snapshot, let key = context.key else { throw GatewayError.unauthorized("Missing API key.") }
        let models = snapshot.models.all.filter { $0.provider.isEnabled && key.allows(model: $0.name) }
        if request.headers[AnthropicMessagesDialect.versionHeader] != nil {
            let entries = models.map(Self.anthropicEntry)
            return .json([
                "data": .array(entries), "has_more": false, "first_id": entries.first?["id"] ?? .null, "last_id": entries.last?["id"] ?? .null,
            ])
        }
        return .json(["object": "list", "data": .array(models.map(Self.entry))])
    }

    static func anthropicEntry(_ model: ResolvedModel) -> JSON {
        ["type": "model", "id": .string(model.name), "display_name": .string(model.name), "created_at": "1970-01-01T00:00:00Z"]
    }

    /// Describes one model, or 404.
    public func retrieve(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        guard let snapshot = context.snapshot, let key = context.key else { throw GatewayError.unauthorized("Missing API key.") }
        let name = context.parameters.getCatchAll().joined(separator: "/")
        guard let model = snapshot.models.resolve(name), model.provider.isEnabled, key.allows(model: name) else {
            let shown = ChatRequest.isPlausibleModelName(name) ? "model '\(name)'" : "requested model"
            throw GatewayError.notFound("The \(shown) does not exist or your key cannot use it.", param: "model", code: "model_not_found")
        }
        if request.headers[AnthropicMessagesDialect.versionHeader] != nil { return .json(Self.anthropicEntry(model)) }
        return .json(Self.entry(model))
    }

    static func entry(_ model: ResolvedModel) -> JSON {
        ["id": .string(model.name), "object": "model", "created": 0, "owned_by": .string(model.provider.name)]
    }
}

/// `GET /healthz` (alive) and `GET /readyz` (configuration loaded and listener bound).
public struct HealthRoutes: Sendable {
    let readiness: Readiness

    public func healthz(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        .json(["status": "ok"])
    }

    public func readyz(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        if readiness.isReady { return .json(["status": "ready"]) }
        return .json(["status": "starting"], status: 503)
    }
}
