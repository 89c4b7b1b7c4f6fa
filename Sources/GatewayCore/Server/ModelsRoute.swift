import Hummingbird

/// `GET /v1/models` and `GET /v1/models/{id}`: the models the calling key may use.
public struct ModelsRoute: Sendable {
    public init() {}

    /// Lists the models of enabled providers that the key's allow-list admits.
    public func list(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        guard let snapshot = context.snapshot, let key = context.key else { throw GatewayError.unauthorized("Missing API key.") }
        let entries = snapshot.models.all
            .filter { $0.provider.isEnabled && key.allows(model: $0.name) }
            .map(Self.entry)
        return .json(["object": "list", "data": .array(entries)])
    }

    /// Describes one model, or 404.
    public func retrieve(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        guard let snapshot = context.snapshot, let key = context.key else { throw GatewayError.unauthorized("Missing API key.") }
        let name = context.parameters.getCatchAll().joined(separator: "/")
        guard let model = snapshot.models.resolve(name), model.provider.isEnabled, key.allows(model: name) else {
            let shown = ChatRequest.isPlausibleModelName(name) ? "model '\(name)'" : "requested model"
            throw GatewayError.notFound("The \(shown) does not exist or your key cannot use it.", param: "model", code: "model_not_found")
        }
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
