import Testing
import NIOCore
import NIOPosix
@testable import GatewayCore

@Suite("JSON")
struct JSONTests {
    @Test func parsesAndWritesEveryKind() throws {
        let text = #"{"a":[1,-2.5,true,false,null,"x\"y\\z\n\u00e9\ud83d\ude00"],"b":{"c":1e3}}"#
        let value = try JSON.parse(text)
        #expect(value["a"]?.arrayValue?.count == 6)
        #expect(value["a"]?.arrayValue?[0] == .int(1))
        #expect(value["a"]?.arrayValue?[1] == .double(-2.5))
        #expect(value["a"]?.arrayValue?[5] == .string("x\"y\\z\né😀"))
        #expect(value["b"]?["c"]?.doubleValue == 1000)
        #expect(try JSON.parse(value.serialized()) == value)
        #expect(JSON.object(["b": 1, "a": 2]).serialized(sortedKeys: true) == #"{"a":2,"b":1}"#)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"unterminated", "01", "1.", "\"\\x\"", "\"\\ud800\"", "[1] x", "\"a\u{01}\""])
    func rejectsInvalidText(text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test func checksUTF8InStringsWithAndWithoutEscapes() throws {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), n = UInt8(ascii: "n")
        #expect(try JSON.parse([quote] + Array("plain ascii".utf8) + [quote]) == .string("plain ascii"))
        #expect(try JSON.parse([quote] + Array("caf\u{e9} \u{1F600}".utf8) + [quote]) == .string("caf\u{e9} \u{1F600}"))
        for invalid: [UInt8] in [[0xFF], [0xC3], [0xE2, 0x82], [0xC0, 0xAF], [0xED, 0xA0, 0x80]] {
            #expect(throws: JSONParseError.self) { try JSON.parse([quote, UInt8(ascii: "a")] + invalid + [quote]) }
            #expect(throws: JSONParseError.self) { try JSON.parse([quote, backslash, n] + invalid + [quote]) }
        }
    }

    @Test func rejectsDeepNestingInsteadOfCrashing() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
    }

    @Test func escapesControlCharactersWhenWriting() {
        #expect(JSON.string("a\u{01}b\tc").serialized() == #""a\u0001b\tc""#)
        #expect(JSON.double(0.7).serialized() == "0.7")
        #expect(JSON.double(3).serialized() == "3")
    }
}

@Suite("Server-sent events")
struct ServerSentEventTests {
    @Test func splitsEventsAcrossArbitraryChunkBoundaries() throws {
        let stream = "event: a\r\ndata: one\r\n\r\n: comment\ndata: two\ndata: lines\n\ndata:three\n\n"
        let bytes = Array(stream.utf8)
        for split in 1..<bytes.count {
            var parser = ServerSentEventParser()
            var events = try parser.feed(bytes[..<split])
            events += try parser.feed(bytes[split...])
            events += parser.finish()
            #expect(events == [
                ServerSentEvent(event: "a", data: "one"), ServerSentEvent(data: "two\nlines"), ServerSentEvent(data: "three"),
            ])
        }
    }

    @Test func flushesAnEventLeftOpenAtTheEnd() throws {
        var parser = ServerSentEventParser()
        #expect(try parser.feed(Array("data: tail".utf8)).isEmpty)
        #expect(parser.finish() == [ServerSentEvent(data: "tail")])
    }
}

