import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
@testable import GatewayCore

/// A running gateway in front of one fake of each provider, all on free loopback ports.
struct GatewayHarness: Sendable {
    static let clientKey = "gw_test_client_key_0123456789abcdefghijklmnop"
    static let limitedKey = "gw_test_limited_key_0123456789abcdefghijklmno"

    let port: Int
    let openai: FakeUpstream
    let anthropic: FakeUpstream
    let gemini: FakeUpstream
    let fakePorts: [FakeUpstream.Kind: Int]
    /// The configuration the gateway runs with.
    let config: GatewayConfig
    /// The request-log rows the gateway wrote.
    let records: RecordCollector
    /// The gateway itself, when it runs in this process (its snapshot store, stores and admin routes).
    var daemon: Gateway? = nil
    /// The request log's writer, when the gateway runs with one (`requestLogStore`).
    var requestLog: RequestLog? = nil

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Both clients a plain-HTTP provider can get, for tests that run through each.
    static let plainHTTPClients: [UpstreamClients.PlainHTTPClient] = [.connectionPool, .asyncHTTPClient]

    /// The default configuration: the three providers, two keys (one limited to `gpt-*`).
    static func defaultConfig(ports: [FakeUpstream.Kind: Int], fakes: [FakeUpstream]) -> GatewayConfig {
        var config = GatewayConfig()
        config.server.port = 0
        config.server.maxBodyBytes = 64 * 1024
        // Tests of the cache turn it on; the others see every request reach a provider.
        config.cache.backend = .off
        for fake in fakes {
            var provider = ProviderConfig(
                name: fake.kind.rawValue, type: ProviderType(rawValue: fake.kind.rawValue)!,
                baseURL: fake.baseURL(port: ports[fake.kind]!), apiKey: fake.key)
            provider.timeouts.firstByte = .seconds(2)
            provider.timeouts.idle = .seconds(1)
            config.providers.append(provider)
        }
        var disabled = ProviderConfig(name: "mistral", type: .openai, baseURL: "http://127.0.0.1:9/v1")
        disabled.missingVariables = ["MISTRAL_API_KEY"]
        config.providers.append(disabled)
        config.models["mistral-large"] = ModelConfig(name: "mistral-large", provider: "mistral")
        config.models["local-llama"] = ModelConfig(
            name: "local-llama", provider: "openai", upstream: "llama-3.1-8b", price: Price(input: 1, output: 2))
        config.keys = [
            KeyConfig(name: "tests", sha256: KeyHash.sha256Hex(clientKey)),
            KeyConfig(name: "limited", sha256: KeyHash.sha256Hex(limitedKey), models: ["gpt-*"]),
        ]
        return config
    }

