import AsyncHTTPClient
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// One long-lived HTTP client per provider, made at start-up and shut down at stop; never per request.
///
/// Redirects are never followed, responses are not decompressed, and the per-host connection limit is raised
/// well above AsyncHTTPClient's default of 8 so concurrent streams do not queue behind each other.
public final class UpstreamClients: Sendable {
    private struct Entry {
        var settings: ClientSettings
        var client: HTTPClient
    }

    private struct ClientSettings: Equatable {
        var connect: Duration
        var read: Duration
    }

    private let state = NIOLockedValueBox<(active: [String: Entry], retired: [HTTPClient])>(([:], []))
    /// Connections per upstream host (HTTP/1.1: one per request in flight, so one per open stream). Requests
    /// beyond it wait for a free connection, within the provider's connect timeout.
    public static let connectionsPerHost = 4096

    public init() {}

    /// Makes (or keeps) a client for every provider in `config`.
    public func prepare(for config: GatewayConfig) {
        for provider in config.providers { _ = client(for: provider) }
    }

    /// The client for `provider`, made on first use or when its timers changed.
    public func client(for provider: ProviderConfig) -> HTTPClient {
        let settings = ClientSettings(
            connect: provider.timeouts.connect, read: max(provider.timeouts.firstByte, provider.timeouts.idle))
        return state.withLockedValue { state in
            if let entry = state.active[provider.name], entry.settings == settings { return entry.client }
            if let old = state.active[provider.name] { state.retired.append(old.client) }
            var configuration = HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .init(settings.connect), read: .init(settings.read)),
                connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: Self.connectionsPerHost),
                decompression: .disabled)
            configuration.httpVersion = .automatic
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            state.active[provider.name] = Entry(settings: settings, client: client)
            return client
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
            let all = state.active.values.map(\.client) + state.retired
            state = ([:], [])
            return all
        }
    }
}
