/// One immutable, validated configuration: everything `gateway.yaml` says, with defaults filled in.
///
/// A request reads the current snapshot once at its start and keeps it to the end.
public struct GatewayConfig: Sendable {
    /// The main listener.
    public var server = ServerSettings()
    /// The admin Unix socket.
    public var admin = AdminSettings()
    /// Upstream providers by name, in file order.
    public var providers: [ProviderConfig] = []
    /// Models the file declares (they override or extend the built-in catalog).
    public var models: [String: ModelConfig] = [:]
    /// Gateway keys that may call the API.
    public var keys: [KeyConfig] = []
    /// Response cache settings.
    public var cache = CacheSettings()
    /// Rate-limiter settings.
    public var rateLimits = RateLimitSettings()
    /// Shared Redis server.
    public var redis = RedisSettings()
    /// Request log settings.
    public var requestLog = RequestLogSettings()
    /// Shared PostgreSQL server.
    public var postgres = PostgresSettings()
    /// Log settings of the daemon itself.
    public var logging = LoggingSettings()
    /// Where Prometheus reads `/metrics` besides the admin socket.
    public var metrics = MetricsSettings()
    /// Spending limits (`budgets:`), without the keys' `budget:` shorthands (`allBudgets` has both).
    public var budgets: [BudgetConfig] = []
    /// `budgets_on_backend_error`.
    public var budgetSettings = BudgetSettings()
    /// `anomaly:`; nil (the section absent) watches for none.
    public var anomaly: AnomalySettings?
    /// Whether the file has a `redis:` section: budgets then live in Redis, shared by the fleet.
    public var redisConfigured = false

    /// Every budget: `budgets:` and each key's `budget:` (named `key-<key name>`).
    public var allBudgets: [BudgetConfig] { budgets + keys.compactMap(\.budget) }
    /// Channels that budget alerts and anomalies are delivered to (`Notifications/`).
    public var notifications = NotificationSettings()

    public init() {}

    /// The provider named `name`.
    public func provider(named name: String) -> ProviderConfig? {
        providers.first { $0.name == name }
    }
}

/// `server:`: where the API listens and how much it accepts.
public struct ServerSettings: Sendable, Equatable {
    /// Address to bind.
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks a free one.
    public var port = 8080
    /// Largest request body accepted; larger ones get 413.
    public var maxBodyBytes = 20 * 1024 * 1024
    /// How long shutdown waits for requests in flight.
    public var drainTimeout: Duration = .seconds(30)
    /// How long a connection may stay open with no request under way (between requests, or while a request's head
    /// trickles in) before it is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// How long a new connection may take to send its first request's complete head.
    public var headerTimeout: Duration = .seconds(10)
    /// Connections open at once; beyond it the listener stops accepting until one closes.
    public var maxConnections = 4096
    public init() {}
}

/// `metrics:`: where `/metrics` is served besides the admin socket, which always has it. With neither setting
/// the API listener does not serve it: its series name keys, models and spend.
public struct MetricsSettings: Sendable, Equatable {
    /// A listener of its own that serves only `/metrics`, without a key.
    public var listenHost: String?
    public var listenPort: Int?
    /// Serves `/metrics` on the API listener to `Authorization: Bearer <token>`.
    public var token: String?
    public init() {}
}

/// `admin:`: the introspection socket.
public struct AdminSettings: Sendable, Equatable {
    /// Path of the Unix socket.
    public var socket = "/run/llm-gateway/admin.sock"
    /// File mode of the socket.
    public var mode: UInt16 = 0o600
    public init() {}
}

/// The wire protocol a provider speaks.
public enum ProviderType: String, Sendable, CaseIterable {
    /// OpenAI Chat Completions, also any compatible server (vLLM, Ollama, llama.cpp).
    case openai
    /// Anthropic Messages API.
    case anthropic
    /// Google Gemini generateContent API.
    case gemini
}

/// Per-provider timers.
public struct ProviderTimeouts: Sendable, Equatable {
    /// Time to establish the connection.
    public var connect: Duration = .seconds(5)
    /// Time from sending the request to the response head.
    public var firstByte: Duration = .seconds(60)
    /// Longest gap between two body chunks.
    public var idle: Duration = .seconds(60)
    /// Whole request, from start to last byte.
    public var total: Duration = .seconds(600)
    public init() {}
}

