import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import GatewayCore

/// The real daemon as an operator meets it: the admin socket, `llm-gateway ctl`, systemd notifications,
/// reloads and a graceful stop.
@Suite("Admin socket, ctl and systemd", .timeLimit(.minutes(2)))
struct AdminTests {
    static func ask(_ text: String, model: String = "gpt-4o-mini", stream: Bool = false) -> JSON {
        ["model": .string(model), "stream": .bool(stream), "messages": [["role": "user", "content": .string(text)]]]
    }

    static let secretHeader = "org-secret-0123456789"
    static let postgresPassword = "pg-secret/pw@0123456789"

    /// A daemon configuration in front of the harness's fake OpenAI.
    static func yaml(_ fakes: GatewayHarness, port: Int, keyName: String = "ops", key: String = GatewayHarness.clientKey, extra: String = "") -> String {
        let upstream = fakes.openai.baseURL(port: fakes.fakePorts[.openai]!)
        return """
            server: {listen: "127.0.0.1:\(port)", drain_timeout: 10s}
            providers:
              openai: {type: openai, base_url: "\(upstream)", api_key: "\(fakes.openai.key)", headers: {X-Org: "\(secretHeader)"}}
            keys:
              - name: \(keyName)
                sha256: \(KeyHash.sha256Hex(key))
                prefix: \(key.prefix(7))
                rate_limit: {requests_per_minute: 100}
            cache: {backend: memory}
            request_log: {backend: off}
            postgres: {url: "postgres://gateway:\(postgresPassword)@127.0.0.1:5432/gateway"}
            \(extra)
            """
    }

    static func client(_ daemon: DaemonProcess, _ fakes: GatewayHarness) -> GatewayHarness {
        GatewayHarness(
            port: daemon.port, openai: fakes.openai, anthropic: fakes.anthropic, gemini: fakes.gemini, fakePorts: fakes.fakePorts,
            config: fakes.config, records: fakes.records)
    }

    /// Starts a slow stream through the daemon and returns once the fake provider has it.
    static func startSlowStream(_ api: GatewayHarness, _ fakes: GatewayHarness) async throws -> Task<GatewayHarness.Reply, any Error> {
        let stream = Task { try await api.post(json: Self.ask("long", model: "openai/slow-stream", stream: true)) }
        let started = ContinuousClock.now
        while fakes.openai.requests.isEmpty, ContinuousClock.now - started < .seconds(10) { try await Task.sleep(for: .milliseconds(20)) }
        return stream
    }

    static func get(_ daemon: DaemonProcess, _ path: String) async throws -> JSON {
        let answer = try await AdminClient(socketPath: daemon.adminSocket).call(.get, path)
        #expect(answer.status == 200, "\(path): \(answer.body)")
        return try JSON.parse(answer.body)
    }

