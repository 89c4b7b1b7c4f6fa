import Yams

// MARK: - Daemon settings: server, admin, logging

extension ConfigLoader {
    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    static func readServer(_ top: Section, _ reader: ConfigReader) -> ServerSettings {
        var settings = ServerSettings()
        guard let section = reader.section(top["server"], path: "server", known: ["listen", "max_body_bytes", "drain_timeout", "idle_timeout", "header_timeout", "max_connections"]) else {
            return settings
        }
        if let address = readListen(section, reader) {
            settings.host = address.host
            settings.port = address.port
        }
        if let node = section["max_body_bytes"], let bytes = reader.size(node, path: section.path("max_body_bytes")) {
            if bytes == 0 {
                reader.error("must be more than 0 bytes", at: node, path: section.path("max_body_bytes"))
            } else {
                settings.maxBodyBytes = bytes
            }
        }
        if let node = section["drain_timeout"], let duration = reader.duration(node, path: section.path("drain_timeout")) {
            settings.drainTimeout = duration
        }
        for (name, setting) in [("idle_timeout", \ServerSettings.idleTimeout), ("header_timeout", \.headerTimeout)] {
            guard let node = section[name], let duration = reader.duration(node, path: section.path(name)) else { continue }
            if duration <= .zero {
                reader.error("must be more than 0 (a connection must not stay open forever)", at: node, path: section.path(name))
            } else {
                settings[keyPath: setting] = duration
            }
        }
        if let node = section["max_connections"], let count = reader.int(node, path: section.path("max_connections"), minimum: 1) {
            settings.maxConnections = count
        }
        return settings
    }

    /// A section's `listen` address; nil (with the problem reported) when absent or invalid.
    static func readListen(_ section: Section, _ reader: ConfigReader) -> (host: String, port: Int)? {
        guard let node = section["listen"], let text = reader.string(node, path: section.path("listen")) else { return nil }
        switch ListenAddress.parse(text) {
        case .success(let address):
            return (address.host, address.port)
        case .failure(let failure):
            reader.error(failure.message, at: node, path: section.path("listen"))
            return nil
        }
    }

    static func readMetrics(_ top: Section, _ reader: ConfigReader) -> MetricsSettings {
        var settings = MetricsSettings()
        guard let section = reader.section(top["metrics"], path: "metrics", known: ["listen", "token"]) else { return settings }
        if let address = readListen(section, reader) {
            settings.listenHost = address.host
            settings.listenPort = address.port
        }
        if let node = section["token"], let token = reader.string(node, path: section.path("token"), allowEmpty: false) {
            if token.utf8.count < 16 {
                reader.error("must be at least 16 characters (it guards spend and key names)", at: node, path: section.path("token"))
            } else {
                settings.token = token
            }
        }
        return settings
    }

    static func readAdmin(_ top: Section, _ reader: ConfigReader) -> AdminSettings {
        var settings = AdminSettings()
        guard let section = reader.section(top["admin"], path: "admin", known: ["socket", "mode"]) else { return settings }
        if let node = section["socket"], let path = reader.string(node, path: section.path("socket"), allowEmpty: false) {
            if path.hasPrefix("/") {
                settings.socket = path
            } else {
                reader.error("socket path \"\(path)\" must be absolute", at: node, path: section.path("socket"))
            }
        }
        if let node = section["mode"], let text = reader.text(node, path: section.path("mode"), what: "a file mode") {
            if let mode = FileMode.parse(text) {
                settings.mode = mode
            } else {
                reader.error("invalid file mode \"\(text)\" (use octal digits like chmod, e.g. \"0600\" or \"0660\")", at: node, path: section.path("mode"))
            }
        }
        return settings
    }

    static func readLogging(_ top: Section, _ reader: ConfigReader) -> LoggingSettings {
        var settings = LoggingSettings()
        guard let section = reader.section(top["logging"], path: "logging", known: ["level"]) else { return settings }
        if let node = section["level"], let level = reader.choice(node, path: section.path("level"), among: logLevels) {
            settings.level = level
        }
        return settings
    }

    // MARK: - Stores: cache, rate_limits, redis, request_log, postgres

    static func readCache(_ top: Section, _ reader: ConfigReader) -> CacheSettings {
        var settings = CacheSettings()
        let known = ["backend", "ttl", "max_entries", "max_bytes", "scope", "semantic"]
        guard let section = reader.section(top["cache"], path: "cache", known: known) else { return settings }
        settings.semantic = readSemanticCache(section["semantic"], path: section.path("semantic"), reader)
        if let node = section["backend"], let value = reader.choice(node, path: section.path("backend"), of: [CacheSettings.Backend.memory, .redis, .off]) {
            settings.backend = value
        }
        if let node = section["ttl"], let value = reader.duration(node, path: section.path("ttl")) { settings.ttl = value }
        if let node = section["max_entries"], let value = reader.int(node, path: section.path("max_entries")) { settings.maxEntries = value }
        if let node = section["max_bytes"], let value = reader.size(node, path: section.path("max_bytes")) { settings.maxBytes = value }
        if let node = section["scope"], let value = reader.choice(node, path: section.path("scope"), of: [CacheSettings.Scope.key, .global]) {
            settings.scope = value
        }
        return settings
    }

    static func readRateLimits(_ top: Section, _ reader: ConfigReader) -> RateLimitSettings {
        var settings = RateLimitSettings()
        guard let section = reader.section(top["rate_limits"], path: "rate_limits", known: ["backend", "on_backend_error"]) else {
            return settings
        }
        if let node = section["backend"], let value = reader.choice(node, path: section.path("backend"), of: [RateLimitSettings.Backend.memory, .redis]) {
            settings.backend = value
        }
        if let node = section["on_backend_error"],
            let value = reader.choice(node, path: section.path("on_backend_error"), of: [RateLimitSettings.OnBackendError.allow, .deny])
        {
            settings.onBackendError = value
        }
        return settings
    }

