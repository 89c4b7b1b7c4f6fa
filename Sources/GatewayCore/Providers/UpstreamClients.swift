import AsyncHTTPClient
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Long-lived HTTP clients per provider, made at start-up and shut down at stop; never per request.
///
/// Each provider has one client per event loop, whose connections all live on that loop. A request takes the
/// client of the loop it runs on, so reading the client's request, calling the provider and writing the answer
/// happen on one thread: no hand-over to another loop and back at every step.
///
/// A plain-HTTP provider (`http://`: vLLM, Ollama and other servers on the host or the LAN) gets the gateway's
/// own `UpstreamConnectionPool`, which costs about a third of AsyncHTTPClient's CPU per exchange (see the README's
/// performance section); an HTTPS provider gets AsyncHTTPClient, for TLS and HTTP/2. Either way redirects are
/// never followed, responses are not decompressed, and up to `connectionsPerHost` connections are open per loop
/// so concurrent streams do not queue behind each other.
public final class UpstreamClients: Sendable {
    /// Which client serves plain-HTTP providers.
    public enum PlainHTTPClient: Sendable {
        /// The gateway's own connection pool (the default).
        case connectionPool
        /// AsyncHTTPClient, as for HTTPS (the tests use it to exercise that path against plain-HTTP fakes).
        case asyncHTTPClient
    }

    /// One provider's client on one loop.
    enum Client: Sendable {
        case pool(UpstreamConnectionPool)
        case asyncHTTPClient(HTTPClient)
    }

    private struct Entry {
        var settings: ClientSettings
        /// One per loop of `loops`, in the same order.
        var clients: [Client]
    }

    private struct ClientSettings: Equatable {
        var baseURL: String
        var connect: Duration
        var read: Duration
    }

    private let state = NIOLockedValueBox<(active: [String: Entry], retired: [Client])>(([:], []))
    /// Connections per upstream host and loop (HTTP/1.1: one per request in flight, so one per open stream).
    /// Through AsyncHTTPClient, requests beyond it wait for a free connection within the provider's connect
    /// timeout; through the connection pool they fail over at once.
    public static let connectionsPerHost = 4096

    /// The event loops the clients are spread over.
    private let loops: [any EventLoop]
    private let plainHTTP: PlainHTTPClient

    /// Added to a provider's total timeout before its retired AsyncHTTPClients are shut down.
    let retiredClientGrace: Duration

    public init(plainHTTP: PlainHTTPClient = .connectionPool, retiredClientGrace: Duration = .seconds(30)) {
        loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
        self.plainHTTP = plainHTTP
        self.retiredClientGrace = retiredClientGrace
    }

    /// Clients replaced by a reload and not shut down yet.
    var retiredClients: Int { state.withLockedValue { $0.retired.count } }

    /// Shuts `clients` down after `delay`, and forgets them.
    private func shutDownLater(_ clients: [HTTPClient], after delay: Duration) {
        Task(executorPreference: TaskPlacement.preferredExecutor) {
            try? await Task.sleep(for: delay)
            self.state.withLockedValue { state in
                state.retired.removeAll { retired in
                    guard case .asyncHTTPClient(let client) = retired else { return false }
                    return clients.contains { $0 === client }
                }
            }
            for client in clients { try? await client.shutdown() }
        }
    }

    /// Makes (or keeps) a client for every provider in `config`.
    public func prepare(for config: GatewayConfig) {
        for provider in config.providers { _ = client(for: provider) }
    }

    /// Sends `request` to `provider` as a POST and waits for the response head.
    /// - Parameters:
    ///   - headDeadline: when the head must have arrived.
    ///   - bodyDeadline: when the whole body must have arrived, for a client that can enforce it (the response's
    ///     `body.endsAtDeadline` says whether it did).
    /// - Throws: the client's error; `UpstreamProxy.transportFailure` classifies it.
    func post(
        _ request: UpstreamRequest, to provider: ProviderConfig, headDeadline: ContinuousClock.Instant,
        bodyDeadline: ContinuousClock.Instant? = nil, logger: Logger
    ) async throws -> UpstreamResponse {
        let body = ByteBuffer(bytes: request.rawBody ?? request.body.bytes())
        let now = (clock: ContinuousClock.now, loop: NIODeadline.now())
        let deadline = now.loop + TimeAmount(now.clock.duration(to: headDeadline))
        switch client(for: provider) {
        case .pool(let pool):
            return try await pool.post(
                path: request.path, headers: request.headers, body: body, headDeadline: deadline,
                bodyDeadline: bodyDeadline.map { now.loop + TimeAmount(now.clock.duration(to: $0)) })
        case .asyncHTTPClient(let client):
            var http = HTTPClientRequest(url: UpstreamProxy.joinURL(provider.baseURL, request.path))
            http.method = .POST
            for header in request.headers { http.headers.add(name: header.name, value: header.value) }
            http.body = .bytes(body)
            let response = try await client.execute(http, deadline: deadline, logger: logger)
            return UpstreamResponse(status: response.status, headers: response.headers, body: UpstreamBody(storage: .client(response.body)))
        }
    }

