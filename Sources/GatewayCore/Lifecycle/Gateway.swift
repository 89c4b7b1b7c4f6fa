#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// The whole daemon: configuration store, upstream clients and the HTTP application.
///
/// The executable and the tests build it the same way:
/// ```swift
/// let gateway = Gateway(config: config, logger: logger)
/// try await gateway.run()
/// ```
public final class Gateway: Sendable {
    /// The configuration in force.
    public let store: ConfigStore
    /// Pooled upstream clients.
    public let clients: UpstreamClients
    /// Circuit breakers per provider name, kept across reloads.
    public let breakers = CircuitBreakers()
    /// Requests in flight per provider name.
    public let load = ProviderLoad()
    /// Cache and rate-limit backends.
    public let stores: Stores
    /// Where request-log rows go; nil when the log is off.
    public let requestLog: (any RequestRecordSink)?
    /// The Responses API responses kept with their rows; nil when the log is off.
    public let storedResponses: StoredResponses?
    /// Prometheus metrics.
    public let metrics: GatewayMetrics
    /// Where budget alerts and anomalies are published (`publish`); `run` delivers them.
    public let notifications: NotificationOutbox
    /// What each key used since start.
    public let keyUsage = KeyUsage()
    /// Every request's record goes to the metrics, the key usage and the request log.
    let records: any RequestRecordSink
    /// Readiness for `/readyz` and systemd's `READY=1`.
    public let readiness: Readiness
    /// Tells systemd about start-up, reloads and shutdown; a no-op outside systemd.
    public let notifier: SystemdNotifier
    /// The log level `logging.level` sets, when the logger was made with it.
    public let logLevel: LogLevelControl?
    /// The daemon's logger.
    public let logger: Logger
    /// When the gateway was made.
    public let startedAt = ContinuousClock.now
    /// The same, in microseconds since 1970.
    public let startedAtMicros = UnixTime.nowMicros()

    /// - Throws: `RedisError` when the Redis settings cannot be used.
    /// - Parameters:
    ///   - requestLog: receives one row per request (see `RequestLog`); nil logs nothing.
    ///   - storedResponses: where `POST /v1/responses` keeps responses (over the same log); nil keeps none.
    ///   - sourceSHA256: the SHA-256 of the configuration file `config` was read from (a reload of the same bytes is a no-op).
    ///   - notifier: systemd notifications; the default sends none.
    ///   - logLevel: the control behind `logger`'s level, so reloads can change it.
    ///   - plainHTTP: the client for `http://` providers.
    ///   - budgetEvents: where budget events go besides the notification outbox (tests record them).
    ///   - budgetClock: milliseconds since 1970 for budget windows (tests move it).
    public init(
        config: GatewayConfig, logger: Logger, requestLog: (any RequestRecordSink)? = nil, storedResponses: StoredResponses? = nil,
        sourceSHA256: String? = nil,
        notifier: SystemdNotifier = SystemdNotifier(environment: [:]), logLevel: LogLevelControl? = nil,
        plainHTTP: UpstreamClients.PlainHTTPClient = .connectionPool, budgetEvents: @escaping BudgetAlerts.Publisher = { _ in },
        budgetClock: @escaping @Sendable () -> Int64 = BudgetBook.systemClock
    ) throws {
        self.requestLog = requestLog
        self.storedResponses = storedResponses
        let store = ConfigStore(ConfigSnapshot(config: config, sourceSHA256: sourceSHA256))
        self.store = store
        self.metrics = GatewayMetrics(isNamedModel: { store.snapshot.models.isNamed($0) })
        self.clients = UpstreamClients(plainHTTP: plainHTTP)
        // Budget events go to the notification outbox, which is made after the stores (it shares their Redis).
        let outbox = NIOLockedValueBox<NotificationOutbox?>(nil)
        let logger = logger
        self.stores = try Stores(
            config: config, logger: logger, budgetClock: budgetClock, semanticSettings: { store.snapshot.config.cache.semantic }
        ) { event in
            await budgetEvents(event)
            guard let notifications = outbox.withLockedValue({ $0 }) else { return }
            await notifications.publishRetrying(NotificationEvent(event), logger: logger)
        }
        let notifications = NotificationOutbox(
            config: config, redis: stores.redis, settings: { store.snapshot.config.notifications }, logger: logger)
        outbox.withLockedValue { $0 = notifications }
        self.notifications = notifications
        self.logger = logger
        self.notifier = notifier
        self.logLevel = logLevel
        self.readiness = Readiness(listeners: ["api"]) { notifier.ready() }
        self.records = RecordFanout(sinks: [metrics, keyUsage] + (requestLog.map { [$0] } ?? []))
        clients.prepare(for: config)
    }

