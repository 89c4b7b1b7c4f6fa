/// A model the gateway knows without configuration: its provider type, upstream id, list price and fallbacks.
public struct CatalogModel: Sendable, Equatable {
    /// The name clients send.
    public var name: String
    /// The kind of provider that serves it; the first configured provider of this type is used.
    public var providerType: ProviderType
    /// The model id sent upstream (an alias the provider's API accepts).
    public var upstream: String
    /// List price in USD per one million tokens.
    public var price: Price
    /// Equivalent models of the other two families, tried in order when this one fails.
    public var fallbacks: [String]
    /// Chat or embeddings.
    public var kind: ModelKind

    /// Creates a catalog entry.
    public init(name: String, providerType: ProviderType, upstream: String? = nil, price: Price, fallbacks: [String], kind: ModelKind = .chat) {
        self.name = name
        self.providerType = providerType
        self.upstream = upstream ?? name
        self.price = price
        self.fallbacks = fallbacks
        self.kind = kind
    }
}

/// The built-in model catalog: current chat models of OpenAI, Anthropic and Google with list prices.
///
/// Prices are the providers' standard (non-batch) list prices per 1M tokens, for prompts up to
/// 200K tokens where a provider charges more above that; `cachedInput` is the prompt-cache read price.
/// Sources: the OpenAI API pricing page, Anthropic's "Pricing" page in the Claude docs, and the
/// Gemini Developer API pricing page. `models:` in gateway.yaml overrides any entry.
///
/// Fallback chains pair equivalent tiers across the three families, in both directions:
/// gpt-4o ↔ claude-sonnet-4-5 ↔ gemini-2.5-pro and gpt-4o-mini ↔ claude-haiku-4-5 ↔ gemini-2.5-flash.
/// Every chain names one model of each other family, never its own.
public enum ModelCatalog {
    private static func openai(_ name: String, _ input: Double, _ output: Double, cached: Double, _ fallbacks: [String]) -> CatalogModel {
        CatalogModel(name: name, providerType: .openai, price: Price(input: input, output: output, cachedInput: cached), fallbacks: fallbacks)
    }

    private static func anthropic(_ name: String, upstream: String? = nil, _ input: Double, _ output: Double, cached: Double, _ fallbacks: [String]) -> CatalogModel {
        // Anthropic charges a prompt-cache write (5-minute) 1.25 times the input price.
        CatalogModel(
            name: name, providerType: .anthropic, upstream: upstream,
            price: Price(input: input, output: output, cachedInput: cached, cacheWrite: input * 1.25), fallbacks: fallbacks)
    }

    private static func gemini(_ name: String, _ input: Double, _ output: Double, cached: Double, _ fallbacks: [String]) -> CatalogModel {
        CatalogModel(name: name, providerType: .gemini, price: Price(input: input, output: output, cachedInput: cached), fallbacks: fallbacks)
    }

    /// An embedding model: priced by its input alone, and never falling back to another model (vectors of two
    /// models are not comparable).
    private static func embedding(_ name: String, _ type: ProviderType, input: Double) -> CatalogModel {
        CatalogModel(name: name, providerType: type, price: Price(input: input, output: 0), fallbacks: [], kind: .embedding)
    }

    /// Every built-in model, by family and tier.
    public static let models: [CatalogModel] = [
        //        name                      input   output  cached    fallbacks
        // OpenAI
        openai("gpt-4o",                    2.50,   10.00,  cached: 1.25,   ["claude-sonnet-4-5", "gemini-2.5-pro"]),
        openai("gpt-4o-mini",               0.15,    0.60,  cached: 0.075,  ["claude-haiku-4-5", "gemini-2.5-flash"]),
        openai("gpt-4.1",                   2.00,    8.00,  cached: 0.50,   ["claude-sonnet-4-5", "gemini-2.5-pro"]),
        openai("gpt-4.1-mini",              0.40,    1.60,  cached: 0.10,   ["claude-haiku-4-5", "gemini-2.5-flash"]),
        openai("gpt-4.1-nano",              0.10,    0.40,  cached: 0.025,  ["claude-haiku-4-5", "gemini-2.5-flash-lite"]),
        openai("o3",                        2.00,    8.00,  cached: 0.50,   ["claude-sonnet-4-5", "gemini-2.5-pro"]),
        openai("o4-mini",                   1.10,    4.40,  cached: 0.275,  ["claude-haiku-4-5", "gemini-2.5-flash"]),
        openai("gpt-5",                     1.25,   10.00,  cached: 0.125,  ["claude-sonnet-4-5", "gemini-2.5-pro"]),
        openai("gpt-5-mini",                0.25,    2.00,  cached: 0.025,  ["claude-haiku-4-5", "gemini-2.5-flash"]),
        openai("gpt-5-nano",                0.05,    0.40,  cached: 0.005,  ["claude-haiku-4-5", "gemini-2.5-flash-lite"]),
        // Anthropic (upstream ids are the API's aliases)
        anthropic("claude-opus-4-5",        5.00,   25.00,  cached: 0.50,   ["gpt-5", "gemini-2.5-pro"]),
        anthropic("claude-opus-4-1",       15.00,   75.00,  cached: 1.50,   ["o3", "gemini-2.5-pro"]),
        anthropic("claude-sonnet-4-5",      3.00,   15.00,  cached: 0.30,   ["gpt-4o", "gemini-2.5-pro"]),
        anthropic("claude-sonnet-4", upstream: "claude-sonnet-4-0",
                                            3.00,   15.00,  cached: 0.30,   ["gpt-4.1", "gemini-2.5-pro"]),
        anthropic("claude-haiku-4-5",       1.00,    5.00,  cached: 0.10,   ["gpt-4o-mini", "gemini-2.5-flash"]),
        anthropic("claude-3-5-haiku", upstream: "claude-3-5-haiku-latest",
                                            0.80,    4.00,  cached: 0.08,   ["gpt-4o-mini", "gemini-2.0-flash"]),
        // Google
        gemini("gemini-2.5-pro",            1.25,   10.00,  cached: 0.125,  ["claude-sonnet-4-5", "gpt-4o"]),
        gemini("gemini-2.5-flash",          0.30,    2.50,  cached: 0.03,   ["claude-haiku-4-5", "gpt-4o-mini"]),
        gemini("gemini-2.5-flash-lite",     0.10,    0.40,  cached: 0.01,   ["gpt-5-nano", "claude-haiku-4-5"]),
        gemini("gemini-2.0-flash",          0.10,    0.40,  cached: 0.025,  ["gpt-4o-mini", "claude-haiku-4-5"]),
        // Embeddings (Anthropic has no embeddings API)
        embedding("text-embedding-3-small", .openai, input: 0.02),
        embedding("text-embedding-3-large", .openai, input: 0.13),
        embedding("text-embedding-ada-002", .openai, input: 0.10),
        embedding("gemini-embedding-001", .gemini, input: 0.15),
    ]

    private static let byName: [String: CatalogModel] = Dictionary(models.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })

    /// The built-in model called `name`, if any.
    /// - Parameter name: A catalog name such as `gpt-4o-mini` or `claude-haiku-4-5`.
    public static func model(named name: String) -> CatalogModel? {
        byName[name]
    }
}