/// `providers.<name>`: one upstream.
public struct ProviderConfig: Sendable, Equatable {
    /// The name models refer to.
    public var name: String
    /// The protocol it speaks.
    public var type: ProviderType
    /// Base URL, without a trailing slash.
    public var baseURL: String
    /// The API key, after `${VAR}` substitution; nil when none is configured.
    public var apiKey: String?
    /// Environment variables the provider refers to that are unset: the provider is disabled while any is.
    public var missingVariables: [String] = []
    /// Timers.
    public var timeouts = ProviderTimeouts()
    /// Extra static headers sent upstream.
    public var headers: [String: String] = [:]
    /// Retries on the same provider before failing over.
    public var retries = 0
    /// Cap on a `Retry-After` the gateway honours.
    public var retryAfterMax: Duration = .seconds(5)
    /// `max_tokens` sent to Anthropic when the client gives none.
    public var defaultMaxTokens = 4096
    /// `anthropic-version` header value.
    public var anthropicVersion = "2023-06-01"
    /// When the provider's circuit opens.
    public var circuitBreaker = CircuitBreakerSettings()
    /// `responses_api`: whether an `openai` provider serves OpenAI's Responses API (`POST /responses`), so that
    /// `/v1/responses` requests go to it as sent; nil decides by `base_url` (OpenAI's own host only).
    public var responsesAPI: Bool?

    public init(name: String, type: ProviderType, baseURL: String, apiKey: String? = nil) {
        self.name = name
        self.type = type
        self.baseURL = baseURL
        self.apiKey = apiKey
    }

    /// False while a referenced environment variable is unset.
    public var isEnabled: Bool { missingVariables.isEmpty }

    /// Whether `/v1/responses` requests go to this provider as sent: `responses_api`, else true for an `openai`
    /// provider on OpenAI's own host (compatible servers rarely serve the Responses API, and get chat).
    public var servesResponsesAPI: Bool {
        guard type == .openai else { return false }
        if let responsesAPI { return responsesAPI }
        return baseURL.hasPrefix("https://api.openai.com/")
    }
}

/// USD per one million tokens.
public struct Price: Sendable, Equatable {
    /// Input (prompt) tokens.
    public var input: Double
    /// Output (completion) tokens.
    public var output: Double
    /// Cached input tokens; nil means they cost as much as other input.
    public var cachedInput: Double?
    /// Input tokens written to the provider's prompt cache (Anthropic's `cache_creation_input_tokens`); nil means
    /// they cost as much as other input.
    public var cacheWrite: Double?

    public init(input: Double, output: Double, cachedInput: Double? = nil, cacheWrite: Double? = nil) {
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
    }
}

/// One deployment of a model: a provider and its share of the traffic.
public struct Deployment: Sendable, Equatable {
    public var provider: String
    public var weight: Int
    public init(provider: String, weight: Int = 1) {
        self.provider = provider
        self.weight = weight
    }
}

/// `models.<name>`: a model clients can ask for.
public struct ModelConfig: Sendable, Equatable {
    /// The name clients send.
    public var name: String
    /// The provider that serves it.
    public var provider: String
    /// The model id sent upstream.
    public var upstream: String
    /// Ordered fallback chain; nil keeps the catalog's, empty disables failover.
    public var fallbacks: [String]?
    /// Price; nil keeps the catalog's.
    public var price: Price?
    /// Several deployments sharing the load; empty means just `provider`.
    public var deployments: [Deployment] = []
    /// What the model does: chat completions, or embeddings (`kind: embedding`); nil keeps the catalog's.
    public var kind: ModelKind?

    public init(name: String, provider: String, upstream: String? = nil, fallbacks: [String]? = nil, price: Price? = nil) {
        self.name = name
        self.provider = provider
        self.upstream = upstream ?? name
        self.fallbacks = fallbacks
        self.price = price
    }
}

/// What a model answers: `/v1/chat/completions` or `/v1/embeddings`.
public enum ModelKind: String, Sendable, CaseIterable {
    case chat
    case embedding

    /// The route a model of this kind answers on.
    public var route: String {
        switch self {
        case .chat: "/v1/chat/completions"
        case .embedding: "/v1/embeddings"
        }
    }
}

/// A per-key rate limit.
public struct RateLimit: Sendable, Equatable {
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    public init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
    }
}

/// Per-key cache settings.
public struct KeyCacheSettings: Sendable, Equatable {
    public var enabled = true
    public var ttl: Duration?
    public init(enabled: Bool = true, ttl: Duration? = nil) {
        self.enabled = enabled
        self.ttl = ttl
    }
}

