import Yams

// MARK: - models:

extension ConfigLoader {
    static let modelKeys = ["provider", "upstream", "fallbacks", "price", "deployments", "kind"]

    static func readModels(_ top: Section, providers: [ProviderConfig], _ reader: ConfigReader) -> [String: ModelConfig] {
        guard let section = reader.section(top["models"], path: "models", known: nil) else { return [:] }
        var models: [String: ModelConfig] = [:]
        for name in section.order {
            let entry = section.entries[name]!
            guard !name.isEmpty else {
                reader.error("model name must not be empty", at: entry.key, path: section.path(name))
                continue
            }
            if let model = readModel(name: name, entry: entry, path: section.path(name), providers: providers, reader) {
                models[name] = model
            }
        }
        return models
    }

    private static func readModel(
        name: String, entry: Section.Entry, path: String, providers: [ProviderConfig], _ reader: ConfigReader
    ) -> ModelConfig? {
        guard let section = reader.section(entry.value, path: path, known: modelKeys) else { return nil }
        let catalog = ModelCatalog.model(named: name)

        var provider: ProviderConfig?
        if let node = section["provider"], let providerName = reader.string(node, path: section.path("provider")) {
            provider = configuredProvider(providerName, providers, at: node, path: section.path("provider"), reader)
        } else if section["provider"] == nil {
            if let catalog {
                // A catalog model needs no `provider:`: the first provider of its type serves it.
                provider = providers.first { $0.type == catalog.providerType }
                if provider == nil {
                    reader.error(
                        "missing provider: \"\(name)\" is a built-in \(catalog.providerType.rawValue) model, but no \(catalog.providerType.rawValue) provider is configured",
                        at: entry.key, path: path)
                }
            } else {
                reader.error("missing provider (name one of providers:)", at: entry.key, path: path)
            }
        }

        var upstream = name
        if let catalog, let provider, catalog.providerType == provider.type { upstream = catalog.upstream }
        if let node = section["upstream"], let value = reader.string(node, path: section.path("upstream"), allowEmpty: false) {
            upstream = value
        }

        var fallbacks: [String]?
        if let node = section["fallbacks"], let items = reader.sequence(node, path: section.path("fallbacks"), of: "model names") {
            fallbacks = items.enumerated().compactMap { index, item in
                reader.string(item, path: "\(section.path("fallbacks"))[\(index)]", allowEmpty: false)
            }
        }

        var kind: ModelKind?
        if let node = section["kind"], let value = reader.string(node, path: section.path("kind")) {
            kind = ModelKind(rawValue: value)
            if kind == nil { reader.error("kind must be chat or embedding, got \"\(value)\"", at: node, path: section.path("kind")) }
        }
        let embeds = (kind ?? catalog?.kind) == .embedding
        if embeds, let provider, provider.type == .anthropic {
            reader.error(
                "\"\(name)\" is an embedding model but provider \"\(provider.name)\" is anthropic, which has no embeddings API",
                at: entry.key, path: path)
        }
        let price = section["price"].flatMap { readPrice($0, path: section.path("price"), embedding: embeds, reader) }
        let deployments = section["deployments"].map {
            readDeployments($0, path: section.path("deployments"), model: provider, providers: providers, reader)
        } ?? []

        guard let provider else { return nil }
        if price == nil && section["price"] == nil {
            let known = catalog ?? ModelCatalog.model(named: upstream)
            if known?.providerType != provider.type {
                reader.warning(
                    "no price, and \"\(upstream)\" is not a built-in \(provider.type.rawValue) model: its cost is not counted (add price: {input: …, output: …} in USD per 1M tokens)",
                    at: entry.key, path: path)
            }
        }
        var model = ModelConfig(name: name, provider: provider.name, upstream: upstream, fallbacks: fallbacks, price: price)
        model.deployments = deployments
        model.kind = kind
        return model
    }