@Suite("Chat request validation")
struct ChatRequestTests {
    @Test func acceptsAFullRequest() throws {
        let request = try ChatRequest(parsing: Array(#"""
            {"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"stop":"x",
             "messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"t"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},
                         {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
                         {"role":"tool","tool_call_id":"c","content":"r"}]}
            """#.utf8))
        #expect(request.model == "m")
        #expect(request.stream)
        #expect(request.includeUsage)
        #expect(request.maxTokens == 5)
        #expect(request.stopSequences == ["x"])
        #expect(request.messages.count == 4)
    }

    @Test(arguments: [
        (#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id"),
        (#"{"model":"m","messages":[{"role":"user"}]}"#, "messages[0].content"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"video"}]}]}"#, "messages[0].content[0].type"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#, "stream_options"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#, "temperature"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, "max_tokens"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]}"#, "stop"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#, "tools[0]"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}"#, "response_format.type"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#, "stream"),
    ])
    func rejectsSchemaViolationsNamingTheParameter(body: String, param: String) {
        #expect(throws: GatewayError.self) { try ChatRequest(parsing: Array(body.utf8)) }
        do {
            _ = try ChatRequest(parsing: Array(body.utf8))
        } catch {
            #expect(error.status == 400)
            #expect(error.param == param)
        }
    }
}

@Suite("Small pieces")
struct SmallPieceTests {
    @Test(arguments: [("*", "anything", true), ("gpt-*", "gpt-4o", true), ("gpt-*", "claude", false), ("g?t", "gpt", true),
                      ("*-mini", "gpt-4o-mini", true), ("a*b*c", "aXbYc", true), ("a*b*c", "aXbY", false), ("", "", true)])
    func globs(pattern: String, text: String, matches: Bool) {
        #expect(Glob(pattern).matches(text) == matches)
    }

    @Test func costUsesThePricePerMillionAndCachedInput() {
        let usage = Usage(promptTokens: 1000, completionTokens: 500, cachedTokens: 400)
        let cost = usage.cost(at: Price(input: 2.5, output: 10, cachedInput: 1.25))
        #expect(abs(cost - (600 * 2.5 + 400 * 1.25 + 500 * 10) / 1_000_000) < 1e-12)
        // Prompt-cache writes at their own price; without one, at the input price. Counts past the prompt are capped.
        let writing = Usage(promptTokens: 1000, completionTokens: 500, cachedTokens: 400, cacheWriteTokens: 300)
        let price = Price(input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75)
        #expect(abs(writing.cost(at: price) - (300 * 3 + 400 * 0.3 + 300 * 3.75 + 500 * 15) / 1_000_000) < 1e-12)
        #expect(abs(writing.cost(at: Price(input: 3, output: 15)) - (1000 * 3 + 500 * 15) / 1_000_000) < 1e-12)
        let overstated = Usage(promptTokens: 100, completionTokens: 0, cachedTokens: 80, cacheWriteTokens: 90)
        #expect(abs(overstated.cost(at: price) - (80 * 0.3 + 20 * 3.75) / 1_000_000) < 1e-12)
        #expect(Usage(openAI: writing.json) == writing, "the cache keeps the writes with the answer")
        #expect(CostFormat.usd(0.0000015) == "0.000002")
        #expect(CostFormat.usd(1.5) == "1.500000")
        #expect(CostFormat.usd(0) == "0.000000")
    }

    @Test func generatedKeysAreLongRandomAndHashable() {
        let first = GatewayKeys.generate()
        let second = GatewayKeys.generate()
        #expect(first.hasPrefix("gw_"))
        #expect(first.count >= 35)
        #expect(first != second)
        #expect(first.dropFirst(3).allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(KeyHash.sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(GatewayKeys.yamlSnippet(name: "app", key: "abc").contains("sha256: ba7816bf"))
    }
}

@Suite("OpenAI pass-through")
struct OpenAIAdapterTests {
    @Test func setsTheUpstreamModelAndAlwaysAsksForStreamUsage() throws {
        let request = try ChatRequest(json: ["model": "alias", "stream": true, "messages": [["role": "user", "content": "hi"]], "seed": 7])
        var provider = ProviderConfig(name: "local", type: .openai, baseURL: "http://x/v1", apiKey: "sk-1")
        provider.headers = ["X-Team": "a"]
        let upstream = try OpenAIAdapter().makeRequest(request, upstreamModel: "real-model", provider: provider)
        #expect(upstream.path == "/chat/completions")
        #expect(upstream.body["model"] == "real-model")
        #expect(upstream.body["seed"] == 7)
        #expect(upstream.body["stream_options"]?["include_usage"] == true)
        #expect(upstream.header("authorization") == "Bearer sk-1")
        #expect(upstream.header("x-team") == "a")
    }

    @Test func hidesUsageFromClientsThatDidNotAskButCountsIt() throws {
        var translator = OpenAIAdapter().makeStreamTranslator(model: "m", includeUsage: false)
        let first = try translator.consume(ServerSentEvent(data: #"{"id":"1","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#))
        #expect(first.count == 1)
        #expect(try JSON.parse(first[0])["usage"] == nil)
        let usage = try translator.consume(ServerSentEvent(data: #"{"id":"1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#))
        #expect(usage.isEmpty)
        #expect(try translator.consume(ServerSentEvent(data: "[DONE]")).isEmpty)
        #expect(try translator.finish() == ["[DONE]"])
        #expect(translator.usage == Usage(promptTokens: 3, completionTokens: 2))
    }

    @Test func aStreamWithoutDoneIsTruncated() throws {
        var translator = OpenAIAdapter().makeStreamTranslator(model: "m", includeUsage: true)
        _ = try translator.consume(ServerSentEvent(data: #"{"id":"1","choices":[{"index":0,"delta":{"content":"hi"}}]}"#))
        #expect(throws: GatewayError.self) { try translator.finish() }
    }
}

@Suite("JSON writing fast path")
struct JSONWritingTests {
    @Test(arguments: [
        ("plain ascii", #""plain ascii""#), ("héllo ✓ 🙂", #""héllo ✓ 🙂""#), ("quote \" and \\", #""quote \" and \\""#),
        ("line\u{2028}sep\u{2029}", #""line\u2028sep\u2029""#), ("en\u{2000}quad", "\"en\u{2000}quad\""), ("nl\nend", #""nl\nend""#),
    ])
    func stringsAreWrittenWithExactlyTheEscapesTheyNeed(text: String, expected: String) throws {
        #expect(JSON.string(text).serialized() == expected)
        #expect(try JSON.parse(expected) == JSON.string(text))
    }

    @Test func randomIDsUseTheWholeAlphabetAtTheRequestedLength() {
        let ids = (0..<200).map { _ in RandomID.make(prefix: "req_", length: 24) }
        #expect(Set(ids).count == 200)
        #expect(ids.allSatisfy { $0.hasPrefix("req_") && $0.count == 28 })
        let characters = Set(ids.flatMap { $0.dropFirst(4) })
        #expect(characters.count > 55, "letters and digits all appear over 4,800 characters")
        #expect(characters.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
    }

    @Test func theRandomPoolHandsOutFreshBytesAcrossRefillsAndBeyondItsSize() {
        var pool = RandomPool()
        var taken: [[UInt8]] = []
        // 100 takes of 24 bytes: four refills, and takes that would straddle the end of the pool.
        for size in Array(repeating: 24, count: 100) + [500, 513, 4096] {
            var bytes = [UInt8](repeating: 0, count: size)
            bytes.withUnsafeMutableBytes { pool.take(into: $0) }
            taken.append(bytes)
        }
        #expect(Set(taken).count == taken.count, "no take repeats another")
        let words = taken.flatMap { $0 }
        #expect(Set(words).count > 250, "every byte value turns up over 7,500 random bytes")
        #expect(taken.suffix(3).allSatisfy { $0.filter { $0 == 0 }.count < $0.count / 16 }, "large takes are filled, not left zero")
    }

    @Test func requestIDsMadeLaterSortAfterEarlierOnes() async throws {
        let earlier = (0..<50).map { _ in RandomID.timeOrdered(prefix: "req_") }
        try await Task.sleep(for: .milliseconds(3))
        let later = (0..<50).map { _ in RandomID.timeOrdered(prefix: "req_") }
        #expect(Set(earlier + later).count == 100)
        #expect((earlier + later).allSatisfy { $0.hasPrefix("req_") && $0.count == 28 && $0.utf8.allSatisfy { $0 < 0x80 } })
        #expect(earlier.allSatisfy { first in later.allSatisfy { first < $0 } })
        let randomCharacters = Set((earlier + later).flatMap { $0.suffix(16) })
        #expect(randomCharacters.count > 55, "letters and digits all appear over 1,600 random characters")
        // The clock part reads back as the wall clock in milliseconds.
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        let clock = later[0].dropFirst(4).prefix(8).reduce(0) { $0 * 62 + alphabet.firstIndex(of: $1)! }
        #expect(abs(Int(UnixTime.now()) - clock / 1000) < 5)
    }
}

@Suite("Event-loop timers and per-loop clients", .timeLimit(.minutes(1)))
struct LoopPlacementTests {
    @Test func aLoopTimerSleepsAtLeastItsDuration() async throws {
        let started = ContinuousClock.now
        try await LoopTimer.sleep(for: .milliseconds(30))
        #expect(ContinuousClock.now - started >= .milliseconds(30))
    }

    @Test func cancellingALoopTimerEndsTheSleepWithCancellationError() async throws {
        let sleeper = Task { try await LoopTimer.sleep(for: .seconds(3600)) }
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
    }

    @Test func aDeadlineCancelsWorkThatOutlivesIt() async throws {
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.now + .milliseconds(20)) { try await LoopTimer.sleep(for: .seconds(3600)) }
        }
        #expect(try await withDeadline(.now + .seconds(60)) { 7 } == 7)
    }

    @Test func anAbandoningDeadlineDoesNotWaitForWorkThatIgnoresCancellation() async throws {
        // A wait that cancellation does not end, like a query on a connection that died under it.
        let never = OneShot<Int>()
        await #expect(throws: DeadlineExceeded.self) {
            try await withAbandoningDeadline(.now + .milliseconds(20)) { try await never.wait() }
        }
        #expect(try await withAbandoningDeadline(.now + .seconds(60)) { 7 } == 7)
        await #expect(throws: CancellationError.self) {
            let caller = Task { try await withAbandoningDeadline(.now + .seconds(3600)) { try await never.wait() } }
            caller.cancel()
            _ = try await caller.value
        }
        never.deliver(.success(0))
    }

    @Test(arguments: [UpstreamClients.PlainHTTPClient.connectionPool, .asyncHTTPClient])
    func eachEventLoopGetsItsOwnClientForAProvider(plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        let clients = UpstreamClients(plainHTTP: plainHTTP)
        defer { clients.shutdownSync() }
        let provider = ProviderConfig(name: "local", type: .openai, baseURL: "http://127.0.0.1:9/v1")
        var seen: [ObjectIdentifier] = []
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            let client = try await loop.submit { clients.client(for: provider) }.get()
            let again = try await loop.submit { clients.client(for: provider) }.get()
            switch (client, again) {
            case (.pool(let pool), .pool(let same)):
                #expect(plainHTTP == .connectionPool)
                #expect(pool.loop === loop)
                #expect(same === pool)
                seen.append(ObjectIdentifier(pool))
            case (.asyncHTTPClient(let client), .asyncHTTPClient(let same)):
                #expect(plainHTTP == .asyncHTTPClient)
                #expect(client.eventLoopGroup === loop)
                #expect(same === client)
                seen.append(ObjectIdentifier(client))
            default:
                Issue.record("the two calls gave different kinds of client")
            }
        }
        #expect(Set(seen).count == seen.count)
    }

    @Test func anHTTPSProviderGoesThroughAsyncHTTPClient() {
        let clients = UpstreamClients()
        defer { clients.shutdownSync() }
        let provider = ProviderConfig(name: "remote", type: .openai, baseURL: "https://api.openai.com/v1")
        guard case .asyncHTTPClient = clients.client(for: provider) else {
            Issue.record("an https:// provider must not use the plain-HTTP pool")
            return
        }
        #expect(clients.connections(of: "remote") == nil, "AsyncHTTPClient does not count its connections")
    }

    @Test func thePoolsConnectionsAreCountedOverEveryLoop() async throws {
        let server = try await ScriptedHTTPServer { _, _ in .parts([ScriptedHTTPServer.ok("{}")]) }
        let clients = UpstreamClients()
        defer { clients.shutdownSync() }
        let provider = ProviderConfig(name: "local", type: .openai, baseURL: "http://127.0.0.1:\(server.port)/v1")
        var config = GatewayConfig()
        config.providers = [provider]
        clients.prepare(for: config)
        #expect(clients.connections(of: "local")! == (0, 0))
        #expect(clients.connections(of: "unknown") == nil)
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            guard case .pool(let pool) = try await loop.submit({ clients.client(for: provider) }).get() else {
                Issue.record("a plain-HTTP provider gets the pool")
                return
            }
            _ = try await pool.post(path: "/chat/completions", headers: [], body: ByteBuffer(string: "{}"), headDeadline: .now() + .seconds(5))
                .body.collect(upTo: 1024)
        }
        let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator()).count
        #expect(clients.connections(of: "local")! == (loops, loops), "one kept-alive connection per loop, all idle")
        await server.close()
    }

    @Test(arguments: [
        ("http://127.0.0.1:8000/v1", "127.0.0.1", 8000, "127.0.0.1:8000", "/v1"),
        ("http://localhost/", "localhost", 80, "localhost", ""),
        ("HTTP://[::1]:11434/api/", "::1", 11434, "[::1]:11434", "/api"),
        ("http://[::1]", "::1", 80, "[::1]", ""),
        ("http://vllm.internal:8000/a/b//", "vllm.internal", 8000, "vllm.internal:8000", "/a/b"),
    ])
    func aPlainHTTPBaseURLIsReadOnce(url: String, host: String, port: Int, authority: String, prefix: String) throws {
        let target = try #require(UpstreamTarget(baseURL: url))
        #expect(target.host == host)
        #expect(target.port == port)
        #expect(target.authority == authority)
        #expect(target.pathPrefix == prefix)
    }

    @Test(arguments: ["https://api.openai.com/v1", "http://user:secret@host/v1", "http://host/v1?x=1", "http://host:notaport/v1", "http:///v1"])
    func baseURLsThePoolDoesNotTakeAreLeftToAsyncHTTPClient(url: String) {
        #expect(UpstreamTarget(baseURL: url) == nil)
    }
}
