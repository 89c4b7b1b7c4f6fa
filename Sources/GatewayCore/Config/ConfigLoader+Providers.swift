import Yams

// MARK: - providers:

extension ConfigLoader {
    static let providerKeys = [
        "type", "base_url", "api_key", "timeouts", "headers", "retries", "retry_after_max",
        "max_tokens_default", "anthropic_version", "circuit_breaker", "responses_api",
    ]

    /// Where each provider type answers when `base_url` is left out.
    static func defaultBaseURL(for type: ProviderType) -> String {
        switch type {
        case .openai: "https://api.openai.com/v1"
        case .anthropic: "https://api.anthropic.com"
        case .gemini: "https://generativelanguage.googleapis.com"
        }
    }

    static func readProviders(_ top: Section, _ reader: ConfigReader) -> [ProviderConfig] {
        guard let section = reader.section(top["providers"], path: "providers", known: nil) else { return [] }
        var providers: [ProviderConfig] = []
        for name in section.order {
            let entry = section.entries[name]!
            let path = section.path(name)
            guard !name.isEmpty, !name.contains("/") else {
                reader.error("invalid provider name \"\(name)\" (it must be non-empty and without \"/\", which separates provider/model)", at: entry.key, path: path)
                continue
            }
            var provider: ProviderConfig?
            let unset = reader.collectingUnsetVariables {
                provider = readProvider(name: name, entry: entry, path: path, reader)
            }
            if var provider {
                provider.missingVariables = unset
                providers.append(provider)
            }
        }
        return providers
    }

    private static func readProvider(name: String, entry: Section.Entry, path: String, _ reader: ConfigReader) -> ProviderConfig? {
        guard let section = reader.section(entry.value, path: path, known: providerKeys) else { return nil }
        let type: ProviderType
        if let node = section["type"] {
            guard let value = reader.choice(node, path: section.path("type"), of: ProviderType.allCases) else { return nil }
            type = value
        } else if let value = ProviderType(rawValue: name) {
            type = value  // `openai: {api_key: …}` needs no `type: openai`.
        } else {
            let types = Suggestion.list(ProviderType.allCases.map(\.rawValue))
            reader.error("missing type (use \(types))", at: entry.key, path: path)
            return nil
        }

        var provider = ProviderConfig(name: name, type: type, baseURL: defaultBaseURL(for: type))
        if let node = section["base_url"], var url = reader.string(node, path: section.path("base_url")) {
            if reader.lastTextWasIncomplete || checkURL(url, schemes: ["http", "https"], node: node, path: section.path("base_url"), reader) {
                while url.hasSuffix("/") { url.removeLast() }
                provider.baseURL = url
            }
        }
        if let node = section["api_key"], let key = reader.string(node, path: section.path("api_key")) {
            provider.apiKey = reader.lastTextWasIncomplete ? nil : key
        }
        if let timeouts = readTimeouts(section, reader) { provider.timeouts = timeouts }
        if let breaker = readCircuitBreaker(section, reader) { provider.circuitBreaker = breaker }
        if let node = section["headers"] { provider.headers = readHeaders(node, path: section.path("headers"), reader) }
        if let node = section["retries"], let value = reader.int(node, path: section.path("retries")) { provider.retries = value }
        if let node = section["retry_after_max"], let value = reader.duration(node, path: section.path("retry_after_max")) {
            provider.retryAfterMax = value
        }
        for key in ["max_tokens_default", "anthropic_version"] where type != .anthropic && section[key] != nil {
            reader.warning("\(key) is only used by anthropic providers; this one is \(type.rawValue)", at: section.entries[key]?.key, path: section.path(key))
        }
        if let node = section["max_tokens_default"], let value = reader.int(node, path: section.path("max_tokens_default"), minimum: 1) {
            provider.defaultMaxTokens = value
        }
        if let node = section["anthropic_version"], let value = reader.string(node, path: section.path("anthropic_version"), allowEmpty: false) {
            provider.anthropicVersion = value
        }
        if let node = section["responses_api"] {
            if type != .openai {
                reader.warning("responses_api is only used by openai providers; this one is \(type.rawValue)", at: section.entries["responses_api"]?.key, path: section.path("responses_api"))
            }
            provider.responsesAPI = reader.bool(node, path: section.path("responses_api"))
        }
        return provider
    }

    private static func readTimeouts(_ provider: Section, _ reader: ConfigReader) -> ProviderTimeouts? {
        guard let node = provider["timeouts"],
            let section = reader.section(node, path: provider.path("timeouts"), known: ["connect", "first_byte", "idle", "total"])
        else { return nil }
        var timeouts = ProviderTimeouts()
        if let node = section["connect"], let value = reader.duration(node, path: section.path("connect")) { timeouts.connect = value }
        if let node = section["first_byte"], let value = reader.duration(node, path: section.path("first_byte")) { timeouts.firstByte = value }
        if let node = section["idle"], let value = reader.duration(node, path: section.path("idle")) { timeouts.idle = value }
        if let node = section["total"], let value = reader.duration(node, path: section.path("total")) { timeouts.total = value }
        for (key, value) in [("connect", timeouts.connect), ("first_byte", timeouts.firstByte), ("idle", timeouts.idle), ("total", timeouts.total)]
        where value == .zero && section[key] != nil {
            reader.error("must be longer than 0", at: section[key], path: section.path(key))
        }
        return timeouts
    }

    private static func readCircuitBreaker(_ provider: Section, _ reader: ConfigReader) -> CircuitBreakerSettings? {
        guard let node = provider["circuit_breaker"],
            let section = reader.section(
                node, path: provider.path("circuit_breaker"),
                known: ["failures", "error_ratio", "min_requests", "window", "cool_down"])
        else { return nil }
        var settings = CircuitBreakerSettings()
        if let node = section["failures"], let value = reader.int(node, path: section.path("failures"), minimum: 1) {
            settings.consecutiveFailures = value
        }
        if let node = section["error_ratio"] {
            if case .scalar(let scalar) = node, scalar.string == "off" {
                settings.errorRatio = nil
            } else if let value = reader.double(node, path: section.path("error_ratio")) {
                if value > 0 && value <= 1 {
                    settings.errorRatio = value
                } else {
                    reader.error("must be between 0 (exclusive) and 1, or off", at: node, path: section.path("error_ratio"))
                }
            }
        }
        if let node = section["min_requests"], let value = reader.int(node, path: section.path("min_requests"), minimum: 1) {
            settings.minimumRequests = value
        }
        if let node = section["window"], let value = reader.duration(node, path: section.path("window")) { settings.window = value }
        if let node = section["cool_down"], let value = reader.duration(node, path: section.path("cool_down")) { settings.coolDown = value }
        return settings
    }

    private static func readHeaders(_ node: Node, path: String, _ reader: ConfigReader) -> [String: String] {
        guard let section = reader.section(node, path: path, known: nil) else { return [:] }
        var headers: [String: String] = [:]
        for name in section.order {
            let entry = section.entries[name]!
            let tokenCharacters = "!#$%&'*+-.^_`|~"
            guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || tokenCharacters.unicodeScalars.contains($0)) }) else {
                reader.error("invalid header name \"\(name)\"", at: entry.key, path: section.path(name))
                continue
            }
            if let value = reader.string(entry.value, path: section.path(name)) {
                guard !value.contains("\r"), !value.contains("\n") else {
                    reader.error("header value must be on one line", at: entry.value, path: section.path(name))
                    continue
                }
                headers[name] = value
            }
        }
        return headers
    }
}
