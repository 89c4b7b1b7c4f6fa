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
/// Redirects are never followed, responses are not decompressed, and the per-host connection limit is raised
/// well above AsyncHTTPClient's default of 8 so concurrent streams do not queue behind each other.
public final class UpstreamClients: Sendable {
    private struct Entry {
        var settings: ClientSettings
        /// One per loop of `loops`, in the same order.
        var clients: [HTTPClient]
    }

    private struct ClientSettings: Equatable {
        var connect: Duration
        var read: Duration
    }

    private let state = NIOLockedValueBox<(active: [String: Entry], retired: [HTTPClient])>(([:], []))
    /// Connections per upstream host (HTTP/1.1: one per request in flight, so one per open stream). Requests
    /// beyond it wait for a free connection, within the provider's connect timeout.
    public static let connectionsPerHost = 4096

    /// The event loops the clients are spread over.
    private let loops: [any EventLoop]

    public init() {
        loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
    }

    /// Makes (or keeps) a client for every provider in `config`.
    public func prepare(for config: GatewayConfig) {
        for provider in config.providers { _ = client(for: provider) }
    }

    /// The client for `provider` on the calling thread's event loop (a random loop's when called elsewhere), made on first use
    /// or when the provider's timers changed.
    public func client(for provider: ProviderConfig) -> HTTPClient {
        let clients = clients(for: provider)
        if let current = MultiThreadedEventLoopGroup.currentEventLoop, let index = loops.firstIndex(where: { $0 === current }) {
            return clients[index]
        }
        return clients[Int.random(in: 0..<clients.count)]
    }

    private func clients(for provider: ProviderConfig) -> [HTTPClient] {
        let settings = ClientSettings(
            connect: provider.timeouts.connect, read: max(provider.timeouts.firstByte, provider.timeouts.idle))
        return state.withLockedValue { state in
            if let entry = state.active[provider.name], entry.settings == settings { return entry.clients }
            if let old = state.active[provider.name] { state.retired += old.clients }
            var configuration = HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .init(settings.connect), read: .init(settings.read)),
                connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: Self.connectionsPerHost),
                decompression: .disabled)
            configuration.httpVersion = .automatic
            // No tracer is ever bootstrapped: without this, every request still builds a span and its attributes.
            configuration.tracing.tracer = nil
            let clients = loops.map { HTTPClient(eventLoopGroup: $0, configuration: configuration) }
            state.active[provider.name] = Entry(settings: settings, clients: clients)
            return clients
        }
    }

    /// Shuts every client down; requests still running fail.
    public func shutdown() async {
        for client in takeAll() { try? await client.shutdown() }
    }

    /// Shuts every client down from synchronous code.
    public func shutdownSync() {
        for client in takeAll() { try? client.syncShutdown() }
    }

    private func takeAll() -> [HTTPClient] {
        state.withLockedValue { state in
            let all = state.active.values.flatMap(\.clients) + state.retired
            state = ([:], [])
            return all
        }
    }
}