    @Test func everyEndpointAnswersAndNoneShowsASecret() async throws {
        try await GatewayHarness.with { fakes in
            let daemon = try await DaemonProcess { port in Self.yaml(fakes, port: port) }
            let api = Self.client(daemon, fakes)
            let firstRequest = ContinuousClock.now
            #expect(try await api.post(json: Self.ask("admin")).status == 200)
            #expect(try await api.post(json: Self.ask("admin")).header("X-Cache-Hit") == "exact")

            var info = stat()
            #expect(lstat(daemon.adminSocket, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o600, "admin.mode defaults to 0600")

            let status = try await Self.get(daemon, "/status")
            #expect(status["pid"]?.intValue == Int(daemon.pid))
            #expect(status["version"]?.stringValue == GatewayVersion.current)
            #expect(status["tasks"]?.stringValue == "event-loops", "the daemon runs Swift concurrency on NIO's event loops")
            #expect(status["config"]?["generation"]?.intValue == 1)
            #expect(status["config"]?["path"]?.stringValue == daemon.configPath)
            #expect(status["config"]?["sha256"]?.stringValue?.count == 64)
            #expect(status["listeners"]?["api"]?.stringValue == "127.0.0.1:\(daemon.port)")
            #expect(status["listeners"]?["admin"]?.stringValue == daemon.adminSocket)
            #expect(status["last_reload"]?.isNull == true)

            let providers = try await Self.get(daemon, "/providers")
            let openai = try #require(providers["providers"]?.arrayValue?.first { $0["name"] == "openai" })
            #expect(openai["circuit"] == "closed")
            #expect(openai["requests"]?.intValue == 1, "the second answer came from the cache")
            #expect(openai["errors"]?.intValue == 0)
            #expect(openai["in_flight"]?.intValue == 0)
            #expect(openai["p50_ms"]?.intValue != nil && openai["p99_ms"]?.intValue != nil)
            // The fakes are plain HTTP, so the gateway's own pool serves them and counts its connections.
            let connections = try #require(openai["connections"])
            #expect((connections["open"]?.intValue ?? 0) >= 1, "the answer's connection is kept alive")
            #expect(connections["idle"]?.intValue == connections["open"]?.intValue, "nothing is in flight")

            let keys = try await Self.get(daemon, "/keys")
            let key = try #require(keys["keys"]?.arrayValue?.first)
            #expect(key["name"] == "ops")
            #expect(key["prefix"]?.stringValue == String(GatewayHarness.clientKey.prefix(7)))
            #expect(key["usage"]?["requests"]?.intValue == 2)
            // 100 requests a minute refill one every 0.6 s: on a loaded machine some may have come back already.
            let refilled = Int((ContinuousClock.now - firstRequest) / .milliseconds(600))
            let remaining = try #require(key["remaining"]?["requests"]?.intValue)
            #expect(remaining >= 98 && remaining <= min(100, 98 + refilled), "remaining \(remaining), \(refilled) refilled")

            let cache = try await Self.get(daemon, "/cache")
            #expect(cache["backend"] == "memory")
            #expect(cache["entries"]?.intValue == 1)
            #expect(cache["hits"]?.intValue == 1)
            let flushed = try await AdminClient(socketPath: daemon.adminSocket).call(.post, "/cache/flush")
            #expect(flushed.status == 200)
            #expect((try JSON.parse(flushed.body))["flushed"]?.intValue == 1)
            #expect(try await Self.get(daemon, "/cache")["entries"]?.intValue == 0)
            #expect(try await api.post(json: Self.ask("admin")).header("X-Cache-Hit") == "miss")

            let metrics = try await AdminClient(socketPath: daemon.adminSocket).call(.get, "/metrics")
            #expect(metrics.body.contains(#"llm_gateway_requests_total{model="gpt-4o-mini",provider="openai",status="200",route="/v1/chat/completions"} 3"#))

            let config = try await AdminClient(socketPath: daemon.adminSocket).call(.get, "/config")
            #expect(config.status == 200)
            let parsed = try JSON.parse(config.body)
            #expect(parsed["providers"]?["openai"]?["api_key"] == "[redacted]")
            #expect(parsed["keys"]?.arrayValue?.first?["sha256"] == "[redacted]")
            #expect(parsed["postgres"]?["url"]?.stringValue == "postgres://gateway:[redacted]@127.0.0.1:5432/gateway")
            for answer in [config.body, try await AdminClient(socketPath: daemon.adminSocket).call(.get, "/keys").body,
                           try await AdminClient(socketPath: daemon.adminSocket).call(.get, "/providers").body, metrics.body] {
                for secret in [fakes.openai.key, Self.secretHeader, Self.postgresPassword, KeyHash.sha256Hex(GatewayHarness.clientKey), GatewayHarness.clientKey] {
                    #expect(!answer.contains(secret), "an admin answer shows a secret")
                }
            }
            #expect(await daemon.stop() == 0)
            #expect(lstat(daemon.adminSocket, &info) != 0, "the socket file is removed at exit")
        }
    }

