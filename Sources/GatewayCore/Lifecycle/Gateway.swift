import Hummingbird
import Logging
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
    /// Readiness for `/readyz`.
    public let readiness = Readiness()
    /// The daemon's logger.
    public let logger: Logger

    /// - Throws: `RedisError` when the Redis settings cannot be used.
    /// - Parameter requestLog: receives one row per request (see `RequestLog`); nil logs nothing.
    public init(config: GatewayConfig, logger: Logger, requestLog: (any RequestRecordSink)? = nil) throws {
        self.requestLog = requestLog
        self.store = ConfigStore(ConfigSnapshot(config: config))
        self.clients = UpstreamClients()
        self.stores = try Stores(config: config, logger: logger)
        self.logger = logger
        clients.prepare(for: config)
    }

    /// The router with every route and middleware.
    public func makeRouter() -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: RequestIDMiddleware(store: store))
        router.add(middleware: RequestLogMiddleware(sink: requestLog))
        router.add(middleware: ErrorEnvelopeMiddleware())
        let health = HealthRoutes(readiness: readiness)
        router.get("healthz", use: health.healthz)
        router.get("readyz", use: health.readyz)
        let chat = ChatCompletionsRoute(
            router: ChatRouter(proxy: ChatProxy(clients: clients), breakers: breakers, load: load), stores: stores, sink: requestLog)
        let models = ModelsRoute()
        let api = router.group("v1").add(middleware: AuthMiddleware())
        api.post("chat/completions", use: chat.handle)
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
            server: .http1(configuration: .init(additionalChannelHandlers: [HalfCloseHandler()])),
            configuration: .init(address: .hostname(server.host, port: server.port), serverName: "llm-gateway"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? server.port
                readiness.markReady()
                logger.notice("listening", metadata: ["address": "\(server.host):\(port)"])
                await onRunning(port)
            },
            logger: logger)
    }

    /// Runs until SIGTERM or SIGINT, then lets requests in flight finish for up to `server.drain_timeout` and stops.
    /// - Parameters:
    ///   - configPath: the file SIGHUP reloads; nil ignores SIGHUP.
    ///   - onRunning: called with the bound port once the listener is up.
    public func run(configPath: String? = nil, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = makeApplication(onRunning: onRunning)
        // Stores first: graceful shutdown walks services in reverse, so the server drains before the log flushes.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let log = requestLog as? RequestLog { services.append(.init(service: log)) }
        services.append(.init(service: app))
        if let configPath {
            services.append(.init(service: ReloadOnSignal(reloader: ConfigReloader(path: configPath, gateway: self))))
        }
        var configuration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = store.snapshot.config.server.drainTimeout
        let group = ServiceGroup(configuration: configuration)
        do {
            try await group.run()
        } catch {
            await shutdownResources()
            throw error
        }
        await shutdownResources()
    }

    private func shutdownResources() async {
        await clients.shutdown()
        await stores.shutdown()
        await (requestLog as? RequestLog)?.closeStore()
    }
}