    /// The provider called `name`, or nil after an "unknown provider" error with a suggestion.
    static func configuredProvider(
        _ name: String, _ providers: [ProviderConfig], at node: Node, path: String, in reference: String? = nil, _ reader: ConfigReader
    ) -> ProviderConfig? {
        if let provider = providers.first(where: { $0.name == name }) { return provider }
        let names = providers.map(\.name)
        let hint: String
        if let close = Suggestion.closest(to: name, in: names) {
            hint = " (did you mean \"\(close)\"?)"
        } else if names.isEmpty {
            hint = " (no providers are configured)"
        } else {
            hint = " (configured: \(names.joined(separator: ", ")))"
        }
        let context = reference.map { " in \"\($0)\"" } ?? ""
        reader.error("unknown provider \"\(name)\"\(context)\(hint)", at: node, path: path)
        return nil
    }

    /// An embedding model's price needs only `input` (it has no output tokens).
    private static func readPrice(_ node: Node, path: String, embedding: Bool, _ reader: ConfigReader) -> Price? {
        guard let section = reader.section(node, path: path, known: ["input", "output", "cached_input", "cache_write"]) else { return nil }
        func amount(_ key: String, required: Bool) -> Double?? {
            guard let valueNode = section[key] else {
                if required { reader.error("missing \(key) price (USD per 1M tokens)", at: node, path: section.path(key)) }
                return required ? nil : .some(nil)
            }
            return reader.double(valueNode, path: section.path(key)).map { .some($0) }
        }
        // Read them all before deciding, so each problem is reported.
        let (input, output, cachedInput) = (amount("input", required: true), amount("output", required: !embedding), amount("cached_input", required: false))
        let cacheWrite = amount("cache_write", required: false)
        guard let input = input ?? nil, let output, let cachedInput, let cacheWrite else { return nil }
        return Price(input: input, output: output ?? 0, cachedInput: cachedInput, cacheWrite: cacheWrite)
    }

