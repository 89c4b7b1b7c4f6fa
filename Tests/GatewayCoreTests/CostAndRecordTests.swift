import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
@testable import GatewayCore

/// Cost on every path, and one request-log row per request whatever its outcome.
@Suite("Cost and request records", .timeLimit(.minutes(2)))
struct CostAndRecordTests {
    static let hello: JSON = [["role": "user", "content": "hi"]]

    @Test(arguments: [("gpt-4o-mini", "openai"), ("claude-haiku-4-5", "anthropic"), ("gemini-2.5-flash", "gemini")])
    func everyProviderIsPricedFromItsUsage(model: String, provider: String) async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.post(json: ["model": .string(model), "messages": Self.hello], headers: ["X-Customer-Id": "acme", "X-Feature": "chat", "X-Metadata-Team": "search"])
            let usage = try #require(Usage(openAI: reply.json?["usage"]))
            let price = try #require(ModelCatalog.model(named: model)?.price)
            let expected = usage.cost(at: price)
            #expect(reply.header("X-Cost-USD") == CostFormat.usd(expected))
            #expect(abs((reply.json?["cost_usd"]?.doubleValue ?? -1) - expected) < 1e-12)
            #expect(reply.json?["latency_ms"]?.intValue != nil)
            let row = try #require(try await gateway.records.waitFor(1).first)
            #expect(row.statusCode == 200)
            #expect(row.keyName == "tests")
            #expect(row.model == model)
            #expect(row.provider == provider)
            #expect(row.promptTokens == usage.promptTokens && row.completionTokens == usage.completionTokens)
            #expect(abs((row.costUSD ?? -1) - expected) < 1e-12)
            #expect(row.customer == "acme" && row.feature == "chat")
            #expect(row.metadata["team"] == "search")
            #expect(!row.stream && !row.cacheHit && !row.failoverUsed && row.attempts == 1)
        }
    }

    @Test func aFailoverIsPricedAtTheFallbacksPriceAndRecorded() async throws {
        try await GatewayHarness.with { gateway in
            gateway.openai.failNext(1, status: 500)
            let reply = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello])
            #expect(reply.header("X-Provider") == "anthropic")
            let usage = try #require(Usage(openAI: reply.json?["usage"]))
            let fallbackPrice = try #require(ModelCatalog.model(named: "claude-haiku-4-5")?.price)
            #expect(reply.header("X-Cost-USD") == CostFormat.usd(usage.cost(at: fallbackPrice)))
            let row = try #require(try await gateway.records.waitFor(1).first)
            #expect(row.failoverUsed)
            #expect(row.provider == "anthropic" && row.originalProvider == "openai")
            #expect(row.servedModel == "claude-haiku-4-5")
            #expect(row.attempts == 2)
        }
    }

    @Test(arguments: ["openai", "anthropic", "gemini"])
    func streamedUsageIsCostedEvenWithoutIncludeUsage(provider: String) async throws {
        let model = ["openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"][provider]!
        try await GatewayHarness.with { gateway in
            let plain = try await gateway.post(json: ["model": .string(model), "stream": true, "messages": Self.hello])
            #expect(GatewayHarness.payloads(plain.body).last == "[DONE]")
            let row = try #require(try await gateway.records.waitFor(1).first)
            #expect(row.stream)
            #expect((row.completionTokens ?? 0) > 0)
            #expect((row.costUSD ?? 0) > 0, "a streamed request must not be logged at $0")

            let withUsage = try await gateway.post(json: ["model": .string(model), "stream": true, "stream_options": ["include_usage": true], "messages": Self.hello])
            let payloads = GatewayHarness.payloads(withUsage.body)
            let usageChunk = try JSON.parse(payloads[payloads.count - 2])
            let usage = try #require(Usage(openAI: usageChunk["usage"]))
            let price = try #require(ModelCatalog.model(named: model)?.price)
            #expect(abs((usageChunk["cost_usd"]?.doubleValue ?? -1) - usage.cost(at: price)) < 1e-12)
        }
    }

    @Test func aStreamsCostFollowsAsATrailer() async throws {
        try await GatewayHarness.with { gateway in
            let body = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}"#
            let reply = try await gateway.raw(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer \(GatewayHarness.clientKey)\r\n"
                    + "Content-Type: application/json\r\nTE: trailers\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let head = reply.components(separatedBy: "\r\n\r\n")[0].lowercased()
            #expect(head.hasPrefix("http/1.1 200"))
            #expect(head.contains("transfer-encoding: chunked"))
            #expect(head.contains("trailer: x-cost-usd"))
            // The last chunk (size 0) is followed by the trailer section.
            let trailerSection = try #require(reply.range(of: "\r\n0\r\n").map { String(reply[$0.upperBound...]) })
            let trailer = try #require(trailerSection.split(separator: "\r\n").first { $0.lowercased().hasPrefix("x-cost-usd:") })
            let cost = try #require(Double(trailer.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)))
            let row = try #require(try await gateway.records.waitFor(1).first)
            #expect(cost > 0)
            #expect(abs(cost - (row.costUSD ?? -1)) < 1e-6, "the trailer and the request log agree")
        }
    }

    @Test func refusedAndFailedAnswersCostNothingAndSayHowLongTheyTook() async throws {
        try await GatewayHarness.with(configure: { FailoverTests.chain(&$0, upstream: "status-500", fallbacks: []) }) { gateway in
            let unknownKey = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello], key: "gw_nobody")
            let unknownModel = try await gateway.post(json: ["model": "no-such-model", "messages": Self.hello])
            let upstreamFailed = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            for (reply, status) in [(unknownKey, 401), (unknownModel, 404), (upstreamFailed, 502)] {
                #expect(reply.status == status)
                #expect(reply.header("X-Cost-USD") == "0.000000")
                #expect(reply.header("X-Latency-Ms").flatMap(Int.init) != nil)
                #expect(reply.json?["error"]?["message"]?.stringValue != nil)
            }
            #expect(upstreamFailed.header("X-Attempts") == "1")
            let rows = try await gateway.records.waitFor(3)
            #expect(rows.first { $0.statusCode == 502 }?.attempts == 1, "a failed chain records the attempts it made")
        }
    }

    @Test func cacheHitsCostNothingAndRecordWhatTheySaved() async throws {
        try await GatewayHarness.with(configure: { $0.cache.backend = .memory }) { gateway in
            let miss = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello])
            let hit = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello])
            #expect(hit.json?["cost_usd"]?.doubleValue == 0)
            let rows = try await gateway.records.waitFor(2)
            #expect(rows.count == 2)
            #expect(rows[1].cacheHit)
            #expect(rows[1].costUSD == 0)
            #expect(abs((rows[1].savedCostUSD ?? 0) - (miss.json?["cost_usd"]?.doubleValue ?? -1)) < 1e-12)
        }
    }

    @Test func everyOutcomeWritesOneRow() async throws {
        try await GatewayHarness.with(configure: { $0.keys[1].rateLimit = RateLimit(requestsPerMinute: 1) }) { gateway in
            _ = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello], key: "gw_nobody_0123456789abcdefghijklmnopqrstuv")
            _ = try await gateway.post(json: ["model": "no-such-model", "messages": Self.hello])
            _ = try await gateway.post(body: "{broken")
            _ = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello], key: GatewayHarness.limitedKey)
            _ = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello], key: GatewayHarness.limitedKey)
            _ = try await gateway.post(json: ["model": "openai/status-500", "messages": Self.hello])
            _ = try await gateway.post(json: ["model": "openai/stream-truncate", "stream": true, "messages": Self.hello])
            _ = try await gateway.get("/healthz", key: nil)
            let rows = try await gateway.records.waitFor(7)
            #expect(rows.map(\.statusCode).sorted() == [200, 400, 401, 404, 429, 502, 502])
            #expect(rows.first { $0.statusCode == 401 }?.keyName == nil)
            #expect(rows.first { $0.statusCode == 404 }?.model == "no-such-model")
            #expect(rows.first { $0.statusCode == 429 }?.errorMessage?.contains("Rate limit") == true)
            let cut = try #require(rows.first { $0.stream })
            #expect(cut.statusCode == 502)
            #expect(cut.errorMessage?.isEmpty == false)
            #expect(Set(rows.map(\.requestID)).count == rows.count)
            #expect(rows.allSatisfy { $0.endpoint.hasPrefix("/v1/") })
        }
    }

    @Test func aClientThatLeavesMidStreamIsRecorded() async throws {
        try await GatewayHarness.with(configure: { config in
            for index in config.providers.indices { config.providers[index].timeouts.idle = .seconds(20) }
        }) { gateway in
            #expect(try await gateway.readTheStartOfAStallingStreamThenLeave())
            let row = try #require(try await gateway.records.waitFor(1, timeout: .seconds(5)).first)
            #expect(row.statusCode == 499)
            #expect(row.stream)
        }
    }
}