    /// A budget, not a timing: how often a request's tasks go back to an event loop's queue. Running the jobs the
    /// runtime hands over as the loop's serial executor (NIO's own take-over) queued about 200 per answered request
    /// and 110 per cache hit here, since every call into a nonisolated async function then changes executor; on the
    /// generic executor it is about 10 and 2.
    @Test func requestsQueueFewTaskJobsOnTheEventLoops() async throws {
        try await GatewayHarness.with { fakes in
            let daemon = try await DaemonProcess { port in Self.yaml(fakes, port: port) }
            let api = Self.client(daemon, fakes)
            func jobsQueued() async throws -> Int {
                try #require(try await Self.get(daemon, "/status")["task_jobs_queued"]?.intValue)
            }
            // The first requests open the upstream connection and warm the caches.
            for index in 0..<3 { #expect(try await api.post(json: Self.ask("warm \(index)")).status == 200) }
            let rounds = 20
            let start = try await jobsQueued()
            for index in 0..<rounds { #expect(try await api.post(json: Self.ask("miss \(index)")).status == 200) }
            let afterMisses = try await jobsQueued()
            for _ in 0..<rounds { #expect(try await api.post(json: Self.ask("warm 0")).header("X-Cache-Hit") == "exact") }
            let afterHits = try await jobsQueued()
            // Each count also holds one `/status` call on the admin socket.
            #expect((afterMisses - start) / rounds <= 30, "jobs queued per answered request: \(Double(afterMisses - start) / Double(rounds))")
            #expect((afterHits - afterMisses) / rounds <= 10, "jobs queued per cache hit: \(Double(afterHits - afterMisses) / Double(rounds))")
            #expect(await daemon.stop() == 0)
        }
    }

    @Test func ctlCacheShowsBothKindsAndForgetsASemanticEntry() async throws {
        try await GatewayHarness.with { fakes in
            let extra = """
                models:
                  embedder: {provider: openai, upstream: fake-embed, kind: embedding, price: {input: 0.1}}
                """
            let daemon = try await DaemonProcess { port in
                Self.yaml(fakes, port: port, extra: extra)
                    .replacingOccurrences(of: "cache: {backend: memory}", with: "cache: {backend: memory, semantic: {embedder: embedder, threshold: 0.9, timeout: 2s}}")
            }
            let api = Self.client(daemon, fakes)
            func ctl(_ arguments: String...) async throws -> ProcessRunner.Result {
                try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["ctl"] + arguments + ["--socket", daemon.adminSocket])
            }
            _ = try await api.post(json: Self.ask("What is the capital city of France?"))
            let hit = try await api.post(json: Self.ask("What is the capital of France?"))
            #expect(hit.header("X-Cache-Hit") == "semantic")
            let entry = try #require(hit.header("X-Cache-Entry"))
            let table = try await ctl("cache")
            #expect(table.status == 0)
            #expect(table.stdout.contains("semantic") && table.stdout.contains(entry), "\(table.stdout)")
            let forgot = try await ctl("cache", "forget", entry)
            #expect(forgot.status == 0, "\(forgot.stdout)\(forgot.stderr)")
            let again = try await api.post(json: Self.ask("What is the capital of France?"), headers: ["Cache-Control": "no-store"])
            #expect(again.header("X-Cache-Hit") == "miss")
            let missing = try await ctl("cache", "forget", entry)
            #expect(missing.status == 1 && missing.stderr.contains("No semantic cache entry"), "\(missing.stderr)")
            #expect(try await ctl("cache", "forget", "zz").status == 2)
            #expect(await daemon.stop() == 0)
        }
    }

    @Test func ctlPrintsTablesAndReportsEveryReload() async throws {
        try await GatewayHarness.with { fakes in
            let daemon = try await DaemonProcess { port in Self.yaml(fakes, port: port) }
            func ctl(_ arguments: String...) async throws -> ProcessRunner.Result {
                try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["ctl"] + arguments + ["--socket", daemon.adminSocket])
            }
            let status = try await ctl("status")
            #expect(status.status == 0)
            let statusLines = status.stdout.split(separator: "\n")
            #expect(statusLines.contains { $0.hasPrefix("generation") && $0.hasSuffix(" 1") })
            #expect(statusLines.contains { $0.hasPrefix("last reload") && $0.hasSuffix("never") })
            let providers = try await ctl("providers")
            #expect(providers.stdout.hasPrefix("PROVIDER"))
            #expect(providers.stdout.contains("openai"))
            let keys = try await ctl("keys")
            #expect(keys.stdout.hasPrefix("KEY"))
            #expect(keys.stdout.split(separator: "\n").contains { $0.hasPrefix("ops ") })
            let keysJSON = try JSON.parse(try await ctl("keys", "--json").stdout)
            #expect(keysJSON["keys"]?.arrayValue?.count == 1)
            // Columns line up: each header's right edge is where its numbers end.
            let table = providers.stdout.split(separator: "\n").map(String.init)
            let header = try #require(table.first)
            let row = try #require(table.dropFirst().first)
            #expect(header.count == row.count, "right-aligned last column:\n\(providers.stdout)")

            let unchanged = try await ctl("reload")
            #expect(unchanged.status == 0)
            #expect(unchanged.stdout.hasPrefix("reload unchanged"))

            let valid = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
            try valid.replacingOccurrences(of: "listen: \"127.0.0.1:\(daemon.port)\"", with: "listen: \"nowhere\"")
                .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
            let refused = try await ctl("reload")
            #expect(refused.status == 1)
            #expect(refused.stdout.contains("reload refused"))
            #expect(refused.stdout.contains("\(daemon.configPath):1:"), "the error names file:line:column\n\(refused.stdout)")
            let afterRefusal = try JSON.parse(try await ctl("status", "--json").stdout)
            #expect(afterRefusal["last_reload"]?["result"] == "refused")
            #expect(afterRefusal["last_reload"]?["errors"]?.arrayValue?.first?.stringValue?.contains("server.listen") == true)
            #expect(afterRefusal["config"]?["generation"]?.intValue == 1)
            #expect(try await Self.client(daemon, fakes).post(json: Self.ask("still serving")).status == 200)

            let newKey = "gw_ctl_second_key_0123456789abcdefghijklmnopq"
            try (Self.yaml(fakes, port: daemon.port, keyName: "second", key: newKey) + "logging: {level: debug}\n")
                .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
            let applied = try await ctl("reload")
            #expect(applied.status == 0)
            #expect(applied.stdout.hasPrefix("reload applied: configuration generation 2"))
            #expect(try await Self.client(daemon, fakes).post(json: Self.ask("old key")).status == 401)
            #expect(try await Self.client(daemon, fakes).post(json: Self.ask("new key"), key: newKey).status == 200)
            let config = try JSON.parse(try await ctl("config").stdout)
            #expect(config["logging"]?["level"] == "debug")

            let missing = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["ctl", "status", "--socket", daemon.adminSocket + ".missing"])
            #expect(missing.status == 2)
            #expect(missing.stderr.contains("cannot reach the admin socket"))
            #expect(await daemon.stop() == 0)
        }
    }