    /// The client for `provider` on the calling thread's event loop (a random loop's when called elsewhere), made on first use
    /// or when the provider's address or timers changed.
    func client(for provider: ProviderConfig) -> Client {
        let clients = clients(for: provider)
        if let current = MultiThreadedEventLoopGroup.currentEventLoop, let index = loops.firstIndex(where: { $0 === current }) {
            return clients[index]
        }
        return clients[Int.random(in: 0..<clients.count)]
    }

    private func clients(for provider: ProviderConfig) -> [Client] {
        let settings = ClientSettings(
            baseURL: provider.baseURL, connect: provider.timeouts.connect, read: max(provider.timeouts.firstByte, provider.timeouts.idle))
        return state.withLockedValue { state in
            if let entry = state.active[provider.name], entry.settings == settings { return entry.clients }
            if let old = state.active[provider.name] {
                for case .pool(let pool) in old.clients { pool.retire() }
                state.retired += old.clients
                // A retired AsyncHTTPClient is shut down once every request it may still carry has had its time
                // (the provider's total timeout); until then it finishes them.
                let retiredHTTPClients = old.clients.compactMap { client -> HTTPClient? in
                    if case .asyncHTTPClient(let client) = client { return client }
                    return nil
                }
                if !retiredHTTPClients.isEmpty { shutDownLater(retiredHTTPClients, after: provider.timeouts.total + retiredClientGrace) }
            }
            let clients: [Client]
            if plainHTTP == .connectionPool, let target = UpstreamTarget(baseURL: provider.baseURL) {
                clients = loops.map {
                    .pool(UpstreamConnectionPool(
                        target: target, loop: $0, connectTimeout: TimeAmount(settings.connect), readTimeout: TimeAmount(settings.read),
                        maximumConnections: Self.connectionsPerHost))
                }
            } else {
                var configuration = HTTPClient.Configuration(
                    redirectConfiguration: .disallow,
                    timeout: .init(connect: .init(settings.connect), read: .init(settings.read)),
                    connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: Self.connectionsPerHost),
                    decompression: .disabled)
                configuration.httpVersion = .automatic
                // No tracer is ever bootstrapped: without this, every request still builds a span and its attributes.
                configuration.tracing.tracer = nil
                clients = loops.map { .asyncHTTPClient(HTTPClient(eventLoopGroup: $0, configuration: configuration)) }
            }
            state.active[provider.name] = Entry(settings: settings, clients: clients)
            return clients
        }
    }

    /// The connections the gateway's own pool holds to `providerName` over every loop (open, and idle among them);
    /// nil when the provider goes through AsyncHTTPClient, which does not tell, or has no client yet.
    public func connections(of providerName: String) -> (open: Int, idle: Int)? {
        let clients = state.withLockedValue { $0.active[providerName]?.clients } ?? []
        var totals: (open: Int, idle: Int)?
        for case .pool(let pool) in clients {
            totals = ((totals?.open ?? 0) + pool.openConnections, (totals?.idle ?? 0) + pool.idleConnections)
        }
        return totals
    }

    /// Shuts every client down; requests still running fail.
    public func shutdown() async {
        for client in takeAll() {
            switch client {
            case .pool(let pool): pool.retire()
            case .asyncHTTPClient(let client): try? await client.shutdown()
            }
        }
    }

    /// Shuts every client down from synchronous code.
    public func shutdownSync() {
        for client in takeAll() {
            switch client {
            case .pool(let pool): pool.retire()
            case .asyncHTTPClient(let client): try? client.syncShutdown()
            }
        }
    }

    private func takeAll() -> [Client] {
        state.withLockedValue { state in
            let all = state.active.values.flatMap(\.clients) + state.retired
            state = ([:], [])
            return all
        }
    }
}