/// The real daemon with the embedded SQLite log: rows written by the background writer, flushed on SIGTERM.
@Suite("Request log in the daemon", .timeLimit(.minutes(2)))
struct DaemonRequestLogTests {
    @Test func sigtermFlushesTheQueueAndStatsReadsItBack() async throws {
        let directory = NSTemporaryDirectory() + "daemon-log-\(RandomID.make(prefix: "", length: 8))"
        try await GatewayHarness.with { fakes in
            let upstream = fakes.openai.baseURL(port: fakes.fakePorts[.openai]!)
            let daemon = try await DaemonProcess { port in
                """
                server: {listen: "127.0.0.1:\(port)"}
                providers:
                  openai: {type: openai, base_url: "\(upstream)", api_key: "\(fakes.openai.key)"}
                keys:
                  - {name: daemon-test, sha256: \(KeyHash.sha256Hex(GatewayHarness.clientKey))}
                request_log: {backend: sqlite, path: "\(directory)/requests.db", flush_interval: 10m}
                """
            }
            let client = GatewayHarness(
                port: daemon.port, openai: fakes.openai, anthropic: fakes.anthropic, gemini: fakes.gemini, fakePorts: fakes.fakePorts,
                config: fakes.config, records: fakes.records)
            for index in 0..<5 {
                let reply = try await client.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": .string("row \(index)")]]])
                #expect(reply.status == 200)
            }
            _ = try await client.post(json: ["model": "no-such-model", "messages": [["role": "user", "content": "x"]]])
            #expect(await daemon.stop() == 0)

            let stats = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["stats", "--config", daemon.configPath, "--json", "--by", "key"])
            #expect(stats.status == 0, "\(stats.stderr)")
            let rows = try #require(try JSON.parse(stats.stdout).arrayValue)
            let row = try #require(rows.first { $0["group"] == "daemon-test" })
            #expect(row["requests"]?.intValue == 6, "the flush interval is 10 minutes: only the SIGTERM flush can have written them")
            #expect(row["errors"]?.intValue == 1)
            #expect((row["spend_usd"]?.doubleValue ?? 0) > 0)
        }
    }
}
