import Yams

// MARK: - cache.semantic

extension ConfigLoader {
    static let semanticCacheKeys = ["embedder", "threshold", "ttl", "max_entries", "routes", "models", "scope", "timeout"]
    /// Routes the semantic tier can serve (chat answers only).
    static let semanticCacheRoutes = ["/v1/chat/completions"]

    /// Reads `cache.semantic`; the embedder is checked against `models:` once they are known (`checkSemanticEmbedder`).
    static func readSemanticCache(_ node: Node?, path: String, _ reader: ConfigReader) -> SemanticCacheSettings? {
        guard let node, let section = reader.section(node, path: path, known: semanticCacheKeys) else { return nil }
        guard let embedderNode = section["embedder"] else {
            reader.error("missing embedder (an embedding model under models:, e.g. a local server's, or text-embedding-3-small)", at: node, path: path)
            return nil
        }
        guard let embedder = reader.string(embedderNode, path: section.path("embedder"), allowEmpty: false) else { return nil }
        var settings = SemanticCacheSettings(embedder: embedder)
        if let node = section["threshold"], let value = reader.double(node, path: section.path("threshold")) {
            if value > 0 && value <= 1 {
                settings.threshold = value
            } else {
                reader.error("threshold must be a cosine similarity above 0 and at most 1, got \(value)", at: node, path: section.path("threshold"))
            }
            if value > 0 && value < 0.9 {
                reader.warning(
                    "threshold \(value) serves many different questions from one answer (bench/semantic_cache.py measured over 3 % wrong hits below 0.90 with all-MiniLM-L6-v2)",
                    at: node, path: section.path("threshold"))
            }
        }
        if let node = section["ttl"], let value = reader.duration(node, path: section.path("ttl")) { settings.ttl = value }
        if let node = section["max_entries"], let value = reader.int(node, path: section.path("max_entries"), minimum: 1) { settings.maxEntries = value }
        if let node = section["timeout"], let value = reader.duration(node, path: section.path("timeout")) {
            if value > .zero { settings.timeout = value } else { reader.error("timeout must be above 0", at: node, path: section.path("timeout")) }
        }
        if let node = section["scope"], let value = reader.choice(node, path: section.path("scope"), of: [CacheSettings.Scope.key, .global]) {
            settings.scope = value
        }
        if let node = section["routes"], let items = reader.sequence(node, path: section.path("routes"), of: "routes") {
            settings.routes = items.enumerated().compactMap { index, item in
                guard let route = reader.string(item, path: "\(section.path("routes"))[\(index)]", allowEmpty: false) else { return nil }
                guard semanticCacheRoutes.contains(route) else {
                    reader.error(
                        "the semantic cache serves chat answers only: routes may hold \(semanticCacheRoutes.joined(separator: ", ")), not \(route)",
                        at: item, path: "\(section.path("routes"))[\(index)]")
                    return nil
                }
                return route
            }
        }
        if let node = section["models"], let items = reader.sequence(node, path: section.path("models"), of: "model names or globs") {
            settings.models = items.enumerated().compactMap { index, item in
                reader.string(item, path: "\(section.path("models"))[\(index)]", allowEmpty: false)
            }
        }
        return settings
    }

    /// The embedder must be an embedding model the gateway can call.
    static func checkSemanticEmbedder(_ top: Section, config: GatewayConfig, _ reader: ConfigReader) {
        guard let settings = config.cache.semantic else { return }
        let node = (top["cache"]).flatMap { cache -> Node? in
            if case .mapping(let mapping) = cache { return mapping["semantic"]?.mapping?["embedder"] }
            return nil
        }
        let path = "cache.semantic.embedder"
        let table = ModelTable(config: config)
        guard let model = table.resolve(settings.embedder) else {
            reader.error("unknown model \"\(settings.embedder)\": the embedder must be an embedding model under models: (kind: embedding), a built-in one, or provider/model", at: node, path: path)
            return
        }
        if model.kind == .chat {
            reader.error("\"\(settings.embedder)\" is a chat model; the embedder must be an embedding model (kind: embedding)", at: node, path: path)
        } else if model.provider.type == .anthropic {
            reader.error("\"\(settings.embedder)\" is served by anthropic, which has no embeddings API", at: node, path: path)
        }
        if config.cache.backend == .off {
            reader.warning("cache.backend is off, so the semantic cache is off too", at: node, path: path)
        }
    }
}