    /// Starts the fakes and the gateway, runs `body`, then stops everything.
    /// - Parameter plainHTTP: the client the gateway uses for the fakes (all plain HTTP).
    static func with(
        plainHTTP: UpstreamClients.PlainHTTPClient = .connectionPool,
        configure: @Sendable (inout GatewayConfig) -> Void = { _ in },
        budgetEvents: @escaping BudgetAlerts.Publisher = { _ in },
        budgetClock: @escaping @Sendable () -> Int64 = BudgetBook.systemClock,
        requestLogStore: (@Sendable () async throws -> any RequestLogStore)? = nil,
        _ body: @Sendable (GatewayHarness) async throws -> Void
    ) async throws {
        let fakes = [FakeUpstream(kind: .openai), FakeUpstream(kind: .anthropic), FakeUpstream(kind: .gemini)]
        try await withThrowingTaskGroup(of: Void.self) { group in
            var ports: [FakeUpstream.Kind: Int] = [:]
            for fake in fakes {
                let (stream, continuation) = AsyncStream<Int>.makeStream()
                let app = fake.makeApplication { port in continuation.yield(port) }
                group.addTask { try await app.runService() }
                var iterator = stream.makeAsyncIterator()
                ports[fake.kind] = await iterator.next()
            }
            var config = defaultConfig(ports: ports, fakes: fakes)
            configure(&config)
            do {
                try await runGateway(
                    config: config, plainHTTP: plainHTTP, budgetEvents: budgetEvents, budgetClock: budgetClock, requestLogStore: requestLogStore
                ) { port, records, daemon in
                    try await body(
                        GatewayHarness(
                            port: port, openai: fakes[0], anthropic: fakes[1], gemini: fakes[2], fakePorts: ports, config: config, records: records,
                            daemon: daemon, requestLog: (daemon.requestLog as? RecordTee)?.log))
                }
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    /// Runs another gateway with `config` (e.g. a second instance sharing Redis) while `body` runs.
    func withAnotherGateway(
        config: GatewayConfig, requestLogStore: (@Sendable () async throws -> any RequestLogStore)? = nil,
        _ body: @Sendable (GatewayHarness) async throws -> Void
    ) async throws {
        try await Self.runGateway(config: config, requestLogStore: requestLogStore) { port, records, daemon in
            try await body(
                GatewayHarness(
                    port: port, openai: openai, anthropic: anthropic, gemini: gemini, fakePorts: fakePorts, config: config, records: records,
                    daemon: daemon, requestLog: (daemon.requestLog as? RecordTee)?.log))
        }
    }

    /// Runs a gateway on a free port while `body` runs with that port, then stops it.
    private static func runGateway(
        config: GatewayConfig, plainHTTP: UpstreamClients.PlainHTTPClient = .connectionPool,
        budgetEvents: @escaping BudgetAlerts.Publisher = { _ in }, budgetClock: @escaping @Sendable () -> Int64 = BudgetBook.systemClock,
        requestLogStore: (@Sendable () async throws -> any RequestLogStore)? = nil,
        _ body: (Int, RecordCollector, Gateway) async throws -> Void
    ) async throws {
        var logger = Logger(label: "gateway-test")
        logger.logLevel = .critical
        let records = RecordCollector()
        // With a store, rows also go to a real request log, which keeps the Responses API's stored responses.
        var log: RequestLog?
        var fleetWait = Duration.zero
        if let requestLogStore {
            let spool = NSTemporaryDirectory() + "harness-spool-\(UUID().uuidString)"
            let store = try await requestLogStore()
            log = RequestLog(store: store, spoolPath: spool, batchSize: 100, flushInterval: .milliseconds(200), logger: logger)
            // As the daemon does for PostgreSQL (`StoredResponses.fleetWait(for:)`), with room for a busy machine,
            // where the other gateway's writer may run late.
            if store is PostgresRequestLogStore { fleetWait = .seconds(3) }
        }
        let gateway = try Gateway(
            config: config, logger: logger, requestLog: log.map { RecordTee(records: records, log: $0) } ?? records,
            storedResponses: log.map { StoredResponses(log: $0, fleetWait: fleetWait) }, plainHTTP: plainHTTP, budgetEvents: budgetEvents, budgetClock: budgetClock)
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let app = gateway.makeApplication { port in continuation.yield(port) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let log {
                group.addTask {
                    try await log.run()
                    // The group is cancelled by now; closing must not be.
                    await Task { await log.closeStore() }.value
                }
            }
            group.addTask {
                try await app.runService()
                await gateway.clients.shutdown()
                await gateway.stores.shutdown()
            }
            var iterator = stream.makeAsyncIterator()
            let port = await iterator.next()!
            do {
                try await body(port, records, gateway)
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    // MARK: - Client calls

    struct Reply: Sendable {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: JSON? { try? JSON.parse(body) }
        func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    func post(_ path: String = "/v1/chat/completions", body: String, key: String? = GatewayHarness.clientKey, headers extra: [String: String] = [:]) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        if let key { request.headers.add(name: "authorization", value: "Bearer \(key)") }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        return try await send(request)
    }

    func post(_ path: String = "/v1/chat/completions", json: JSON, key: String? = GatewayHarness.clientKey, headers extra: [String: String] = [:]) async throws -> Reply {
        try await post(path, body: json.serialized(), key: key, headers: extra)
    }

    func delete(_ path: String, key: String? = GatewayHarness.clientKey) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .DELETE
        if let key { request.headers.add(name: "authorization", value: "Bearer \(key)") }
        return try await send(request)
    }

    func get(_ path: String, key: String? = GatewayHarness.clientKey, headers extra: [String: String] = [:]) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        if let key { request.headers.add(name: "authorization", value: "Bearer \(key)") }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        return try await send(request)
    }

    private func send(_ request: HTTPClientRequest) async throws -> Reply {
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
        return Reply(status: Int(response.status.code), headers: headers, body: String(buffer: body))
    }

    /// Opens a stream the fake provider stalls after its first events, reads the first bytes and leaves (the
    /// connection closes). Returns whether any bytes arrived.
    func readTheStartOfAStallingStreamThenLeave(model: String = "openai/stall-stream") async throws -> Bool {
        var request = HTTPClientRequest(url: baseURL + "/v1/chat/completions")
        request.method = .POST
        request.headers.add(name: "authorization", value: "Bearer \(GatewayHarness.clientKey)")
        request.body = .bytes(ByteBuffer(string: #"{"model":""# + model + #"","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        for try await _ in response.body { return true }
        return false
    }

    /// Sends `request` byte for byte over a fresh connection and returns everything the gateway sent back until
    /// it closed: status line, headers, chunk framing and trailers included.
    func raw(_ request: String) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            var received = ByteBuffer()
            for try await var chunk in inbound { received.writeBuffer(&chunk) }
            return String(buffer: received)
        }
    }

    /// The `data:` payloads of an SSE body.
    static func payloads(_ body: String) -> [String] {
        var parser = ServerSentEventParser()
        let events = (try? parser.feed(Array(body.utf8))) ?? []
        return (events + parser.finish()).map(\.data)
    }
}

/// Sends each row to the collector the tests read and to a real request log.
final class RecordTee: RequestRecordSink {
    let records: RecordCollector
    let log: RequestLog

    init(records: RecordCollector, log: RequestLog) {
        self.records = records
        self.log = log
    }

    func record(_ record: RequestRecord) {
        records.record(record)
        log.record(record)
    }
}

/// Keeps the request-log rows a gateway writes, for assertions.
final class RecordCollector: RequestRecordSink {
    private let rows = NIOLockedValueBox<[RequestRecord]>([])

    func record(_ record: RequestRecord) {
        rows.withLockedValue { $0.append(record) }
    }

    var all: [RequestRecord] { rows.withLockedValue { $0 } }

    /// Waits up to `timeout` for `count` rows (streams write theirs when they end).
    func waitFor(_ count: Int, timeout: Duration = .seconds(5)) async throws -> [RequestRecord] {
        let started = ContinuousClock.now
        while all.count < count, ContinuousClock.now - started < timeout { try await Task.sleep(for: .milliseconds(20)) }
        return all
    }
}
