/// A model a client may ask for, resolved to the provider that serves it.
public struct ResolvedModel: Sendable, Equatable {
    /// The name clients send.
    public var name: String
    /// The provider that serves it.
    public var provider: ProviderConfig {
        get { sharedProvider.value }
        set { sharedProvider = Shared(newValue) }
    }
    private var sharedProvider: Shared<ProviderConfig>
    /// The model id sent upstream.
    public var upstream: String
    /// Price per one million tokens, when known.
    public var price: Price?
    /// Ordered fallback chain (model names), used by failover.
    public var fallbacks: [String]
    /// Providers sharing the load of this model; empty means `provider` alone.
    public var deployments: [Deployment] = []
    /// Chat or embeddings; nil for a `provider/model` the client named, which either route may use.
    public var kind: ModelKind?

    public init(
        name: String, provider: ProviderConfig, upstream: String, price: Price?, fallbacks: [String], deployments: [Deployment] = [],
        kind: ModelKind? = .chat
    ) {
        self.kind = kind
        self.name = name
        self.sharedProvider = Shared(provider)
        self.upstream = upstream
        self.price = price
        self.fallbacks = fallbacks
        self.deployments = deployments
    }

    /// This model as served by `provider` (one of its deployments).
    public func served(by provider: ProviderConfig) -> ResolvedModel {
        var copy = self
        copy.provider = provider
        return copy
    }
}

/// Every model name the gateway answers to: the built-in catalog for each configured provider type
/// (served by the first enabled provider of that type, else the first of that type),
/// overridden and extended by `models:`, plus `provider/model` for any configured provider.
public struct ModelTable: Sendable {
    private var models: [String: ResolvedModel] = [:]
    private var order: [String] = []
    private let providers: [String: ProviderConfig]

    /// Builds the table for `config`.
    public init(config: GatewayConfig) {
        var providers: [String: ProviderConfig] = [:]
        for provider in config.providers { providers[provider.name] = provider }
        self.providers = providers
        for entry in ModelCatalog.models {
            let sameType = config.providers.filter { $0.type == entry.providerType }
            guard let provider = sameType.first(where: \.isEnabled) ?? sameType.first else { continue }
            add(
                ResolvedModel(
                    name: entry.name, provider: provider, upstream: entry.upstream, price: entry.price, fallbacks: entry.fallbacks,
                    kind: entry.kind))
        }
        for name in config.models.keys.sorted() {
            let model = config.models[name]!
            guard let provider = providers[model.provider] else { continue }
            let catalog = ModelCatalog.model(named: name) ?? ModelCatalog.model(named: model.upstream)
            add(
                ResolvedModel(
                    name: name, provider: provider, upstream: model.upstream,
                    price: model.price ?? (catalog?.providerType == provider.type ? catalog?.price : nil),
                    fallbacks: model.fallbacks ?? catalog?.fallbacks ?? [], deployments: model.deployments,
                    kind: model.kind ?? catalog?.kind ?? .chat))
        }
    }

    private mutating func add(_ model: ResolvedModel) {
        if models[model.name] == nil { order.append(model.name) }
        models[model.name] = model
    }

    /// The model called `name`: a configured or catalog name, else `provider/model`.
    public func resolve(_ name: String) -> ResolvedModel? {
        if let model = models[name] { return model }
        guard let slash = name.firstIndex(of: "/") else { return nil }
        let providerName = String(name[..<slash])
        let upstream = String(name[name.index(after: slash)...])
        guard let provider = providers[providerName], !upstream.isEmpty else { return nil }
        let catalog = ModelCatalog.model(named: upstream)
        return ResolvedModel(
            name: name, provider: provider, upstream: upstream,
            price: catalog?.providerType == provider.type ? catalog?.price : nil, fallbacks: [],
            kind: catalog?.providerType == provider.type ? catalog?.kind : nil)
    }

    /// Whether `name` is a configured or catalog model's name (not a `provider/model` the client made up).
    public func isNamed(_ name: String) -> Bool { models[name] != nil }

    /// The provider called `name`.
    public func provider(named name: String) -> ProviderConfig? { providers[name] }

    /// Every named model, in a stable order (catalog first, then configured ones).
    public var all: [ResolvedModel] { order.compactMap { models[$0] } }
}