    static func readRedis(_ top: Section, _ reader: ConfigReader) -> RedisSettings {
        var settings = RedisSettings()
        let known = ["url", "prefix", "pool_size", "connect_timeout", "command_timeout"]
        guard let section = reader.section(top["redis"], path: "redis", known: known) else { return settings }
        if let node = section["url"], let url = reader.string(node, path: section.path("url")) {
            if checkURL(url, schemes: ["redis", "rediss", "unix"], node: node, path: section.path("url"), reader) {
                do {
                    _ = try RedisConfiguration(url: url)
                    settings.url = url
                } catch {
                    reader.error(error.message, at: node, path: section.path("url"))
                }
            }
        }
        if let node = section["prefix"], let value = reader.string(node, path: section.path("prefix")) { settings.prefix = value }
        if let node = section["pool_size"], let value = reader.int(node, path: section.path("pool_size"), minimum: 1) { settings.poolSize = value }
        if let node = section["connect_timeout"], let value = reader.duration(node, path: section.path("connect_timeout")) {
            settings.connectTimeout = value
        }
        if let node = section["command_timeout"], let value = reader.duration(node, path: section.path("command_timeout")) {
            settings.commandTimeout = value
        }
        return settings
    }

    static func readRequestLog(_ top: Section, _ reader: ConfigReader) -> RequestLogSettings {
        var settings = RequestLogSettings()
        let known = ["backend", "path", "spool_path", "batch_size", "flush_interval", "responses_ttl"]
        guard let section = reader.section(top["request_log"], path: "request_log", known: known) else { return settings }
        if let node = section["backend"],
            let value = reader.choice(node, path: section.path("backend"), of: [RequestLogSettings.Backend.sqlite, .postgres, .off])
        {
            settings.backend = value
        }
        if let node = section["path"], let value = reader.string(node, path: section.path("path"), allowEmpty: false) { settings.path = value }
        if let node = section["spool_path"], let value = reader.string(node, path: section.path("spool_path"), allowEmpty: false) {
            settings.spoolPath = value
        }
        if let node = section["batch_size"], let value = reader.int(node, path: section.path("batch_size"), minimum: 1) { settings.batchSize = value }
        if let node = section["flush_interval"], let value = reader.duration(node, path: section.path("flush_interval")) {
            settings.flushInterval = value
        }
        if let node = section["responses_ttl"], let value = reader.duration(node, path: section.path("responses_ttl")) {
            if value > .zero {
                settings.responsesTTL = value
            } else {
                reader.error("must be longer than 0 (e.g. 720h)", at: node, path: section.path("responses_ttl"))
            }
        }
        return settings
    }

    static func readPostgres(_ top: Section, _ reader: ConfigReader) -> PostgresSettings {
        var settings = PostgresSettings()
        guard let section = reader.section(top["postgres"], path: "postgres", known: ["url", "pool_size"]) else { return settings }
        if let node = section["url"], let url = reader.string(node, path: section.path("url")) {
            if checkURL(url, schemes: ["postgres", "postgresql"], node: node, path: section.path("url"), reader) { settings.url = url }
        }
        if let node = section["pool_size"], let value = reader.int(node, path: section.path("pool_size"), minimum: 1) { settings.poolSize = value }
        return settings
    }

    /// True when `url` has one of `schemes` and something after it; reports otherwise.
    static func checkURL(_ url: String, schemes: [String], node: Node, path: String, _ reader: ConfigReader) -> Bool {
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 2, schemes.contains(parts[0].lowercased()), !parts[1].isEmpty, !url.contains(" ") {
            return true
        }
        let list = Suggestion.list(schemes.map { "\($0)://" })
        reader.error("invalid URL \"\(URLCredentials.redacting(url))\" (must start with \(list))", at: node, path: path)
        return false
    }
}

// MARK: - Value formats

/// `host:port` or `[ipv6]:port`.
enum ListenAddress {
    struct Invalid: Error {
        var message: String
    }

    static func parse(_ text: String) -> Result<(host: String, port: Int), Invalid> {
        let hint = "use host:port, e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080"
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return .failure(Invalid(message: "invalid listen address \"\(text)\" (\(hint))"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            guard host.contains(":") else {
                return .failure(Invalid(message: "invalid listen address \"\(text)\": brackets are only for IPv6 addresses"))
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(Invalid(message: "invalid listen address \"\(text)\": missing port (\(hint))"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                return .failure(Invalid(message: "invalid listen address \"\(text)\": put an IPv6 address in brackets, e.g. [::1]:8080"))
            }
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }) else {
            return .failure(Invalid(message: "invalid listen address \"\(text)\": missing host (\(hint))"))
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), port <= 65535 else {
            return .failure(Invalid(message: "invalid port \"\(portText)\" in listen address \"\(text)\" (use 0 to 65535; 0 picks a free port)"))
        }
        return .success((String(host), port))
    }
}

/// Unix file modes written as in chmod: octal digits, with an optional `0o` prefix (`600`, `0600`, `0o600`).
enum FileMode {
    static func parse(_ text: String) -> UInt16? {
        var digits = Substring(text)
        if digits.lowercased().hasPrefix("0o") { digits = digits.dropFirst(2) }
        guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ ("0"..."7").contains($0) }),
            let mode = UInt16(digits, radix: 8), mode <= 0o7777
        else { return nil }
        return mode
    }
}