    private static func readDeployments(
        _ node: Node, path: String, model: ProviderConfig?, providers: [ProviderConfig], _ reader: ConfigReader
    ) -> [Deployment] {
        guard let items = reader.sequence(node, path: path, of: "deployments ({provider: name, weight: 1})") else { return [] }
        var deployments: [Deployment] = []
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let section = reader.section(item, path: itemPath, known: ["provider", "weight"]) else { continue }
            guard let providerNode = section["provider"] else {
                reader.error("missing provider", at: item, path: itemPath)
                continue
            }
            guard let name = reader.string(providerNode, path: section.path("provider")),
                let provider = configuredProvider(name, providers, at: providerNode, path: section.path("provider"), reader)
            else { continue }
            if let model, provider.type != model.type {
                reader.warning(
                    "provider \"\(provider.name)\" speaks \(provider.type.rawValue) but the model's provider \"\(model.name)\" speaks \(model.type.rawValue); both get the same upstream model id",
                    at: providerNode, path: section.path("provider"))
            }
            var weight = 1
            if let weightNode = section["weight"] {
                guard let value = reader.int(weightNode, path: section.path("weight")) else { continue }
                weight = value
            }
            deployments.append(Deployment(provider: provider.name, weight: weight))
        }
        return deployments
    }

    // MARK: - Fallback references

    /// A model's kind as the file declares it, else as the catalog knows it; nil for names neither knows.
    private static func declaredKind(of name: String, in models: Node.Mapping) -> ModelKind? {
        for (key, value) in models where key.scalar?.string == name {
            if case .mapping(let model) = value, let kind = model["kind"]?.scalar?.string { return ModelKind(rawValue: kind) }
        }
        return ModelCatalog.model(named: name)?.kind
    }

    /// Checks every `models.*.fallbacks` entry names a configured model, a catalog model, or `provider/model`.
    ///
    /// Runs after all models are read, so a fallback may name a model declared further down.
    static func checkFallbacks(_ top: Section, config: GatewayConfig, _ reader: ConfigReader) {
        guard case .mapping(let models)? = top["models"] else { return }
        let declared = models.keys.compactMap(\.scalar?.string)
        let providerTypes = Set(config.providers.map(\.type))
        for (keyNode, value) in models {
            guard let name = keyNode.scalar?.string, case .mapping(let model) = value,
                case .sequence(let fallbacks)? = model["fallbacks"]
            else { continue }
            let kind = Self.declaredKind(of: name, in: models)
            for (index, item) in fallbacks.enumerated() {
                guard case .scalar(let scalar) = item, !scalar.string.isEmpty else { continue }
                let fallback = scalar.string
                let path = "models.\(name).fallbacks[\(index)]"
                if fallback != name, kind == .embedding {
                    reader.error(
                        "embedding model \"\(name)\" cannot fall back to another model (\"\(fallback)\"): the vectors of two models are not comparable (spread one model over providers with deployments:)",
                        at: item, path: path)
                    continue
                }
                if fallback != name, Self.declaredKind(of: fallback, in: models) == .embedding {
                    reader.error("chat model \"\(name)\" cannot fall back to embedding model \"\(fallback)\"", at: item, path: path)
                    continue
                }
                if fallback == name {
                    reader.warning("\"\(name)\" falls back to itself", at: item, path: path)
                } else if declared.contains(fallback) {
                    continue
                } else if let catalog = ModelCatalog.model(named: fallback) {
                    if !providerTypes.contains(catalog.providerType) {
                        reader.warning(
                            "fallback \"\(fallback)\" is a built-in \(catalog.providerType.rawValue) model but no \(catalog.providerType.rawValue) provider is configured; it will be skipped",
                            at: item, path: path)
                    }
                } else if let slash = fallback.firstIndex(of: "/") {
                    let providerName = String(fallback[..<slash])
                    if fallback[fallback.index(after: slash)...].isEmpty {
                        reader.error("fallback \"\(fallback)\" names no model after \"/\"", at: item, path: path)
                    } else if config.provider(named: providerName) == nil {
                        _ = configuredProvider(providerName, config.providers, at: item, path: path, in: fallback, reader)
                    }
                } else {
                    let candidates = declared + ModelCatalog.models.map(\.name)
                    let hint = Suggestion.closest(to: fallback, in: candidates).map { "did you mean \"\($0)\"? " } ?? ""
                    reader.error(
                        "unknown model \"\(fallback)\" (\(hint)name a model under models:, a built-in model, or provider/model)",
                        at: item, path: path)
                }
            }
        }
    }
}

// MARK: - keys:

extension ConfigLoader {
    static let keyKeys = ["name", "sha256", "prefix", "models", "rate_limit", "cache", "budget"]

