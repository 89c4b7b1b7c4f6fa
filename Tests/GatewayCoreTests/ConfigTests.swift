import Testing

@testable import GatewayCore

@Suite struct ConfigTests {
    static let hash = String(repeating: "ab", count: 32)

    private func parse(_ yaml: String, environment: [String: String] = [:]) -> ConfigLoadResult {
        ConfigLoader.parse(yaml: yaml, file: "gateway.yaml", environment: environment)
    }

    /// The only error in `result`, failing the test when there is not exactly one.
    private func onlyError(_ result: ConfigLoadResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> ConfigProblem {
        #expect(result.config == nil, sourceLocation: sourceLocation)
        #expect(result.errors.count == 1, "\(result.errors)", sourceLocation: sourceLocation)
        return try #require(result.errors.first, sourceLocation: sourceLocation)
    }

    // MARK: - Whole files

    static let fullExample = """
        server:
          listen: 127.0.0.1:8080
          max_body_bytes: 20MiB
          drain_timeout: 30s
        admin:
          socket: /run/llm-gateway/admin.sock
          mode: "0600"
        logging: {level: debug}
        providers:
          openai:
            type: openai
            base_url: https://api.openai.com/v1/
            api_key: ${OPENAI_API_KEY}
            timeouts: {connect: 5s, first_byte: 60s, idle: 45s, total: 10m}
            headers: {OpenAI-Organization: org-123}
            retries: 2
            retry_after_max: 5s
          anthropic:
            type: anthropic
            base_url: https://api.anthropic.com
            api_key: ${ANTHROPIC_API_KEY}
            max_tokens_default: 8192
            anthropic_version: "2023-06-01"
          gemini: {type: gemini, base_url: https://generativelanguage.googleapis.com, api_key: "${GEMINI_API_KEY}"}
        models:
          gpt-4o-mini:
            provider: openai
            upstream: gpt-4o-mini-2024-07-18
            fallbacks: [claude-haiku-4-5, gemini-2.5-flash, openai/gpt-4.1-nano]
            price: {input: 0.15, output: 0.60, cached_input: 0.075, cache_write: 0.1875}
            deployments: [{provider: openai, weight: 2}]
          local-llama:
            provider: openai
            upstream: llama3
            price: {input: 0, output: 0}
        keys:
          - name: web-app
            sha256: \(hash.uppercased())
            models: ["*"]
            rate_limit: {requests_per_minute: 100, tokens_per_minute: 100000}
            cache: {enabled: true, ttl: 10m}
          - name: batch
            sha256: \(String(repeating: "0", count: 64))
            models: ["gpt-4o*", "claude-*"]
            cache: {enabled: false}
        cache: {backend: redis, ttl: 1h, max_entries: 10000, max_bytes: 256MiB, scope: global}
        rate_limits: {backend: redis, on_backend_error: deny}
        redis: {url: "redis://127.0.0.1:6379/0", prefix: "gw:", pool_size: 8, connect_timeout: 2s, command_timeout: 1s}
        request_log: {backend: postgres, path: /var/lib/llm-gateway/requests.db, spool_path: /var/spool/gw, batch_size: 250, flush_interval: 1s}
        postgres: {url: "postgres://gateway@127.0.0.1/gateway", pool_size: 4}
        """

    static let fullEnvironment = ["OPENAI_API_KEY": "sk-openai", "ANTHROPIC_API_KEY": "sk-ant", "GEMINI_API_KEY": "g-key"]

    @Test func fullExampleParsesIntoExpectedValues() throws {
        let result = parse(Self.fullExample, environment: Self.fullEnvironment)
        #expect(result.problems.isEmpty, "\(result.problems)")
        let config = try #require(result.config)

        #expect(config.server.host == "127.0.0.1")
        #expect(config.server.port == 8080)
        #expect(config.server.maxBodyBytes == 20 * 1024 * 1024)
        #expect(config.server.drainTimeout == .seconds(30))
        #expect(config.admin.socket == "/run/llm-gateway/admin.sock")
        #expect(config.admin.mode == 0o600)
        #expect(config.logging.level == "debug")

        #expect(config.providers.map(\.name) == ["openai", "anthropic", "gemini"])
        let openai = try #require(config.provider(named: "openai"))
        #expect(openai.type == .openai)
        #expect(openai.baseURL == "https://api.openai.com/v1")
        #expect(openai.apiKey == "sk-openai")
        #expect(openai.isEnabled)
        #expect(openai.timeouts.connect == .seconds(5))
        #expect(openai.timeouts.firstByte == .seconds(60))
        #expect(openai.timeouts.idle == .seconds(45))
        #expect(openai.timeouts.total == .seconds(600))
        #expect(openai.headers == ["OpenAI-Organization": "org-123"])
        #expect(openai.retries == 2)
        #expect(openai.retryAfterMax == .seconds(5))
        let anthropic = try #require(config.provider(named: "anthropic"))
        #expect(anthropic.type == .anthropic)
        #expect(anthropic.apiKey == "sk-ant")
        #expect(anthropic.defaultMaxTokens == 8192)
        #expect(anthropic.anthropicVersion == "2023-06-01")
        #expect(config.provider(named: "gemini")?.baseURL == "https://generativelanguage.googleapis.com")

        let mini = try #require(config.models["gpt-4o-mini"])
        #expect(mini.provider == "openai")
        #expect(mini.upstream == "gpt-4o-mini-2024-07-18")
        #expect(mini.fallbacks == ["claude-haiku-4-5", "gemini-2.5-flash", "openai/gpt-4.1-nano"])
        #expect(mini.price == Price(input: 0.15, output: 0.60, cachedInput: 0.075, cacheWrite: 0.1875))
        #expect(mini.deployments == [Deployment(provider: "openai", weight: 2)])
        let llama = try #require(config.models["local-llama"])
        #expect(llama.upstream == "llama3")
        #expect(llama.fallbacks == nil)
        #expect(llama.price == Price(input: 0, output: 0))

        #expect(config.keys.count == 2)
        let web = config.keys[0]
        #expect(web.name == "web-app")
        #expect(web.sha256 == Self.hash)  // lower-cased
        #expect(web.models == ["*"])
        #expect(web.rateLimit == RateLimit(requestsPerMinute: 100, tokensPerMinute: 100_000))
        #expect(web.cache == KeyCacheSettings(enabled: true, ttl: .seconds(600)))
        #expect(config.keys[1].models == ["gpt-4o*", "claude-*"])
        #expect(config.keys[1].cache.enabled == false)
        #expect(config.keys[1].rateLimit == nil)

        #expect(config.cache.backend == .redis)
        #expect(config.cache.ttl == .seconds(3600))
        #expect(config.cache.maxEntries == 10_000)
        #expect(config.cache.maxBytes == 256 * 1024 * 1024)
        #expect(config.cache.scope == .global)
        #expect(config.rateLimits.backend == .redis)
        #expect(config.rateLimits.onBackendError == .deny)
        #expect(config.redis.url == "redis://127.0.0.1:6379/0")
        #expect(config.redis.prefix == "gw:")
        #expect(config.redis.commandTimeout == .seconds(1))
        #expect(config.requestLog.backend == .postgres)
        #expect(config.requestLog.spoolPath == "/var/spool/gw")
        #expect(config.requestLog.batchSize == 250)
        #expect(config.postgres.poolSize == 4)
    }

    @Test(arguments: ["", "{}", "# only a comment\n", "---\n"])
    func emptyFileGivesDefaults(yaml: String) throws {
        let result = parse(yaml)
        #expect(result.errors.isEmpty)
        let config = try #require(result.config)
        #expect(config.server == ServerSettings())
        #expect(config.admin == AdminSettings())
        #expect(config.cache == CacheSettings())
        #expect(config.rateLimits == RateLimitSettings())
        #expect(config.redis == RedisSettings())
        #expect(config.requestLog == RequestLogSettings())
        #expect(config.postgres == PostgresSettings())
        #expect(config.logging == LoggingSettings())
        #expect(config.providers.isEmpty)
        #expect(config.models.isEmpty)
        // No keys at all: accepted, with a warning that every request will be refused.
        #expect(result.warnings.count == 1)
        #expect(result.warnings.first?.path == "keys")
        #expect(result.warnings.first?.message.contains("401") == true)
        // A section missing altogether is reported at the top of the file, so the warning still has a position.
        #expect(result.warnings.first?.description.hasPrefix("gateway.yaml:1:1: warning: keys: no keys configured") == true)
    }

    @Test func emptySectionsKeepDefaults() throws {
        let result = parse("server:\nproviders:\nkeys: []\n")
        let config = try #require(result.config)
        #expect(config.server == ServerSettings())
        #expect(result.warnings.map(\.path) == ["keys"])
        #expect(result.warnings.first?.line == 3)
    }

    // MARK: - Positions and messages

    @Test func invalidDurationNamesPathAndPosition() throws {
        let yaml = """
            providers:
              openai:
                timeouts: {connect: 5x}
            """
        let problem = try onlyError(parse(yaml))
        #expect(problem.path == "providers.openai.timeouts.connect")
        #expect(problem.line == 3)
        #expect(problem.column == 25)
        #expect(problem.description == "gateway.yaml:3:25: error: providers.openai.timeouts.connect: invalid duration \"5x\": unknown unit \"x\" (use ms, s, m or h)")
    }

    @Test func yamlSyntaxErrorHasPosition() throws {
        let problem = try onlyError(parse("server:\n  listen: [127.0.0.1\nadmin: {}\n"))
        #expect(problem.line >= 2)
        #expect(problem.column >= 1)
        #expect(problem.path == "")
        #expect(problem.message.hasPrefix("invalid YAML"))
        #expect(problem.description.hasPrefix("gateway.yaml:\(problem.line):\(problem.column): error: invalid YAML"))
    }

    @Test func unquotedVariableInFlowMappingGetsAHint() throws {
        let problem = try onlyError(parse("providers:\n  gemini: {type: gemini, api_key: ${GEMINI_API_KEY}}\n"))
        #expect(problem.line == 2)
        #expect(problem.message.hasPrefix("invalid YAML"))
        #expect(problem.message.contains("quote values that contain ${VAR}"))
    }

    @Test func duplicateYamlKeyIsAnError() throws {
        let problem = try onlyError(parse("server:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n"))
        #expect(problem.message.contains("duplicate key \"listen\""))
        #expect(problem.line == 2)
    }

    @Test func unknownKeySuggestsClosest() throws {
        let problem = try onlyError(parse("server:\n  max_body_byte: 1MiB\n"))
        #expect(problem.path == "server.max_body_byte")
        #expect(problem.line == 2)
        #expect(problem.column == 3)
        #expect(problem.message == "unknown key \"max_body_byte\" (did you mean \"max_body_bytes\"?)")

        let camel = try onlyError(parse("server:\n  maxBodyBytes: 1MiB\n"))
        #expect(camel.message.contains("did you mean \"max_body_bytes\""))

        let section = try onlyError(parse("provders: {}\n"))
        #expect(section.message == "unknown key \"provders\" (did you mean \"providers\"?)")
        #expect(section.path == "provders")

        let farOff = try onlyError(parse("server:\n  colour: blue\n"))
        #expect(farOff.message == "unknown key \"colour\"")
    }

    @Test func wrongTypesAreErrors() throws {
        let list = try onlyError(parse("server: [a, b]\n"))
        #expect(list.path == "server")
        #expect(list.message == "expected a mapping of settings, got a list")
        #expect(list.line == 1 && list.column == 9)

        let mapping = try onlyError(parse("cache:\n  max_entries: {a: 1}\n"))
        #expect(mapping.path == "cache.max_entries")
        #expect(mapping.message == "expected an integer, got a mapping")

        let text = try onlyError(parse("request_log:\n  batch_size: lots\n"))
        #expect(text.message == "expected an integer, got \"lots\"")
        #expect(text.line == 2 && text.column == 15)

        let flag = try onlyError(parse("keys:\n  - {name: a, sha256: \(Self.hash), cache: {enabled: maybe}}\n"))
        #expect(flag.path == "keys[0].cache.enabled")
        #expect(flag.message == "expected true or false, got \"maybe\"")
    }

    @Test(arguments: [
        ("server: {listen: localhost}", "server.listen", "missing port"),
        ("server: {listen: \"127.0.0.1:99999\"}", "server.listen", "invalid port \"99999\""),
        ("server: {listen: \"::1:8080\"}", "server.listen", "brackets"),
        ("server: {listen: \":8080\"}", "server.listen", "missing host"),
        ("server: {max_body_bytes: 20M}", "server.max_body_bytes", "unknown unit \"M\""),
        ("server: {max_body_bytes: 0}", "server.max_body_bytes", "more than 0"),
        ("admin: {mode: \"0800\"}", "admin.mode", "invalid file mode \"0800\""),
        ("admin: {socket: relative.sock}", "admin.socket", "must be absolute"),
        ("logging: {level: verbose}", "logging.level", "invalid value \"verbose\" (use trace, debug, info, notice, warning, error or critical)"),
        ("cache: {backend: memroy}", "cache.backend", "did you mean \"memory\"?"),
        ("cache: {scope: user}", "cache.scope", "use key or global"),
        ("rate_limits: {on_backend_error: maybe}", "rate_limits.on_backend_error", "use allow or deny"),
        ("request_log: {responses_ttl: 0}", "request_log.responses_ttl", "longer than 0"),
        ("request_log: {backend: mysql}", "request_log.backend", "use sqlite, postgres or off"),
        ("redis: {url: \"http://x\"}", "redis.url", "must start with redis://"),
        ("redis: {pool_size: 0}", "redis.pool_size", "at least 1"),
        ("postgres: {url: \"mysql://x\"}", "postgres.url", "postgres://"),
        ("providers: {x: {type: cohere}}", "providers.x.type", "invalid value \"cohere\" (use openai, anthropic or gemini)"),
        ("providers: {x: {base_url: \"https://x\"}}", "providers.x", "missing type"),
        ("providers: {openai: {base_url: \"ftp://x\"}}", "providers.openai.base_url", "must start with http:// or https://"),
        ("providers: {openai: {retries: -1}}", "providers.openai.retries", "must be zero or more, got -1"),
        ("providers: {openai: {timeouts: {idle: 0}}}", "providers.openai.timeouts.idle", "longer than 0"),
        ("providers: {\"a/b\": {type: openai}}", "providers.a/b", "without \"/\""),
        ("models: {m: {provider: openai}}", "models.m.provider", "unknown provider \"openai\""),
        ("providers: {openai: {}}\nmodels: {m: {provider: opena}}", "models.m.provider", "did you mean \"openai\"?"),
        ("providers: {openai: {}}\nmodels: {m: {provider: openai, price: {input: -1, output: 1}}}", "models.m.price.input", "must not be negative"),
        ("providers: {openai: {}}\nmodels: {m: {provider: openai, price: {input: 1}}}", "models.m.price.output", "missing output price"),
        ("providers: {openai: {}}\nmodels: {m: {provider: openai, deployments: [{provider: azure}]}}", "models.m.deployments[0].provider", "unknown provider \"azure\""),
        ("providers: {openai: {}}\nmodels: {m: {provider: openai, deployments: [{provider: openai, weight: -2}]}}", "models.m.deployments[0].weight", "zero or more"),
        ("providers: {openai: {}}\nmodels: {m: {provider: openai, fallbacks: [nosuch-model]}}", "models.m.fallbacks[0]", "unknown model \"nosuch-model\""),
        ("providers: {openai: {}}\nmodels: {m: {provider: openai, fallbacks: [azure/gpt-4o]}}", "models.m.fallbacks[0]", "unknown provider \"azure\""),
        ("models: {my-model: {upstream: x}}", "models.my-model", "missing provider"),
        ("models: {claude-haiku-4-5: {}}", "models.claude-haiku-4-5", "no anthropic provider is configured"),
        ("keys: [{name: a, sha256: abc}]", "keys[0].sha256", "64 hex characters"),
        ("keys: [{name: a, sha256: \(String(repeating: "g", count: 64))}]", "keys[0].sha256", "64 hex characters"),
        ("keys: [{name: \"\", sha256: \(hash)}]", "keys[0].name", "must not be empty"),
        ("keys: [{sha256: \(hash)}]", "keys[0]", "missing name"),
        ("keys: [{name: a, sha256: \(hash), rate_limit: {requests_per_minute: -5}}]", "keys[0].rate_limit.requests_per_minute", "at least 1"),
        ("keys: [{name: a, sha256: \(hash), models: [\"\"]}]", "keys[0].models[0]", "must not be empty"),
        ("keys: {name: a}", "keys", "expected a list of keys"),
        ("redis: {url: \"${REDIS_URL}\"}", "redis.url", "environment variable REDIS_URL is not set"),
        ("request_log: {path: \"${STATE_DIR}/requests.db\"}", "request_log.path", "environment variable STATE_DIR is not set"),
        ("redis: {url: \"redis://${HOST\"}", "redis.url", "unterminated \"${\""),
        ("redis: {url: \"redis://${}\"}", "redis.url", "empty variable name"),
        ("redis: {url: \"redis://${1HOST}\"}", "redis.url", "invalid variable name \"1HOST\""),
    ])
    func eachErrorKindIsReported(yaml: String, path: String, fragment: String) throws {
        // A key keeps the "no keys" warning out of the way, unless the snippet is about keys.
        let result = parse(yaml.contains("keys:") ? yaml : yaml + "\nkeys: [{name: test, sha256: \(Self.hash)}]\n")
        #expect(result.config == nil)
        let problem = try #require(result.errors.first { $0.path == path }, "no error at \(path) in \(result.problems)")
        #expect(problem.message.contains(fragment), "\(problem.message)")
        #expect(problem.line >= 1 && problem.column >= 1)
    }

    @Test func duplicateKeyNamesAndSecrets() throws {
        let yaml = """
            keys:
              - {name: web, sha256: \(Self.hash)}
              - {name: web, sha256: \(String(repeating: "1", count: 64))}
              - {name: other, sha256: \(Self.hash.uppercased())}
            """
        let result = parse(yaml)
        #expect(result.config == nil)
        #expect(result.errors.count == 2)
        let name = try #require(result.errors.first)
        #expect(name.path == "keys[1].name")
        #expect(name.line == 3 && name.column == 12)
        #expect(name.message == "duplicate key name \"web\" (first used at line 2)")
        let secret = try #require(result.errors.last)
        #expect(secret.path == "keys[2].sha256")
        #expect(secret.message.contains("the same sha256 as key \"web\""))
    }

    @Test func reportsEveryErrorAtOnceInFileOrder() throws {
        let yaml = """
            server:
              listen: nowhere
              drain_timeout: 30 seconds
            providers:
              openai: {type: openai, retries: many}
            models:
              m: {provider: openai, fallbacks: [gpt-4o, nope]}
            keys:
              - {name: a, sha256: short}
            cache: {backend: disk, colour: red}
            """
        let result = parse(yaml)
        #expect(result.config == nil)
        #expect(result.errors.map(\.path) == [
            "server.listen", "server.drain_timeout", "providers.openai.retries", "models.m.fallbacks[1]",
            "keys[0].sha256", "cache.backend", "cache.colour",
        ])
        #expect(result.errors.map(\.line) == [2, 3, 5, 7, 9, 10, 10])
        // A fallback to a catalog model of an unconfigured family is only a warning.
        #expect(result.warnings.contains { $0.path == "models.m.fallbacks[0]" } == false)
    }

    // MARK: - Environment

    @Test func substitutesEnvironmentVariables() throws {
        let yaml = """
            server: {listen: "${HOST}:${PORT}"}
            providers:
              openai: {api_key: "Bearer-${KEY}-$$-$5", headers: {X-Team: "${TEAM}"}}
            redis: {url: "redis://${REDIS_HOST}:6379/0"}
            keys: [{name: k, sha256: \(Self.hash)}]
            """
        let environment = ["HOST": "0.0.0.0", "PORT": "9000", "KEY": "sk", "TEAM": "ml", "REDIS_HOST": "cache.internal"]
        let result = parse(yaml, environment: environment)
        #expect(result.problems.isEmpty, "\(result.problems)")
        let config = try #require(result.config)
        #expect(config.server.host == "0.0.0.0")
        #expect(config.server.port == 9000)
        #expect(config.providers.first?.apiKey == "Bearer-sk-$-$5")
        #expect(config.providers.first?.headers["X-Team"] == "ml")
        #expect(config.redis.url == "redis://cache.internal:6379/0")
    }

    @Test func unsetProviderVariableDisablesProviderWithWarning() throws {
        let yaml = """
            providers:
              openai: {api_key: "${OPENAI_API_KEY}"}
              anthropic:
                api_key: ${ANTHROPIC_API_KEY}
                headers: {X-Org: "${ORG}"}
                retries: ${RETRIES}
            keys: [{name: k, sha256: \(Self.hash)}]
            """
        let result = parse(yaml, environment: ["OPENAI_API_KEY": "sk"])
        #expect(result.errors.isEmpty, "\(result.errors)")
        let config = try #require(result.config)
        #expect(config.providers.count == 2)
        #expect(config.provider(named: "openai")?.isEnabled == true)
        let anthropic = try #require(config.provider(named: "anthropic"))
        #expect(anthropic.missingVariables == ["ANTHROPIC_API_KEY", "ORG", "RETRIES"])
        #expect(!anthropic.isEnabled)
        #expect(anthropic.apiKey == nil)
        #expect(anthropic.retries == 0)
        #expect(result.warnings.map(\.path) == ["providers.anthropic.api_key", "providers.anthropic.headers.X-Org", "providers.anthropic.retries"])
        let warning = try #require(result.warnings.first)
        #expect(warning.line == 4 && warning.column == 14)
        #expect(warning.message.contains("ANTHROPIC_API_KEY is not set"))
        #expect(warning.description.hasPrefix("gateway.yaml:4:14: warning: providers.anthropic.api_key: environment variable ANTHROPIC_API_KEY"))
    }

    // MARK: - Models and fallbacks

    @Test func fallbacksMayNameConfiguredCatalogOrProviderModels() throws {
        let yaml = """
            providers:
              openai: {}
              local: {type: openai, base_url: "http://127.0.0.1:11434/v1"}
            models:
              a: {provider: local, upstream: llama3, price: {input: 0, output: 0}, fallbacks: [b, gpt-4o-mini, local/qwen2, claude-haiku-4-5]}
              b: {provider: local, upstream: mistral, price: {input: 0, output: 0}, fallbacks: []}
            keys: [{name: k, sha256: \(Self.hash)}]
            """
        let result = parse(yaml)
        #expect(result.errors.isEmpty, "\(result.errors)")
        let config = try #require(result.config)
        #expect(config.models["a"]?.fallbacks == ["b", "gpt-4o-mini", "local/qwen2", "claude-haiku-4-5"])
        #expect(config.models["b"]?.fallbacks == [])
        #expect(config.provider(named: "local")?.baseURL == "http://127.0.0.1:11434/v1")
        // claude-haiku-4-5 is a catalog model, but no anthropic provider is configured: a warning.
        #expect(result.warnings.count == 1)
        let warning = try #require(result.warnings.first)
        #expect(warning.path == "models.a.fallbacks[3]")
        #expect(warning.message.contains("no anthropic provider is configured"))
    }

    @Test func catalogModelsTakeProviderUpstreamAndPriceFromCatalog() throws {
        let yaml = """
            providers: {anthropic: {}}
            models:
              claude-3-5-haiku: {}
              custom: {provider: anthropic, upstream: claude-sonnet-4-5}
              unpriced: {provider: anthropic, upstream: claude-next}
            keys: [{name: k, sha256: \(Self.hash)}]
            """
        let result = parse(yaml)
        #expect(result.errors.isEmpty, "\(result.errors)")
        let config = try #require(result.config)
        #expect(config.models["claude-3-5-haiku"]?.provider == "anthropic")
        #expect(config.models["claude-3-5-haiku"]?.upstream == "claude-3-5-haiku-latest")
        #expect(config.models["custom"]?.upstream == "claude-sonnet-4-5")
        // Only the model with neither a price nor a catalog entry is warned about.
        #expect(result.warnings.map(\.path) == ["models.unpriced"])
        #expect(result.warnings.first?.message.contains("no price") == true)
    }

    @Test func anthropicOnlySettingsOnOtherProvidersWarn() throws {
        let result = parse("providers: {openai: {max_tokens_default: 100}}\nkeys: [{name: k, sha256: \(Self.hash)}]\n")
        #expect(result.config != nil)
        #expect(result.warnings.map(\.path) == ["providers.openai.max_tokens_default"])
    }

    @Test(arguments: [("\"0600\"", UInt16(0o600)), ("0600", 0o600), ("660", 0o660), ("\"0o640\"", 0o640)])
    func fileModesReadAsOctal(text: String, mode: UInt16) throws {
        let result = parse("admin: {mode: \(text)}\n")
        #expect(try #require(result.config).admin.mode == mode)
    }

    @Test(arguments: [("[::1]:0", "::1", 0), ("0.0.0.0:443", "0.0.0.0", 443), ("localhost:8080", "localhost", 8080)])
    func listenAddresses(text: String, host: String, port: Int) throws {
        let config = try #require(parse("server: {listen: \"\(text)\"}\n").config)
        #expect(config.server.host == host)
        #expect(config.server.port == port)
    }

    @Test func unreadableFileIsOneError() {
        let result = ConfigLoader.load(path: "/nonexistent/gateway.yaml", environment: [:])
        #expect(result.config == nil)
        #expect(result.problems.count == 1)
        #expect(result.errors.first?.description.hasPrefix("/nonexistent/gateway.yaml: error: cannot read the file") == true)
    }

    @Test func circuitBreakerSettingsParseAndAreChecked() throws {
        let good = parse("""
            providers:
              openai:
                api_key: x
                circuit_breaker: {failures: 3, error_ratio: off, min_requests: 5, window: 2m, cool_down: 10s}
            """)
        let breaker = try #require(good.config?.provider(named: "openai")?.circuitBreaker)
        #expect(breaker.consecutiveFailures == 3)
        #expect(breaker.errorRatio == nil)
        #expect(breaker.minimumRequests == 5)
        #expect(breaker.window == .seconds(120))
        #expect(breaker.coolDown == .seconds(10))

        let bad = parse("""
            providers:
              openai:
                api_key: x
                circuit_breaker: {failures: 0, error_ratio: 1.5, cooldown: 10s}
            """)
        #expect(bad.config == nil)
        let paths = Set(bad.errors.map(\.path))
        #expect(paths.isSuperset(of: ["providers.openai.circuit_breaker.failures", "providers.openai.circuit_breaker.error_ratio", "providers.openai.circuit_breaker.cooldown"]))
    }
}