/// `keys[]`: a gateway key, known only by its SHA-256.
public struct KeyConfig: Sendable, Equatable {
    /// Name used in logs and metrics.
    public var name: String
    /// Lower-case hex SHA-256 of the key.
    public var sha256: String
    /// The key's first characters (`gw_` and up to 8 more), shown by the admin socket to tell keys apart.
    public var prefix: String?
    /// Allowed model names, as globs (`*`, `?`).
    public var models: [String] = ["*"]
    public var rateLimit: RateLimit?
    public var cache = KeyCacheSettings()
    /// The `budget:` shorthand, as the budget it stands for (`where: {key: <name>}`).
    public var budget: BudgetConfig? {
        get { sharedBudget?.value }
        set { sharedBudget = newValue.map(Shared.init) }
    }
    /// Behind one reference: a key is copied into every request.
    private var sharedBudget: Shared<BudgetConfig>?

    public init(name: String, sha256: String, models: [String] = ["*"]) {
        self.name = name
        self.sha256 = sha256
        self.models = models
    }
}

/// `cache:`.
public struct CacheSettings: Sendable, Equatable {
    public enum Backend: String, Sendable { case memory, redis, off }
    public enum Scope: String, Sendable { case key, global }
    public var backend: Backend = .memory
    public var ttl: Duration = .seconds(3600)
    public var maxEntries = 10_000
    public var maxBytes = 256 * 1024 * 1024
    public var scope: Scope = .key
    /// `cache.semantic`: paraphrases answered from the cache; nil when not configured.
    public var semantic: SemanticCacheSettings?
    public init() {}
}

/// `cache.semantic`: the semantic tier of the answer cache (`SemanticCacheTier`).
public struct SemanticCacheSettings: Sendable, Equatable {
    /// The embedding model (a `kind: embedding` model) that embeds the user turns.
    public var embedder: String
    /// Lowest cosine similarity that serves a cached answer.
    public var threshold: Double = SemanticCacheSettings.defaultThreshold
    /// Entry lifetime; nil keeps `cache.ttl` (and a key's own `cache.ttl`).
    public var ttl: Duration?
    /// Most entries kept (least recently used evicted first).
    public var maxEntries = 10_000
    /// Routes it applies to.
    public var routes: [String] = ["/v1/chat/completions"]
    /// Model names or globs it applies to.
    public var models: [String] = ["*"]
    /// Per key (default) or global; nil keeps `cache.scope`.
    public var scope: CacheSettings.Scope?
    /// Longest wait for the embedder before the request goes to the provider.
    public var timeout: Duration = .milliseconds(50)

    /// The lowest threshold whose false-hit rate on the labelled paraphrase pairs stayed at most 1 % with
    /// all-MiniLM-L6-v2 (`bench/semantic_cache.py`, README).
    public static let defaultThreshold = 0.96

    public init(embedder: String) {
        self.embedder = embedder
    }

    /// Whether the tier applies to a request for `model` on `route`.
    public func applies(route: String, model: String) -> Bool {
        routes.contains(route) && models.contains { Glob($0).matches(model) }
    }
}

/// `rate_limits:`.
public struct RateLimitSettings: Sendable, Equatable {
    public enum Backend: String, Sendable { case memory, redis }
    public enum OnBackendError: String, Sendable { case allow, deny }
    public var backend: Backend = .memory
    public var onBackendError: OnBackendError = .allow
    public init() {}
}

/// `redis:`.
public struct RedisSettings: Sendable, Equatable {
    public var url = "redis://127.0.0.1:6379/0"
    public var prefix = "llm-gateway:"
    public var poolSize = 8
    public var connectTimeout: Duration = .seconds(2)
    public var commandTimeout: Duration = .seconds(1)
    public init() {}
}

/// `request_log:`.
public struct RequestLogSettings: Sendable, Equatable {
    public enum Backend: String, Sendable { case sqlite, postgres, off }
    public var backend: Backend = .sqlite
    public var path = "/var/lib/llm-gateway/requests.db"
    public var spoolPath: String?
    public var batchSize = 500
    public var flushInterval: Duration = .seconds(1)
    /// How long a Responses API response kept with `store: true` can be fetched or continued (`responses_ttl`).
    public var responsesTTL: Duration = .seconds(30 * 24 * 3600)
    public init() {}
}

/// `postgres:`.
public struct PostgresSettings: Sendable, Equatable {
    public var url = "postgres://gateway@127.0.0.1/gateway"
    public var poolSize = 4
    public init() {}
}

/// `logging:`.
public struct LoggingSettings: Sendable, Equatable {
    public var level = "info"
    public init() {}
}
