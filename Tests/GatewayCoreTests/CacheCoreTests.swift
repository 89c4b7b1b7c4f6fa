import NIOConcurrencyHelpers
import Testing

@testable import GatewayCore

/// A clock that moves only when told.
final class ManualClock: Sendable {
    private let current = NIOLockedValueBox(ContinuousClock.now)

    var now: ContinuousClock.Instant { current.withLockedValue { $0 } }

    func advance(_ duration: Duration) {
        current.withLockedValue { $0 += duration }
    }

    var reader: @Sendable () -> ContinuousClock.Instant {
        { self.now }
    }
}

@Suite struct CacheCoreTests {
    // MARK: - Cache key

    static func request(_ text: String) throws -> ChatRequest {
        try ChatRequest(parsing: Array(text.utf8))
    }

    static let base = #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}"#

    static func key(_ text: String, namespace: String = "ns") throws -> String {
        CacheKey.make(for: try request(text), namespace: namespace)
    }

    @Test func keyIsLowerCaseHexSHA256() throws {
        let key = try Self.key(Self.base)
        #expect(key.count == 64)
        #expect(key.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test func keyIgnoresMemberOrderAndWhitespace() throws {
        let a = try Self.key(
            #"{"model":"gpt-4o","temperature":0.5,"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"b":1,"a":2}}}}"#)
        let b = try Self.key(
            """
            {
              "response_format": {"json_schema": {"schema": {"a": 2, "b": 1}, "name": "x"}, "type": "json_schema"},
              "messages": [ { "content": "Hi", "role": "user" } ],
              "temperature": 0.5,
              "model": "gpt-4o"
            }
            """)
        #expect(a == b)
    }

    @Test func keyComparesNumbersByValue() throws {
        let integer = try Self.key(#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1,"seed":7,"max_tokens":100}"#)
        let decimal = try Self.key(
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1.0,"seed":7.0,"max_tokens":1e2}"#)
        #expect(integer == decimal)
        let other = try Self.key(#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1.5,"seed":7,"max_tokens":100}"#)
        #expect(other != integer)
        // Large integral doubles too, where the writer would switch to exponent notation.
        let big = try Self.key(#"{"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":1e15}}"#)
        let bigInteger = try Self.key(#"{"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":1000000000000000}}"#)
        #expect(big == bigInteger)
    }

    /// Keys are shared through Redis by gateways of different versions: the same request must keep its key.
    @Test func keyIsStableAcrossVersions() throws {
        let key = try Self.key(
            #"{"model":"gpt-4o","stream":true,"temperature":0.5,"seed":7.0,"max_tokens":1e2,"stop":null,"messages":[{"role":"user","content":"Hi \"there\"\n","name":null}],"logit_bias":{"2":-1,"10":1e16},"response_format":{"type":"json_schema","json_schema":{"schema":{"b":[1.5,2.0,true,null],"a":{}}}}}"#,
            namespace: "team-a")
        #expect(key == "dae663925f1bd5ef18c58800b06ef2630eba279d45f49fe8fd24676bee129f6c")
    }

    @Test func nullFieldEqualsAbsentField() throws {
        let absent = try Self.key(Self.base)
        let null = try Self.key(#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "temperature": null}"#)
        #expect(absent == null)
    }

    @Test(arguments: [
        #""stream": true"#, #""stream": true, "stream_options": {"include_usage": true}"#, #""user": "alice""#,
        #""metadata": {"team": "a"}"#, #""store": false"#, #""service_tier": "flex""#, #""safety_identifier": "u1""#,
        #""prompt_cache_key": "k""#,
    ])
    func excludedFieldsLeaveTheKeyAlone(field: String) throws {
        let plain = try Self.key(Self.base)
        let with = try Self.key(#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], \#(field)}"#)
        #expect(plain == with, "\(field) changed the key")
    }

    @Test(arguments: [
        #""temperature": 0.7"#, #""top_p": 0.9"#, #""max_tokens": 50"#, #""max_completion_tokens": 50"#,
        #""stop": ["END"]"#, #""tools": [{"type": "function", "function": {"name": "f"}}]"#, #""tool_choice": "required""#,
        #""response_format": {"type": "json_object"}"#, #""seed": 1"#, #""n": 2"#, #""presence_penalty": 0.5"#,
        #""frequency_penalty": 0.5"#, #""logit_bias": {"50256": -100}"#, #""logprobs": true"#,
        #""logprobs": true, "top_logprobs": 3"#, #""parallel_tool_calls": false"#, #""reasoning_effort": "low""#,
        #""top_k": 40"#,
    ])
    func includedFieldsChangeTheKey(field: String) throws {
        let plain = try Self.key(Self.base)
        let with = try Self.key(#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], \#(field)}"#)
        #expect(plain != with, "\(field) did not change the key")
    }

    @Test func modelMessagesAndNamespaceChangeTheKey() throws {
        let plain = try Self.key(Self.base)
        #expect(try Self.key(#"{"model": "gpt-4.1", "messages": [{"role": "user", "content": "Hi"}]}"#) != plain)
        #expect(try Self.key(#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi!"}]}"#) != plain)
        #expect(try Self.key(#"{"model": "gpt-4o", "messages": [{"role": "system", "content": "Hi"}]}"#) != plain)
        #expect(try Self.key(Self.base, namespace: "other") != plain)
        #expect(try Self.key(Self.base, namespace: "ns") == plain)
    }

    @Test func cacheability() throws {
        #expect(CacheKey.isCacheable(try Self.request(Self.base)))
        #expect(
            CacheKey.isCacheable(
                try Self.request(#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 1.2, "n": 3}"#)))
        #expect(
            !CacheKey.isCacheable(try Self.request(#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "store": true}"#)))
        #expect(
            !CacheKey.isCacheable(
                try Self.request(#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "modalities": ["text", "audio"]}"#)))
    }

    // MARK: - Memory cache

    static func answer(_ text: String, padding: Int = 0) -> CachedAnswer {
        let completion = ChatCompletion.make(
            model: "m", text: text + String(repeating: "x", count: padding), toolCalls: [], finishReason: "stop", usage: nil,
            id: "chatcmpl-1", created: 1)
        return CachedAnswer(completion: completion.body, provider: "openai", upstreamModel: "m", costUSD: 0.001)
    }

    static func size(_ key: String, _ answer: CachedAnswer) -> Int {
        answer.approximateBytes + key.utf8.count
    }

    @Test(arguments: [0, 100, 100_000])
    func anAnswersCountedSizeCoversWhatItEncodesTo(padding: Int) {
        let answer = Self.answer("a reply with \u{e9}", padding: padding)
        let encoded = answer.encoded().count
        // The entry keeps the completion's text and a little more: about what it takes stored.
        #expect(answer.completionText.count > padding)
        #expect(answer.approximateBytes > answer.completionText.count)
        #expect(abs(answer.approximateBytes - encoded) <= 256)
    }

    @Test func theStoredFormReadsBackWithoutTheCompletionBeingParsedAgain() throws {
        let completion = ChatCompletion.make(
            model: "m", text: "line one\nline \"two\"", toolCalls: [], finishReason: "stop",
            usage: Usage(promptTokens: 12, completionTokens: 3, cachedTokens: 2), id: "chatcmpl-9", created: 1)
        let answer = CachedAnswer(completion: completion.body, provider: "anthropic", upstreamModel: "claude", costUSD: 0.0025)
        let stored = answer.encoded()
        let read = try #require(CachedAnswer(encoded: stored))
        #expect(read == answer)
        #expect(read.completionText == answer.completionText)
        #expect(read.usage == Usage(promptTokens: 12, completionTokens: 3, cachedTokens: 2))
        #expect(read.costUSD == 0.0025 && read.provider == "anthropic" && read.upstreamModel == "claude")
        // Entries written in the earlier form (one JSON object) by an older gateway sharing the Redis still read.
        let earlier = JSON.object([
            "completion": completion.body, "provider": "anthropic", "model": "claude", "cost_usd": .double(0.0025),
        ]).bytes()
        #expect(CachedAnswer(encoded: earlier) == answer)
        // Anything else is not an answer: a miss, not a crash.
        for junk in ["", "llm-gateway-answer/2\n", "llm-gateway-answer/2\n{\"provider\":\"a\",\"model\":\"b\"}\n{\"cut", "{}", "nonsense"] {
            #expect(CachedAnswer(encoded: Array(junk.utf8)) == nil, "\(junk)")
        }
    }

    @Test func aProvidersTextIsKeptAsItCameUnlessItHasTheGatewaysMembers() throws {
        let text = #"{ "id": "chatcmpl-7", "choices": [{"message": {"content": "caf\u00e9"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1} }"#
        let completion = try JSON.parse(text)
        let kept = CachedAnswer(completion: completion, text: Array(text.utf8), provider: "openai", upstreamModel: "m", costUSD: nil)
        #expect(kept.completionText == Array(text.utf8), "spacing, member order and escapes as the provider wrote them")
        #expect(kept.usage == Usage(promptTokens: 3, completionTokens: 1))
        let answered = String(buffer: OpenAIChatDialect.answerBody(kept.completionText, cost: 0.5, latencyMs: 7))
        var expected = completion
        expected["cost_usd"] = .double(0.5)
        expected["latency_ms"] = .int(7)
        #expect(try JSON.parse(Array(answered.utf8)) == expected)
        // A body that already carries a member the gateway adds is written again without it.
        var withCost = completion
        withCost["cost_usd"] = .double(9)
        let rewritten = CachedAnswer(completion: withCost, text: Array(withCost.serialized().utf8), provider: "openai", upstreamModel: "m", costUSD: nil)
        #expect(try JSON.parse(rewritten.completionText) == completion)
        #expect(!String(decoding: rewritten.completionText, as: UTF8.self).contains("cost_usd"))
    }

    @Test func anAnswerIsGivenWithItsCostAndLatencyAddedOnce() throws {
        // An upstream that sends its own cost_usd does not get it repeated or kept.
        var completion = Self.answer("hello").completion
        completion["cost_usd"] = .double(9)
        let answer = CachedAnswer(completion: completion, provider: "openai", upstreamModel: "m", costUSD: 0.001)
        let text = OpenAIChatDialect.answerBody(answer.completionText, cost: 0.25, latencyMs: 12)
        let written = String(buffer: text)
        #expect(written.components(separatedBy: "\"cost_usd\"").count == 2)
        var expected = Self.answer("hello").completion
        expected["cost_usd"] = .double(0.25)
        expected["latency_ms"] = .int(12)
        #expect(try JSON.parse(Array(written.utf8)) == expected)
        let unpriced = String(buffer: OpenAIChatDialect.answerBody(Array("{}".utf8), cost: nil, latencyMs: 3))
        #expect(unpriced == #"{"cost_usd":null,"latency_ms":3}"#)
    }

    @Test func storesAndFindsAnswers() async {
        let cache = MemoryCache(maxEntries: 10, maxBytes: 1 << 20)
        await cache.set("a", Self.answer("one"), ttl: .seconds(60))
        #expect(await cache.get("a") == Self.answer("one"))
        #expect(await cache.get("b") == nil)
        await cache.set("a", Self.answer("two"), ttl: .seconds(60))
        #expect(await cache.get("a") == Self.answer("two"))
        let stats = cache.stats
        #expect(stats.entries == 1)
        #expect(stats.bytes == Self.size("a", Self.answer("two")))
        #expect(stats.hits == 2)
        #expect(stats.misses == 1)
        #expect(stats.evictions == 0)
    }

    @Test func evictsLeastRecentlyUsedByCount() async {
        let cache = MemoryCache(maxEntries: 3, maxBytes: 1 << 20)
        for key in ["a", "b", "c"] { await cache.set(key, Self.answer(key), ttl: .seconds(60)) }
        #expect(await cache.get("a") != nil)  // a is now the most recently used; b the least
        await cache.set("d", Self.answer("d"), ttl: .seconds(60))
        #expect(await cache.get("b") == nil)
        #expect(await cache.get("a") != nil)
        #expect(await cache.get("c") != nil)
        #expect(await cache.get("d") != nil)
        #expect(cache.stats.entries == 3)
        #expect(cache.stats.evictions == 1)
        // Next out is the least recently used of a, c, d: a (read before c and d).
        await cache.set("e", Self.answer("e"), ttl: .seconds(60))
        #expect(await cache.get("a") == nil)
        #expect(cache.stats.evictions == 2)
    }

    @Test func aReloadedBoundEvictsUntilTheCacheFits() async {
        let cache = MemoryCache(maxEntries: 10, maxBytes: 1 << 20)
        for key in ["a", "b", "c"] { await cache.set(key, Self.answer(key), ttl: .seconds(60)) }
        #expect(await cache.get("a") != nil)  // the least recently used is now b, then c
        cache.resize(maxEntries: 1, maxBytes: 1 << 20)
        #expect(cache.maxEntries == 1)
        #expect(cache.stats.entries == 1)
        #expect(await cache.get("a") != nil)
        #expect(await cache.get("b") == nil)
        #expect(await cache.get("c") == nil)
        await cache.set("d", Self.answer("d"), ttl: .seconds(60))
        #expect(cache.stats.entries == 1, "the new bound holds for later writes")
    }

    @Test func evictsByBytes() async {
        let one = Self.size("a", Self.answer("a", padding: 1000))
        let cache = MemoryCache(maxEntries: 100, maxBytes: one * 2 + one / 2)
        await cache.set("a", Self.answer("a", padding: 1000), ttl: .seconds(60))
        await cache.set("b", Self.answer("b", padding: 1000), ttl: .seconds(60))
        #expect(cache.stats.entries == 2)
        await cache.set("c", Self.answer("c", padding: 1000), ttl: .seconds(60))
        #expect(cache.stats.entries == 2)
        #expect(cache.stats.evictions == 1)
        #expect(cache.stats.bytes <= cache.maxBytes)
        #expect(await cache.get("a") == nil)
        #expect(await cache.get("b") != nil)
        #expect(await cache.get("c") != nil)
        // One big entry (about two small ones) pushes out both remaining small ones.
        await cache.set("big", Self.answer("big", padding: 1000 + one), ttl: .seconds(60))
        #expect(cache.stats.entries == 1)
        #expect(await cache.get("big") != nil)
        #expect(cache.stats.evictions == 3)
    }

    @Test func doesNotStoreAnOversizeEntry() async {
        let cache = MemoryCache(maxEntries: 10, maxBytes: Self.size("small", Self.answer("s")) + 100)
        await cache.set("small", Self.answer("s"), ttl: .seconds(60))
        #expect(cache.stats.entries == 1)
        await cache.set("huge", Self.answer("h", padding: 1000), ttl: .seconds(60))
        #expect(await cache.get("huge") == nil)
        #expect(await cache.get("small") != nil)
        #expect(cache.stats.entries == 1)
        #expect(cache.stats.evictions == 0)
    }

    @Test func expiresEntriesAfterTheirTTL() async {
        let clock = ManualClock()
        let cache = MemoryCache(maxEntries: 10, maxBytes: 1 << 20, now: clock.reader)
        await cache.set("short", Self.answer("s"), ttl: .seconds(10))
        await cache.set("long", Self.answer("l"), ttl: .seconds(100))
        clock.advance(.seconds(9))
        #expect(await cache.get("short") != nil)
        clock.advance(.seconds(1))
        #expect(await cache.get("short") == nil)
        #expect(await cache.get("long") != nil)
        #expect(cache.stats.entries == 1)
        #expect(cache.stats.expirations == 1)
        #expect(cache.stats.misses == 1)
        clock.advance(.seconds(90))
        #expect(await cache.get("long") == nil)
        #expect(cache.stats.entries == 0)
        #expect(cache.stats.bytes == 0)
        await cache.set("zero", Self.answer("z"), ttl: .zero)
        #expect(cache.stats.entries == 0)
    }

    @Test func flushRemovesEverything() async {
        let cache = MemoryCache(maxEntries: 10, maxBytes: 1 << 20)
        for key in ["a", "b", "c"] { await cache.set(key, Self.answer(key), ttl: .seconds(60)) }
        #expect(await cache.flush() == 3)
        #expect(cache.stats.entries == 0)
        #expect(cache.stats.bytes == 0)
        #expect(await cache.get("a") == nil)
        // Slots are reused after a flush and the list still works.
        for key in ["d", "e", "f", "g"] { await cache.set(key, Self.answer(key), ttl: .seconds(60)) }
        #expect(cache.stats.entries == 4)
        #expect(await cache.get("d") != nil)
    }

    @Test func manyOperationsKeepTheBookkeepingConsistent() async {
        let cache = MemoryCache(maxEntries: 50, maxBytes: 1 << 20)
        var model: [String] = []  // most recent last
        for step in 0..<2000 {
            let key = "k\((step * 7919) % 97)"
            if step % 3 == 0 {
                let found = await cache.get(key) != nil
                #expect(found == model.contains(key))
                if found { model.removeAll { $0 == key }; model.append(key) }
            } else {
                await cache.set(key, Self.answer(key), ttl: .seconds(60))
                model.removeAll { $0 == key }
                model.append(key)
                if model.count > 50 { model.removeFirst() }
            }
        }
        #expect(cache.stats.entries == model.count)
        #expect(cache.stats.bytes == model.reduce(0) { $0 + Self.size($1, Self.answer($1)) })
    }

    // MARK: - Single flight

    struct Failure: Error, Equatable {}

    @Test func concurrentCallersShareOneExecution() async throws {
        let flights = SingleFlight<Int>()
        let executions = NIOLockedValueBox(0)
        let gate = AsyncGate()
        let results = try await withThrowingTaskGroup(of: (value: Int, shared: Bool).self) { group in
            for _ in 0..<20 {
                group.addTask {
                    try await flights.run("k") {
                        executions.withLockedValue { $0 += 1 }
                        await gate.wait()
                        return 42
                    }
                }
            }
            // Every caller has joined before the operation may finish.
            while flights.waiters("k") < 20 { await Task.yield() }
            gate.open()
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(executions.withLockedValue { $0 } == 1)
        #expect(results.count == 20)
        #expect(results.allSatisfy { $0.value == 42 })
        #expect(results.filter { !$0.shared }.count == 1)
        #expect(flights.inFlight == 0)
        // The key is free again: the next call runs the operation anew.
        let again = try await flights.run("k") { 7 }
        #expect(again.value == 7)
        #expect(!again.shared)
    }

    @Test func errorsAreSharedAndTheKeyIsFreedAfterwards() async throws {
        let flights = SingleFlight<Int>()
        let gate = AsyncGate()
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<5 {
                group.addTask {
                    do {
                        _ = try await flights.run("k") {
                            await gate.wait()
                            throw Failure()
                        }
                        return false
                    } catch {
                        return error is Failure
                    }
                }
            }
            while flights.waiters("k") < 5 { await Task.yield() }
            gate.open()
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes == Array(repeating: true, count: 5))
        #expect(try await flights.run("k") { 1 }.value == 1)
    }

    @Test func differentKeysRunSeparately() async throws {
        let flights = SingleFlight<String>()
        async let a = flights.run("a") { "A" }
        async let b = flights.run("b") { "B" }
        let (first, second) = try await (a, b)
        #expect(first.value == "A")
        #expect(second.value == "B")
    }

    @Test func cancelledWaiterLeavesTheOthersTheirResult() async throws {
        let flights = SingleFlight<Int>()
        let gate = AsyncGate()
        let executions = NIOLockedValueBox(0)
        let operation: @Sendable () async throws -> Int = {
            executions.withLockedValue { $0 += 1 }
            await gate.wait()
            return 5
        }
        // The leader is the one cancelled: the flight's own task keeps running for the other waiter.
        let leader = Task { try await flights.run("k", operation) }
        while flights.waiters("k") < 1 { await Task.yield() }
        let follower = Task { try await flights.run("k", operation) }
        while flights.waiters("k") < 2 { await Task.yield() }
        leader.cancel()
        await #expect(throws: CancellationError.self) { try await leader.value }
        #expect(flights.waiters("k") == 1)
        gate.open()
        let result = try await follower.value
        #expect(result.value == 5)
        #expect(result.shared)
        #expect(executions.withLockedValue { $0 } == 1)
    }

    @Test func lastWaiterLeavingCancelsTheOperation() async throws {
        let flights = SingleFlight<Int>()
        let sawCancellation = AsyncGate()
        let release = AsyncGate()
        let only = Task {
            try await flights.run("k") {
                await withTaskCancellationHandler {
                    await release.wait()
                } onCancel: {
                    release.open()
                }
                sawCancellation.open()
                return 1
            }
        }
        while flights.waiters("k") < 1 { await Task.yield() }
        only.cancel()
        await #expect(throws: CancellationError.self) { try await only.value }
        await sawCancellation.wait()
        #expect(flights.inFlight == 0)
        #expect(try await flights.run("k") { 2 }.value == 2)
    }

    @Test func aWaiterMadeToLeaveFromOutsideThrowsWhileItsTaskGoesOn() async throws {
        let flights = SingleFlight<Int>()
        let gate = AsyncGate()
        let operationCancelled = AsyncGate()
        let leaveLeader = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)
        let leaveFollower = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)
        let operation: @Sendable () async throws -> Int = {
            await withTaskCancellationHandler { await gate.wait() } onCancel: { operationCancelled.open() }
            return 5
        }
        // The leader is made to leave: it gets CancellationError, its own task is not cancelled, the run goes on.
        let leader = Task { () -> Bool in
            do {
                _ = try await flights.run("k", leavingWhen: { leave in leaveLeader.withLockedValue { $0 = leave } }, operation)
                return false
            } catch is CancellationError {
                return !Task.isCancelled
            }
        }
        while flights.waiters("k") < 1 { await Task.yield() }
        let follower = Task { try await flights.run("k", leavingWhen: { leave in leaveFollower.withLockedValue { $0 = leave } }, operation) }
        while flights.waiters("k") < 2 { await Task.yield() }
        let makeLeaderLeave = try #require(leaveLeader.withLockedValue { $0 })
        makeLeaderLeave()
        #expect(try await leader.value, "the leaver throws CancellationError and its task is not cancelled")
        #expect(flights.waiters("k") == 1)
        #expect(flights.inFlight == 1)
        // The last waiter leaving cancels the operation and frees the key.
        let makeFollowerLeave = try #require(leaveFollower.withLockedValue { $0 })
        makeFollowerLeave()
        await #expect(throws: CancellationError.self) { try await follower.value }
        await operationCancelled.wait()
        #expect(flights.inFlight == 0)
        gate.open()
    }

    @Test func leavingAtOnceWhenAskedToWatchStartsNothingThatOutlivesIt() async throws {
        let flights = SingleFlight<Int>()
        let cancelled = AsyncGate()
        // Like a connection already closed when the watch starts: the leave comes while registering.
        await #expect(throws: CancellationError.self) {
            try await flights.run("k", leavingWhen: { leave in leave() }) {
                let release = AsyncGate()
                await withTaskCancellationHandler { await release.wait() } onCancel: {
                    release.open()
                    cancelled.open()
                }
                return 1
            }
        }
        await cancelled.wait()
        #expect(flights.inFlight == 0)
    }

    @Test func alreadyCancelledCallerStartsNothing() async throws {
        let flights = SingleFlight<Int>()
        let executions = NIOLockedValueBox(0)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await flights.run("k") {
                executions.withLockedValue { $0 += 1 }
                return 1
            }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(executions.withLockedValue { $0 } == 0)
        #expect(flights.inFlight == 0)
    }

    // MARK: - Stream assembler

    static func chunk(_ choices: [JSON], usage: JSON? = nil) -> String {
        var object: [String: JSON] = [
            "id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-4o",
            "choices": .array(choices),
        ]
        if let usage { object["usage"] = usage }
        return JSON.object(object).serialized()
    }

    static func choice(_ delta: JSON, index: Int = 0, finish: String? = nil) -> JSON {
        ["index": .int(Int64(index)), "delta": delta, "logprobs": .null, "finish_reason": finish.map(JSON.string) ?? .null]
    }

    @Test func assemblesATextStream() throws {
        var builder = ChunkBuilder(model: "gpt-4o", includeUsage: true, id: "chatcmpl-xyz", created: 123)
        var assembler = StreamAssembler()
        for payload in [builder.start(), builder.text("Hel"), builder.text("lo, "), builder.text("world"), builder.finish(reason: "stop")]
            + builder.closing(usage: Usage(promptTokens: 9, completionTokens: 3))
        {
            assembler.add(payload)
        }
        let completion = try #require(assembler.completion())
        #expect(completion["id"] == "chatcmpl-xyz")
        #expect(completion["object"] == "chat.completion")
        #expect(completion["created"] == 123)
        #expect(completion["model"] == "gpt-4o")
        let choice = try #require(completion["choices"]?.arrayValue?.first)
        #expect(choice["index"] == 0)
        #expect(choice["finish_reason"] == "stop")
        #expect(choice["message"]?["role"] == "assistant")
        #expect(choice["message"]?["content"] == "Hello, world")
        #expect(choice["message"]?["refusal"] == .null)
        #expect(choice["message"]?["tool_calls"] == nil)
        #expect(Usage(openAI: completion["usage"]) == Usage(promptTokens: 9, completionTokens: 3))
    }

    @Test func assemblesToolCallsWithFragmentedArguments() throws {
        var assembler = StreamAssembler()
        let payloads = [
            Self.chunk([Self.choice(["role": "assistant", "content": .null])]),
            Self.chunk([
                Self.choice([
                    "tool_calls": [
                        ["index": 0, "id": "call_1", "type": "function", "function": ["name": "get_weather", "arguments": ""]]
                    ]
                ])
            ]),
            Self.chunk([Self.choice(["tool_calls": [["index": 0, "function": ["arguments": "{\"ci"]]]])]),
            Self.chunk([Self.choice(["tool_calls": [["index": 0, "function": ["arguments": "ty\": \"Par"]]]])]),
            Self.chunk([
                Self.choice([
                    "tool_calls": [
                        ["index": 1, "id": "call_2", "type": "function", "function": ["name": "get_time", "arguments": "{}"]]
                    ]
                ])
            ]),
            // A provider repeating id and name on a later fragment must not duplicate them.
            Self.chunk([Self.choice(["tool_calls": [["index": 0, "id": "call_1", "function": ["name": "get_weather", "arguments": "is\"}"]]]])]),
            Self.chunk([Self.choice([:], finish: "tool_calls")]),
            Self.chunk([], usage: ["prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30]),
            "[DONE]",
        ]
        for payload in payloads { assembler.add(payload) }
        let completion = try #require(assembler.completion())
        let message = try #require(completion["choices"]?.arrayValue?.first?["message"])
        #expect(message["content"] == .null)
        let calls = try #require(message["tool_calls"]?.arrayValue)
        #expect(calls.count == 2)
        #expect(calls[0]["id"] == "call_1")
        #expect(calls[0]["type"] == "function")
        #expect(calls[0]["function"]?["name"] == "get_weather")
        #expect(calls[0]["function"]?["arguments"] == #"{"city": "Paris"}"#)
        #expect(calls[1]["id"] == "call_2")
        #expect(calls[1]["function"]?["name"] == "get_time")
        #expect(calls[1]["function"]?["arguments"] == "{}")
        #expect(completion["choices"]?.arrayValue?.first?["finish_reason"] == "tool_calls")
        #expect(completion["usage"]?["total_tokens"] == 30)
    }

    @Test func assemblesSeveralChoicesAndRefusals() throws {
        var assembler = StreamAssembler()
        for payload in [
            Self.chunk([Self.choice(["role": "assistant", "content": ""], index: 0), Self.choice(["role": "assistant", "content": ""], index: 1)]),
            Self.chunk([Self.choice(["content": "A"], index: 0), Self.choice(["refusal": "I can't"], index: 1)]),
            Self.chunk([Self.choice(["content": "B"], index: 0)]),
            Self.chunk([Self.choice(["refusal": " help."], index: 1, finish: "stop")]),
            Self.chunk([Self.choice([:], index: 0, finish: "length")]),
            "[DONE]",
        ] {
            assembler.add(payload)
        }
        let choices = try #require(assembler.completion()?["choices"]?.arrayValue)
        #expect(choices.count == 2)
        #expect(choices[0]["message"]?["content"] == "AB")
        #expect(choices[0]["finish_reason"] == "length")
        #expect(choices[1]["index"] == 1)
        #expect(choices[1]["message"]?["refusal"] == "I can't help.")
        #expect(choices[1]["message"]?["content"] == "")
        #expect(assembler.completion()?["usage"] == nil)
    }

    @Test func incompleteStreamsGiveNothing() {
        var noDone = StreamAssembler()
        noDone.add(Self.chunk([Self.choice(["role": "assistant", "content": "Hi"])]))
        noDone.add(Self.chunk([Self.choice([:], finish: "stop")]))
        #expect(noDone.completion() == nil)

        var noFinish = StreamAssembler()
        noFinish.add(Self.chunk([Self.choice(["role": "assistant", "content": "Hi"])]))
        noFinish.add("[DONE]")
        #expect(noFinish.completion() == nil)

        var missingChoice = StreamAssembler()
        missingChoice.add(Self.chunk([Self.choice(["content": "Hi"], index: 1, finish: "stop")]))
        missingChoice.add("[DONE]")
        #expect(missingChoice.completion() == nil)

        var empty = StreamAssembler()
        empty.add("[DONE]")
        #expect(empty.completion() == nil)
    }

    @Test func errorOrGarbagePayloadGivesNothing() {
        var failed = StreamAssembler()
        failed.add(Self.chunk([Self.choice(["role": "assistant", "content": "Hi"])]))
        failed.add(#"{"error": {"message": "upstream broke", "type": "server_error"}}"#)
        failed.add(Self.chunk([Self.choice([:], finish: "stop")]))
        failed.add("[DONE]")
        #expect(failed.completion() == nil)

        var garbage = StreamAssembler()
        garbage.add(Self.chunk([Self.choice(["role": "assistant", "content": "Hi"], finish: "stop")]))
        garbage.add("{not json")
        garbage.add("[DONE]")
        #expect(garbage.completion() == nil)
    }

    // MARK: - Replay

    static func assemble(_ payloads: [String]) -> JSON? {
        var assembler = StreamAssembler()
        for payload in payloads { assembler.add(payload) }
        return assembler.completion()
    }

    @Test func replayOfATextAnswerRoundTrips() throws {
        let long = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 10) + "Ünïcødé 👩‍👩‍👧 done."
        let completion = ChatCompletion.make(
            model: "claude-haiku-4-5", text: long, toolCalls: [], finishReason: "stop",
            usage: Usage(promptTokens: 12, completionTokens: 99, cachedTokens: 4), id: "chatcmpl-r1", created: 42
        ).body
        let payloads = StreamReplay.payloads(for: completion, includeUsage: true)
        #expect(payloads.last == "[DONE]")
        #expect(payloads.count > 4)  // role, several pieces, finish, usage, done
        let chunks = try payloads.dropLast().map { try JSON.parse($0) }
        #expect(chunks.allSatisfy { $0["id"] == "chatcmpl-r1" && $0["object"] == "chat.completion.chunk" && $0["created"] == 42 })
        #expect(chunks[0]["choices"]?.arrayValue?.first?["delta"]?["role"] == "assistant")
        #expect(chunks.last?["choices"] == [])
        #expect(chunks.last?["usage"] == completion["usage"])
        let contentPieces = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.filter { !$0.isEmpty }
        #expect(contentPieces.count > 1 && contentPieces.count <= StreamReplay.maximumPieces)
        #expect(Self.assemble(payloads) == completion)
    }

    @Test func replayWithoutUsageChunk() throws {
        let completion = ChatCompletion.make(
            model: "m", text: "short", toolCalls: [], finishReason: "length", usage: Usage(promptTokens: 1), id: "x", created: 1
        ).body
        let payloads = StreamReplay.payloads(for: completion, includeUsage: false)
        let chunks = try payloads.dropLast().map { try JSON.parse($0) }
        #expect(chunks.allSatisfy { $0["usage"] == nil && $0["choices"]?.arrayValue?.count == 1 })
        let assembled = try #require(Self.assemble(payloads))
        #expect(assembled["choices"] == completion["choices"])
        #expect(assembled["usage"] == nil)
    }

    @Test func replayOfToolCallsRoundTrips() throws {
        let arguments = #"{"location": "Paris, France", "unit": "celsius", "details": ["humidity", "wind", "pressure"]}"#
        let completion = ChatCompletion.make(
            model: "gpt-4o", text: nil,
            toolCalls: [
                ["id": "call_a", "type": "function", "function": ["name": "get_weather", "arguments": .string(arguments)]],
                ["id": "call_b", "type": "function", "function": ["name": "noop", "arguments": "{}"]],
            ], finishReason: "tool_calls", usage: Usage(promptTokens: 5, completionTokens: 6), id: "chatcmpl-t", created: 9
        ).body
        let payloads = StreamReplay.payloads(for: completion, includeUsage: true)
        let chunks = try payloads.dropLast().map { try JSON.parse($0) }
        let opening = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["tool_calls"]?.arrayValue?.first }.filter { $0["id"] != nil }
        #expect(opening.map { $0["id"] } == ["call_a", "call_b"])
        #expect(opening.allSatisfy { $0["function"]?["arguments"] == "" })
        let fragments = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["tool_calls"]?.arrayValue?.first }.filter { $0["id"] == nil }
        #expect(fragments.count > 2)
        #expect(Self.assemble(payloads) == completion)
    }

    @Test func replayOfSeveralChoicesRoundTrips() throws {
        let completion: JSON = [
            "id": "chatcmpl-n", "object": "chat.completion", "created": 5, "model": "gpt-4o",
            "system_fingerprint": "fp_1",
            "choices": [
                [
                    "index": 0, "message": ["role": "assistant", "content": "First answer", "refusal": .null],
                    "logprobs": ["content": [["token": "First", "logprob": -0.1, "bytes": [70], "top_logprobs": []]], "refusal": .null],
                    "finish_reason": "stop",
                ],
                [
                    "index": 1, "message": ["role": "assistant", "content": "Second answer, a little longer than the first", "refusal": .null],
                    "logprobs": .null, "finish_reason": "length",
                ],
            ],
            "usage": ["prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11],
        ]
        let payloads = StreamReplay.payloads(for: completion, includeUsage: true)
        let indices = Set(try payloads.dropLast().compactMap { try JSON.parse($0)["choices"]?.arrayValue?.first?["index"]?.intValue })
        #expect(indices == [0, 1])
        #expect(Self.assemble(payloads) == completion)
    }
}

/// Blocks waiters until opened; opening twice is harmless.
final class AsyncGate: Sendable {
    private enum State {
        case closed([CheckedContinuation<Void, Never>])
        case open
    }

    private let state = NIOLockedValueBox(State.closed([]))

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let proceed = state.withLockedValue { state -> Bool in
                switch state {
                case .open: return true
                case .closed(var waiters):
                    waiters.append(continuation)
                    state = .closed(waiters)
                    return false
                }
            }
            if proceed { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            guard case .closed(let waiters) = state else { return [] }
            state = .open
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