    /// The router with every route and middleware.
    public func makeRouter() -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: RequestIDMiddleware(store: store))
        router.add(middleware: RequestLogMiddleware(sink: records))
        // Each API route's errors, 401s from the key check included, go out in its own dialect's envelope.
        let openAIChat = OpenAIChatDialect()
        let anthropicMessages = AnthropicMessagesDialect()
        let openAIResponses = OpenAIResponsesDialect(stored: storedResponses)
        router.add(
            middleware: ErrorEnvelopeMiddleware(dialects: [
                "/v1/chat/completions": openAIChat, "/v1/messages": anthropicMessages, "/v1/messages/count_tokens": anthropicMessages,
                "/v1/responses": openAIResponses,
            ]))
        let health = HealthRoutes(readiness: readiness)
        router.get("healthz", use: health.healthz)
        router.get("readyz", use: health.readyz)
        // On the API listener only for a client holding `metrics.token` (key names, models and spend are in it).
        router.get("metrics") { [self] request, context in
            guard let token = context.snapshot?.config.metrics.token else {
                throw GatewayError.notFound("Unknown request URL: GET /metrics.", code: "unknown_url")
            }
            guard let given = request.headers[.authorization], MetricsAccess.bearer(given, matches: token) else {
                throw GatewayError.unauthorized("GET /metrics needs 'Authorization: Bearer <metrics.token>'.")
            }
            return Response.metrics(metrics.exposition(for: self))
        }
        let chain = UpstreamChain(proxy: UpstreamProxy(clients: clients), breakers: breakers, load: load)
        let chat = ChatPipeline(dialect: openAIChat, chain: chain, stores: stores, sink: records, metrics: metrics)
        let messages = ChatPipeline(dialect: anthropicMessages, chain: chain, stores: stores, sink: records, metrics: metrics, route: "/v1/messages")
        let countTokens = CountTokensRoute(chain: chain)
        let responses = ChatPipeline(dialect: openAIResponses, chain: chain, stores: stores, sink: records, metrics: metrics, route: "/v1/responses")
        let embeddings = EmbeddingsPipeline(chain: chain, stores: stores, metrics: metrics)
        let models = ModelsRoute()
        let api = router.group("v1").add(middleware: AuthMiddleware())
        api.post("chat/completions", use: chat.handle)
        api.post("embeddings", use: embeddings.handle)
        api.post("messages", use: messages.handle)
        api.post("messages/count_tokens", use: countTokens.handle)
        api.post("responses", use: responses.handle)
        let storedResponsesRoute = StoredResponsesRoute(stored: storedResponses)
        api.get("responses/{id}", use: storedResponsesRoute.retrieve)
        api.delete("responses/{id}", use: storedResponsesRoute.delete)
        api.get("models", use: models.list)
        api.get("models/**", use: models.retrieve)
        return router
    }

    /// The HTTP application on the configured listener.
    /// - Parameter onRunning: called with the bound port once the listener is up.
    public func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let server = store.snapshot.config.server
        let readiness = self.readiness
        let logger = self.logger
        return Application(
            router: makeRouter(),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [ClientConnectionHandler(), FirstHeadTimeout(TimeAmount(server.headerTimeout))],
                    idleTimeout: TimeAmount(server.idleTimeout))),
            configuration: .init(
                address: .hostname(server.host, port: server.port), serverName: "llm-gateway",
                availableConnectionsDelegate: .maximum(server.maxConnections, logger: logger)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? server.port
                readiness.bound("api", address: "\(server.host):\(port)")
                logger.notice("listening", metadata: ["address": "\(server.host):\(port)"])
                await onRunning(port)
            },
            logger: logger)
    }

    /// The listener of `metrics.listen`, serving only `/metrics` without a key; nil when it is not set.
    func makeMetricsApplication() -> (some ApplicationProtocol)? {
        let settings = store.snapshot.config.metrics
        guard let host = settings.listenHost, let port = settings.listenPort else { return nil as Application<RouterResponder<BasicRequestContext>>? }
        let router = Router()
        router.get("metrics") { [self] _, _ in Response.metrics(metrics.exposition(for: self)) }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "llm-gateway"), logger: logger)
    }

    /// Runs until SIGTERM or SIGINT, then lets requests in flight finish for up to `server.drain_timeout` and stops.
    /// - Parameters:
    ///   - configPath: the file SIGHUP reloads; nil ignores SIGHUP.
    ///   - onRunning: called with the bound port once the listener is up.
    /// - Throws: `AdminServer.SocketProblem` when the admin socket cannot be used.
    public func run(configPath: String? = nil, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = makeApplication(onRunning: onRunning)
        let reloader = configPath.map { ConfigReloader(path: $0, gateway: self) }
        let adminSocket = store.snapshot.config.admin.socket
        try AdminServer.prepare(path: adminSocket)
        readiness.expect(["api", "admin"])
        await rebuildBudgets(store.snapshot.config.allBudgets)
        // Stores first: graceful shutdown walks services in reverse, so the server drains before the log flushes.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let log = requestLog as? RequestLog { services.append(.init(service: log)) }
        services.append(.init(service: NotificationDelivery(outbox: notifications, metrics: metrics)))
        if let log = requestLog as? RequestLog {
            let outbox = notifications
            let logger = logger
            services.append(.init(service: SpendMonitor(
                book: stores.budgets, log: log.backingStore, snapshot: { [store] in store.snapshot },
                publish: { event in await outbox.publishRetrying(event, logger: logger) }, logger: logger)))
        }
        services.append(.init(service: app))
        if let metricsApp = makeMetricsApplication() { services.append(.init(service: metricsApp)) }
        services.append(.init(service: AdminServer.application(gateway: self, reloader: reloader)))
        if let reloader {
            services.append(.init(service: ReloadOnSignal(reloader: reloader)))
        }
        // Last, so graceful shutdown reaches it first and systemd hears STOPPING=1 at once.
        services.append(.init(service: SystemdLifecycleService(notifier: notifier)))
        var configuration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = store.snapshot.config.server.drainTimeout
        let group = ServiceGroup(configuration: configuration)
        do {
            try await group.run()
        } catch {
            await shutdownResources()
            unlink(adminSocket)
            throw error
        }
        await shutdownResources()
        unlink(adminSocket)
    }

    /// Seeds `budgets`' counters for their current windows from the request log (at start, and for the budgets a
    /// reload adds), so a restart does not forget what was spent.
    func rebuildBudgets(_ budgets: [BudgetConfig]) async {
        guard !budgets.isEmpty, let log = requestLog as? RequestLog else { return }
        await stores.budgets.rebuild(budgets, from: log.backingStore, logger: logger)
    }

    private func shutdownResources() async {
        await clients.shutdown()
        await notifications.close()
        await stores.shutdown()
        await (requestLog as? RequestLog)?.closeStore()
    }
}