    @Test func aReloadLetsTheStreamInFlightFinishOnItsSnapshot() async throws {
        try await GatewayHarness.with { fakes in
            let daemon = try await DaemonProcess { port in Self.yaml(fakes, port: port) }
            let api = Self.client(daemon, fakes)
            let stream = try await Self.startSlowStream(api, fakes)
            let started = ContinuousClock.now
            // The new file drops the key the stream was authorised with.
            try Self.yaml(fakes, port: daemon.port, keyName: "other", key: "gw_other_key_0123456789abcdefghijklmnopqrstu")
                .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
            kill(daemon.pid, SIGHUP)
            var generation = 1
            while generation == 1, ContinuousClock.now - started < .seconds(10) {
                generation = try await Self.get(daemon, "/status")["config"]?["generation"]?.intValue ?? 1
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(generation == 2)
            #expect(try await api.post(json: Self.ask("after")).status == 401, "new requests see the new keys")
            let reply = try await stream.value
            #expect(reply.status == 200)
            #expect(GatewayHarness.payloads(reply.body).last == "[DONE]", "the stream in flight finishes on its snapshot")
            #expect(await daemon.stop() == 0)
        }
    }

    @Test func sigtermLetsAStreamInFlightFinishThenExits0() async throws {
        try await GatewayHarness.with { fakes in
            let daemon = try await DaemonProcess { port in Self.yaml(fakes, port: port) }
            let api = Self.client(daemon, fakes)
            let stream = try await Self.startSlowStream(api, fakes)
            let exit = Task { await daemon.stop() }
            let reply = try await stream.value
            #expect(reply.status == 200)
            #expect(GatewayHarness.payloads(reply.body).last == "[DONE]", "the stream finishes during the drain")
            #expect(await exit.value == 0)
            #expect(await daemon.status("/healthz", key: nil) == nil, "the daemon is gone")
        }
    }

    @Test func systemdHearsReadyReloadingWatchdogAndStopping() async throws {
        let directory = NSTemporaryDirectory() + "notify-\(RandomID.make(prefix: "", length: 8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/notify.sock"
        let receiver = try NotifyReceiver(path: path)
        let messages = receiver.messages
        do {
            /// Waits until the messages received so far satisfy `satisfied`.
            @Sendable func waitFor(_ what: String, _ satisfied: @escaping @Sendable ([String]) -> Bool) async throws {
                let started = ContinuousClock.now
                while !satisfied(messages.withLockedValue { $0 }), ContinuousClock.now - started < .seconds(10) {
                    try await Task.sleep(for: .milliseconds(20))
                }
                let received = messages.withLockedValue { $0 }
                #expect(satisfied(received), "no \(what) among \(received)")
            }
            @Sendable func readyCount(_ received: [String]) -> Int {
                received.filter { $0.split(separator: "\n").contains("READY=1") }.count
            }
            try await GatewayHarness.with { fakes in
                let daemon = try await DaemonProcess(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"]) { port in
                    Self.yaml(fakes, port: port)
                }
                try await waitFor("READY=1") { readyCount($0) == 1 }
                // READY=1 comes once both listeners are bound: the admin socket answers by then.
                #expect(try await Self.get(daemon, "/status")["ready"] == true)

                kill(daemon.pid, SIGHUP)
                try await waitFor("RELOADING=1 with MONOTONIC_USEC") { received in
                    received.contains { message in
                        let lines = message.split(separator: "\n")
                        return lines.contains("RELOADING=1") && lines.contains { $0.hasPrefix("MONOTONIC_USEC=") && UInt64($0.dropFirst(15)) != nil }
                    }
                }
                try await waitFor("READY=1 after the reload") { received in
                    guard let reloading = received.firstIndex(where: { $0.hasPrefix("RELOADING=1") }) else { return false }
                    return readyCount(Array(received[reloading...])) == 1
                }
                try await waitFor("two WATCHDOG=1") { $0.filter { $0 == "WATCHDOG=1" }.count >= 2 }
                #expect(await daemon.stop() == 0)
                try await waitFor("STOPPING=1") { $0.last == "STOPPING=1" }
            }
        }
        receiver.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func theSocketIsRefusedWhereItWouldBeUnsafeAndAStaleOneIsReplaced() async throws {
        let directory = NSTemporaryDirectory() + "admin-\(RandomID.make(prefix: "", length: 8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        chmod(directory, 0o777)
        #expect(throws: AdminServer.SocketProblem.self) { try AdminServer.prepare(path: directory + "/admin.sock") }

        chmod(directory, 0o700)
        let notASocket = directory + "/file"
        FileManager.default.createFile(atPath: notASocket, contents: Data("keep me".utf8))
        #expect(throws: AdminServer.SocketProblem.self) { try AdminServer.prepare(path: notASocket) }
        #expect(FileManager.default.fileExists(atPath: notASocket))

        // A socket someone listens on is refused; once its listener is gone the file is stale and replaced.
        let path = directory + "/admin.sock"
        let live = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(unixDomainSocketPath: path).get()
        #expect(throws: AdminServer.SocketProblem.self) { try AdminServer.prepare(path: path) }
        try await live.close()
        Self.leaveStaleSocket(at: path)
        #expect(FileManager.default.fileExists(atPath: path))
        try AdminServer.prepare(path: path)
        #expect(!FileManager.default.fileExists(atPath: path), "a stale socket is removed before the bind")

        try AdminServer.prepare(path: path + ".new/admin.sock")
        var info = stat()
        #expect(stat(path + ".new", &info) == 0 && info.st_mode & 0o777 == 0o750, "a missing directory is created private")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Binds a Unix socket at `path` and closes it without removing the file, as a killed daemon leaves it.
    static func leaveStaleSocket(at path: String) {
        unlink(path)
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        _ = UnixSocketAddress.with(path) { bind(descriptor, $0, $1) }
        close(descriptor)
    }
}

/// What systemd would receive on `$NOTIFY_SOCKET`: a Unix datagram socket read by a thread of its own.
final class NotifyReceiver: Sendable {
    let messages = NIOLockedValueBox<[String]>([])
    private let running = NIOLockedValueBox(true)
    private let descriptor: Int32

    struct BindFailed: Error {}

    init(path: String) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        self.descriptor = descriptor
        guard UnixSocketAddress.with(path, { bind(descriptor, $0, $1) }) == 0 else { throw BindFailed() }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let messages = self.messages
        let running = self.running
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while running.withLockedValue({ $0 }) {
                let count = recv(descriptor, &buffer, buffer.count, 0)
                if count > 0 { messages.withLockedValue { $0.append(String(decoding: buffer[0..<count], as: UTF8.self)) } }
            }
            close(descriptor)
        }
    }

    func stop() {
        running.withLockedValue { $0 = false }
    }
}

/// The Prometheus exposition, parsed line by line.
@Suite("Metrics", .timeLimit(.minutes(2)))
struct MetricsTests {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// Parses the text format; every line must be a comment or a well-formed sample.
    static func parse(_ text: String) throws -> (samples: [Sample], types: [String: String]) {
        var samples: [Sample] = []
        var types: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                types[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw Malformed(line: String(line))
            }
            let series = line[..<space]
            var labels: [String: String] = [:]
            var name = String(series)
            if let brace = series.firstIndex(of: "{") {
                guard series.last == "}" else { throw Malformed(line: String(line)) }
                name = String(series[..<brace])
                let body = series[series.index(after: brace)..<series.index(before: series.endIndex)]
                for pair in body.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, parts[1].hasPrefix("\""), parts[1].hasSuffix("\"") else { throw Malformed(line: String(line)) }
                    labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
                }
            }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) else { throw Malformed(line: String(line)) }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
        return (samples, types)
    }

    struct Malformed: Error { var line: String }

    static let tinyKey = "gw_tiny_limit_key_0123456789abcdefghijklmnopqr"

    static let metricsToken = "metrics-token-0123456789"

    @Test func theExpositionParsesAndCountsWhatHappened() async throws {
        try await GatewayHarness.with(configure: { config in
            config.metrics.token = Self.metricsToken
            config.cache.backend = .memory
            config.models["chain"] = ModelConfig(name: "chain", provider: "openai", upstream: "status-503", fallbacks: ["anthropic/claude-haiku-4-5"])
            config.models["busy"] = ModelConfig(name: "busy", provider: "openai", upstream: "status-429", fallbacks: [])
            var tiny = KeyConfig(name: "tiny", sha256: KeyHash.sha256Hex(Self.tinyKey))
            tiny.rateLimit = RateLimit(requestsPerMinute: 1)
            config.keys.append(tiny)
        }) { gateway in
            // The gateway's own limit refuses the second request; a provider's 429 is not a rate-limit refusal.
            #expect(try await gateway.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "t"]]], key: Self.tinyKey).status == 200)
            #expect(try await gateway.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "t"]]], key: Self.tinyKey).status == 429)
            #expect(try await gateway.post(json: ["model": "busy", "messages": [["role": "user", "content": "b"]]]).status == 429)
            for _ in 0..<2 { #expect(try await gateway.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "m"]]]).status == 200) }
            #expect(try await gateway.post(json: ["model": "chain", "messages": [["role": "user", "content": "f"]]]).status == 200)
            #expect(try await gateway.post(json: ["model": "no-such-model", "messages": [["role": "user", "content": "x"]]]).status == 404)
            _ = try await gateway.records.waitFor(7)

            let reply = try await gateway.get("/metrics", key: Self.metricsToken)
            #expect(reply.status == 200)
            #expect(reply.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
            let (samples, types) = try Self.parse(reply.body)
            func value(_ name: String, _ labels: [String: String]) -> Double? {
                samples.first { $0.name == name && $0.labels == labels }?.value
            }
            // Three answers: the tiny key's (its own cache namespace), then a miss and a hit for the test key.
            #expect(value("llm_gateway_requests_total", ["model": "gpt-4o-mini", "provider": "openai", "status": "200", "route": "/v1/chat/completions"]) == 3)
            #expect(value("llm_gateway_requests_total", ["model": "chain", "provider": "anthropic", "status": "200", "route": "/v1/chat/completions"]) == 1)
            #expect(value("llm_gateway_requests_total", ["model": "", "provider": "", "status": "404", "route": "/v1/chat/completions"]) == 1)
            #expect(value("llm_gateway_cache_lookups_total", ["result": "hit"]) == 1)
            #expect(value("llm_gateway_cache_lookups_total", ["result": "miss"]) == 4)
            #expect(value("llm_gateway_rate_limited_total", ["key": "tiny"]) == 1)
            #expect(!samples.contains { $0.name == "llm_gateway_rate_limited_total" && $0.labels["key"] == "tests" })
            #expect(value("llm_gateway_failovers_total", ["from": "openai", "to": "anthropic"]) == 1)
            let spent = value("llm_gateway_cost_usd_total", ["model": "gpt-4o-mini", "provider": "openai"]) ?? 0
            #expect(spent > 0)
            // The hit saved what its miss cost: one of the two paid answers, which cost the same.
            #expect(abs((value("llm_gateway_saved_cost_usd_total", ["model": "gpt-4o-mini"]) ?? 0) - spent / 2) < 1e-9)
            #expect((value("llm_gateway_tokens_total", ["model": "gpt-4o-mini", "provider": "openai", "type": "prompt"]) ?? 0) > 0)
            #expect(value("llm_gateway_circuit_state", ["provider": "openai"]) == 0)
            #expect(value("llm_gateway_in_flight_requests", ["provider": "openai"]) == 0)
            #expect(types["llm_gateway_requests_total"] == "counter")
            #expect(types["llm_gateway_request_duration_seconds"] == "histogram")
            #expect(types["llm_gateway_time_to_first_byte_seconds"] == "histogram")
            #expect(types["llm_gateway_circuit_state"] == "gauge")

            // Histogram buckets are cumulative and end in +Inf == _count.
            let labels = ["model": "gpt-4o-mini", "provider": "openai"]
            let buckets = samples.filter { $0.name == "llm_gateway_request_duration_seconds_bucket" && $0.labels["model"] == "gpt-4o-mini" }
            #expect(buckets.count == GatewayMetrics.durationBuckets.count + 1)
            #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.value <= $1.value })
            #expect(buckets.last?.labels["le"] == "+Inf")
            #expect(buckets.last?.value == value("llm_gateway_request_duration_seconds_count", labels))
            #expect(value("llm_gateway_request_duration_seconds_count", labels) == 3)
        }
    }

    @Test func aReloadChangesTheLogLevelAndAnUnchangedFileIsANoOp() async throws {
        let path = NSTemporaryDirectory() + "reload-\(RandomID.make(prefix: "", length: 8)).yaml"
        let base = "server: {listen: \"127.0.0.1:0\"}\nrequest_log: {backend: off}\nkeys: [{name: a, sha256: \(KeyHash.sha256Hex("gw_a"))}]\n"
        try (base + "logging: {level: info}\n").write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = ConfigLoader.load(path: path, environment: [:])
        let control = LogLevelControl(.info)
        let logger = Logger(label: "reload-test") { control.handler(label: $0) }
        let gateway = try Gateway(config: try #require(loaded.config), logger: logger, sourceSHA256: loaded.sourceSHA256, logLevel: control)
        let reloader = ConfigReloader(path: path, gateway: gateway, environment: { [:] })

        let unchanged = reloader.reload()
        #expect(unchanged.result == .unchanged)
        #expect(gateway.store.snapshot.generation == 1)

        try (base + "logging: {level: debug}\n").write(toFile: path, atomically: true, encoding: .utf8)
        let applied = reloader.reload()
        #expect(applied.result == .applied)
        #expect(gateway.store.snapshot.generation == 2)
        #expect(control.level == .debug)
        #expect(logger.logLevel == .debug, "every copy of the logger follows the reloaded level")
        #expect(reloader.lastReload?.result == .applied)
        #expect(reloader.reload().result == .unchanged)

        // The request log is opened at start-up: a change is applied to the snapshot but reported as needing a restart.
        try (base.replacingOccurrences(of: "request_log: {backend: off}", with: "request_log: {backend: sqlite, path: /tmp/elsewhere.db}")
            + "logging: {level: debug}\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(reloader.reload().restartRequired == ["request_log"])
        gateway.clients.shutdownSync()
        try? FileManager.default.removeItem(atPath: path)
    }
}