    static func readKeys(_ top: Section, channels: Set<String>, _ reader: ConfigReader) -> [KeyConfig] {
        let keysNode = top.entries["keys"]?.value
        let noKeys = "no keys configured: every API request will be refused with 401 (add keys: with the sha256 of each key)"
        guard let node = keysNode, let items = reader.sequence(node, path: "keys", of: "keys ({name: …, sha256: …})") else {
            // No keys: section at all is reported at the top of the file.
            if keysNode == nil { reader.warning(noKeys, at: nil, path: "keys") }
            return []
        }
        if items.isEmpty { reader.warning(noKeys, at: node, path: "keys") }
        var keys: [KeyConfig] = []
        var names: [String: Node] = [:]
        var hashes: [String: (name: String, node: Node)] = [:]
        for (index, item) in items.enumerated() {
            let path = "keys[\(index)]"
            guard let section = reader.section(item, path: path, known: keyKeys) else { continue }
            var name: String?
            if let node = section["name"], let value = reader.string(node, path: section.path("name"), allowEmpty: false) {
                if let first = names[value] {
                    reader.error("duplicate key name \"\(value)\" (first used at line \(first.mark?.line ?? 0))", at: node, path: section.path("name"))
                } else {
                    names[value] = node
                    name = value
                }
            } else if section["name"] == nil {
                reader.error("missing name", at: item, path: path)
            }
            var sha256: String?
            if let node = section["sha256"], let value = reader.string(node, path: section.path("sha256")) {
                let hex = value.lowercased()
                if hex.count != 64 || !hex.allSatisfy({ $0.isHexDigit }) {
                    reader.error(
                        "sha256 must be 64 hex characters (the SHA-256 of the key, e.g. printf %s \"$KEY\" | sha256sum), got \(value.count) characters",
                        at: node, path: section.path("sha256"))
                } else if let first = hashes[hex] {
                    reader.error("the same sha256 as key \"\(first.name)\" (line \(first.node.mark?.line ?? 0)): each key needs its own secret", at: node, path: section.path("sha256"))
                } else {
                    hashes[hex] = (name ?? path, node)
                    sha256 = hex
                }
            } else if section["sha256"] == nil {
                reader.error("missing sha256", at: item, path: path)
            }

            var prefix: String?
            if let node = section["prefix"], let value = reader.string(node, path: section.path("prefix"), allowEmpty: false) {
                if !value.hasPrefix(GatewayKeys.prefix) || value.count > GatewayKeys.prefix.count + 8 {
                    reader.error(
                        "prefix must be the key's first characters: \"\(GatewayKeys.prefix)\" and at most 8 more (e.g. gw_AbC1), got \(value.count) characters",
                        at: node, path: section.path("prefix"))
                } else {
                    prefix = value
                }
            }

            var models = ["*"]
            if let node = section["models"] {
                if case .scalar = node, let single = reader.string(node, path: section.path("models"), allowEmpty: false) {
                    models = [single]
                } else if let patterns = reader.sequence(node, path: section.path("models"), of: "model names or globs") {
                    models = patterns.enumerated().compactMap { index, pattern in
                        reader.string(pattern, path: "\(section.path("models"))[\(index)]", allowEmpty: false)
                    }
                }
            }
            let rateLimit = section["rate_limit"].flatMap { readRateLimit($0, path: section.path("rate_limit"), reader) }
            let cache = section["cache"].flatMap { readKeyCache($0, path: section.path("cache"), reader) }
            let budget = section["budget"].flatMap { readKeyBudget($0, keyName: name, path: section.path("budget"), channels: channels, reader) }

            guard let name, let sha256 else { continue }
            var key = KeyConfig(name: name, sha256: sha256, models: models)
            key.rateLimit = rateLimit
            key.prefix = prefix
            if let cache { key.cache = cache }
            key.budget = budget
            keys.append(key)
        }
        return keys
    }

    private static func readRateLimit(_ node: Node, path: String, _ reader: ConfigReader) -> RateLimit? {
        guard let section = reader.section(node, path: path, known: ["requests_per_minute", "tokens_per_minute"]) else { return nil }
        var limit = RateLimit()
        if let node = section["requests_per_minute"] { limit.requestsPerMinute = reader.int(node, path: section.path("requests_per_minute"), minimum: 1) }
        if let node = section["tokens_per_minute"] { limit.tokensPerMinute = reader.int(node, path: section.path("tokens_per_minute"), minimum: 1) }
        return limit
    }

    private static func readKeyCache(_ node: Node, path: String, _ reader: ConfigReader) -> KeyCacheSettings? {
        guard let section = reader.section(node, path: path, known: ["enabled", "ttl"]) else { return nil }
        var settings = KeyCacheSettings()
        if let node = section["enabled"], let value = reader.bool(node, path: section.path("enabled")) { settings.enabled = value }
        if let node = section["ttl"], let value = reader.duration(node, path: section.path("ttl")) { settings.ttl = value }
        return settings
    }
}
