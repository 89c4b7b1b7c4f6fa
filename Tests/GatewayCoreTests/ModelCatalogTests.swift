import Testing

@testable import GatewayCore

@Suite struct ModelCatalogTests {
    static let required = [
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano",
        "claude-opus-4-1", "claude-opus-4-5", "claude-sonnet-4-5", "claude-sonnet-4", "claude-haiku-4-5", "claude-3-5-haiku",
        "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
    ]

    @Test func namesAreUniqueAndRequiredModelsPresent() {
        let names = ModelCatalog.models.map(\.name)
        #expect(Set(names).count == names.count)
        for name in Self.required {
            #expect(ModelCatalog.model(named: name) != nil, "\(name) missing")
        }
        #expect(ModelCatalog.model(named: "gpt-3") == nil)
    }

    static let chatModels = ModelCatalog.models.filter { $0.kind == .chat }

    @Test(arguments: chatModels)
    func pricesArePositiveAndCachedIsCheaper(model: CatalogModel) throws {
        #expect(model.price.input > 0)
        #expect(model.price.output >= model.price.input)
        let cached = try #require(model.price.cachedInput)
        #expect(cached > 0 && cached < model.price.input)
    }

    @Test(arguments: chatModels)
    func fallbacksNameOneModelOfEachOtherFamily(model: CatalogModel) throws {
        #expect(model.fallbacks.count == 2)
        var families: Set<ProviderType> = []
        for name in model.fallbacks {
            let fallback = try #require(ModelCatalog.model(named: name), "\(model.name) falls back to unknown \(name)")
            families.insert(fallback.providerType)
        }
        #expect(families == Set(ProviderType.allCases).subtracting([model.providerType]))
    }

    @Test(arguments: [
        ["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro"],
        ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"],
    ])
    func equivalentTiersFallBackToEachOther(group: [String]) throws {
        for name in group {
            let model = try #require(ModelCatalog.model(named: name))
            #expect(Set(model.fallbacks) == Set(group).subtracting([name]), "\(name): \(model.fallbacks)")
        }
    }

    @Test func namedChains() {
        #expect(ModelCatalog.model(named: "gpt-4.1")?.fallbacks == ["claude-sonnet-4-5", "gemini-2.5-pro"])
        #expect(ModelCatalog.model(named: "gpt-4.1-mini")?.fallbacks == ["claude-haiku-4-5", "gemini-2.5-flash"])
        #expect(ModelCatalog.model(named: "claude-opus-4-5")?.fallbacks == ["gpt-5", "gemini-2.5-pro"])
        #expect(ModelCatalog.model(named: "claude-opus-4-1")?.fallbacks == ["o3", "gemini-2.5-pro"])
    }

    @Test func embeddingModelsArePricedByInputAndNeverFallBack() throws {
        let embeddings = ModelCatalog.models.filter { $0.kind == .embedding }
        #expect(Set(embeddings.map(\.name)) == ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002", "gemini-embedding-001"])
        for model in embeddings {
            #expect(model.price.input > 0 && model.price.output == 0, "\(model.name)")
            #expect(model.fallbacks.isEmpty, "\(model.name)")
            #expect(model.providerType != .anthropic)
        }
        #expect(ModelCatalog.model(named: "text-embedding-3-small")?.price == Price(input: 0.02, output: 0))
    }

    @Test func knownListPrices() {
        #expect(ModelCatalog.model(named: "gpt-4o-mini")?.price == Price(input: 0.15, output: 0.60, cachedInput: 0.075))
        #expect(ModelCatalog.model(named: "claude-sonnet-4-5")?.price == Price(input: 3, output: 15, cachedInput: 0.30, cacheWrite: 3.75))
        #expect(ModelCatalog.model(named: "gemini-2.5-pro")?.price == Price(input: 1.25, output: 10, cachedInput: 0.125))
    }

    @Test func upstreamIdsAreApiAliases() {
        #expect(ModelCatalog.model(named: "claude-sonnet-4")?.upstream == "claude-sonnet-4-0")
        #expect(ModelCatalog.model(named: "claude-3-5-haiku")?.upstream == "claude-3-5-haiku-latest")
        #expect(ModelCatalog.model(named: "gpt-5")?.upstream == "gpt-5")
        #expect(ModelCatalog.models.allSatisfy { !$0.upstream.isEmpty })
    }
}
