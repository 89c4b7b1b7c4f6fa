import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import GatewayCore

/// The request pipeline's stages on their own: the ledger, the answer cache's tiers, the dialect's error envelope,
/// the upstream operation's paths; and the provider's one meaning through the running gateway.
@Suite("Request pipeline", .timeLimit(.minutes(2)))
struct PipelineTests {
    /// A ticket that records how it was settled.
    final class RecordingTicket: AdmissionTicket {
        let settlements = NIOLockedValueBox<[(Usage?, Double?)]>([])
        var headers: HTTPFields { [.rateLimitRemaining: "7"] }
        func settle(usage: Usage?, costUSD: Double?, logger: Logger) async {
            settlements.withLockedValue { $0.append((usage, costUSD)) }
        }
    }

    /// A tier holding at most one answer, counting what it was asked.
    final class FakeTier: AnswerCacheTier {
        let hitLabel: String
        let held = NIOLockedValueBox<CachedAnswer?>(nil)
        let lookups = NIOLockedValueBox(0)
        init(label: String, holding answer: CachedAnswer? = nil) {
            hitLabel = label
            held.withLockedValue { $0 = answer }
        }
        func lookup(_ query: AnswerCache.Query) async -> AnswerCache.Hit? {
            lookups.withLockedValue { $0 += 1 }
            return held.withLockedValue { $0 }.map { AnswerCache.Hit(answer: $0, label: hitLabel) }
        }
        func store(_ answer: CachedAnswer, for query: AnswerCache.Query) async {
            held.withLockedValue { $0 = answer }
        }
    }

    static let logger = Logger(label: "pipeline-test")
    static let answer = CachedAnswer(
        completion: ["id": "c1", "object": "chat.completion", "choices": [], "usage": ["prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7]],
        provider: "primary", upstreamModel: "m", costUSD: 0.25)

    static func query(lookup: Bool = true, store: Bool = true) throws -> AnswerCache.Query {
        let request = try ChatRequest(parsing: Array(#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#.utf8)[...])
        var policy = CachePolicy(config: GatewayConfig(), key: KeyConfig(name: "k", sha256: ""), cacheControl: nil, backendAvailable: true)
        policy.lookup = lookup
        policy.store = store
        return AnswerCache.Query(request: request, policy: policy, exactKey: "key")
    }

    static func ledger(tiers: [any AnswerCacheTier] = []) -> (RequestLedger, RequestOutcome) {
        let outcome = RequestOutcome(requestID: "req_1", endpoint: "/v1/chat/completions", startedAt: .now)
        return (RequestLedger(outcome: outcome, cache: AnswerCache(tiers: tiers, flights: SingleFlight()), logger: logger), outcome)
    }

    // MARK: - Ledger

    @Test func theLedgerSettlesOnceWhateverExitComesLater() async {
        let (ledger, _) = Self.ledger()
        let ticket = RecordingTicket()
        ledger.hold(ticket)
        await ledger.settle(.failed)
        await ledger.settle(.cacheHit(AnswerCache.Hit(answer: Self.answer, label: "exact")))
        await ledger.settle(.streamed(usage: Usage(promptTokens: 1, completionTokens: 1), costUSD: 1, completion: nil))
        let settlements = ticket.settlements.withLockedValue { $0 }
        #expect(settlements.count == 1)
        #expect(settlements.first?.0 == nil && settlements.first?.1 == nil)
    }

    @Test func aCacheHitSettlesEveryTicketAtZeroAndRecordsWhatItSaved() async {
        let (ledger, _) = Self.ledger()
        let tickets = [RecordingTicket(), RecordingTicket()]
        for ticket in tickets { ledger.hold(ticket) }
        await ledger.settle(.cacheHit(AnswerCache.Hit(answer: Self.answer, label: "exact")))
        for ticket in tickets {
            let settlements = ticket.settlements.withLockedValue { $0 }
            #expect(settlements.count == 1)
            #expect(settlements.first?.0 == Usage() && settlements.first?.1 == 0)
        }
        let sink = CollectingSink()
        ledger.close(status: 200, into: sink)
        let row = sink.rows.withLockedValue { $0 }.first
        #expect(row?.cacheHit == true && row?.provider == "primary" && row?.costUSD == 0 && row?.savedCostUSD == 0.25)
    }

    @Test func aStreamThatEndedStoresItsAnswerAndSettlesItsUsage() async throws {
        let tier = FakeTier(label: "exact")
        let (ledger, _) = Self.ledger(tiers: [tier])
        let ticket = RecordingTicket()
        ledger.hold(ticket)
        ledger.storeAnswers(for: try Self.query())
        #expect(ledger.storesAnswers)
        let usage = Usage(promptTokens: 10, completionTokens: 5)
        await ledger.settle(.streamed(usage: usage, costUSD: 0.5, completion: Self.answer))
        #expect(tier.held.withLockedValue { $0 } == Self.answer)
        #expect(ticket.settlements.withLockedValue { $0 }.first?.0 == usage)
        #expect(ticket.settlements.withLockedValue { $0 }.first?.1 == 0.5)
    }

    @Test func noStoreKeepsAFreshAnswerOutOfTheCache() async throws {
        let tier = FakeTier(label: "exact")
        let (ledger, _) = Self.ledger(tiers: [tier])
        ledger.storeAnswers(for: try Self.query(store: false))
        #expect(!ledger.storesAnswers)
        await ledger.settle(.streamed(usage: nil, costUSD: nil, completion: Self.answer))
        #expect(tier.held.withLockedValue { $0 } == nil)
    }

    // MARK: - Answer cache

    @Test func lookupAsksTheTiersInOrderAndNamesTheOneThatAnswered() async throws {
        let first = FakeTier(label: "exact")
        let second = FakeTier(label: "semantic", holding: Self.answer)
        let cache = AnswerCache(tiers: [first, second], flights: SingleFlight())
        let hit = await cache.lookup(try Self.query())
        #expect(hit?.label == "semantic" && hit?.answer == Self.answer)
        #expect(first.lookups.withLockedValue { $0 } == 1)
        let skipped = await cache.lookup(try Self.query(lookup: false))
        #expect(skipped == nil)
        #expect(first.lookups.withLockedValue { $0 } == 1)
        await cache.store(Self.answer, for: try Self.query())
        #expect(first.held.withLockedValue { $0 } == Self.answer)
    }

    // MARK: - Dialect

    /// A dialect whose errors are plain text, to see the middleware render through the route's dialect.
    struct PlainTextDialect: ClientDialect {
        struct Frames: StreamFrameEncoder {
            mutating func frames(_ payloads: [String]) -> ByteBuffer { ByteBuffer(string: payloads.joined(separator: "\n")) }
            mutating func errorFrame(_ error: GatewayError) -> ByteBuffer { ByteBuffer(string: "error: \(error.message)") }
        }
        func decode(_ body: ByteBuffer, headers: HTTPFields) throws(GatewayError) -> ChatRequest {
            throw .invalidRequest("never decodes")
        }
        func encodeAnswer(_ completionText: [UInt8], costUSD: Double?, latencyMs: Int) -> ByteBuffer { ByteBuffer(bytes: completionText) }
        func makeFrameEncoder(for request: ChatRequest) -> Frames { Frames() }
        func errorBody(_ error: GatewayError) -> ByteBuffer { ByteBuffer(string: "plain \(error.status) \(error.message)") }
    }

    @Test func errorsGoOutInTheEnvelopeOfTheRoutesDialect() async throws {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: ErrorEnvelopeMiddleware(dialects: ["/plain": PlainTextDialect()]))
        router.post("plain") { _, _ -> Response in throw GatewayError.forbidden("no plain for you") }
        router.post("openai") { _, _ -> Response in throw GatewayError.forbidden("no openai for you") }
        try await Application(router: router).test(.live) { client in
            try await client.execute(uri: "/plain", method: .post) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body) == "plain 403 no plain for you")
            }
            try await client.execute(uri: "/openai", method: .post) { response in
                #expect(response.status == .forbidden)
                let json = try JSON.parse(response.body.readableBytesView)
                #expect(json["error"]?["message"] == "no openai for you")
                #expect(json["error"]?["code"] == "model_not_allowed")
            }
        }
    }

    // MARK: - Upstream paths

    static let hostileModels = [
        "gemini-2.5-flash:countTokens", "a/b", "../../v1/files", "x?key=1", "x#frag", "100%25", "a\u{0}b", "line\r\nX-Injected: 1", "..",
    ]

    /// Whatever model a client names, the provider's path stays its chat method: OpenAI's and Anthropic's carry the
    /// model in the body only, Gemini's as one percent-encoded segment before its method.
    @Test(arguments: ProviderType.allCases)
    func noClientChosenModelReachesAnotherUpstreamPath(type: ProviderType) throws {
        let provider = ProviderConfig(name: "p", type: type, baseURL: "https://upstream.example/base", apiKey: "k")
        for model in Self.hostileModels {
            for stream in [false, true] {
                // The model as it reaches the adapter (`provider/<model>` passes the client's text through); the request
                // itself carries a plain name, since one with control characters is refused before any routing.
                let body = JSON.object(["model": "p/x", "stream": .bool(stream), "messages": [["role": "user", "content": "hi"]]])
                let chat = try ChatRequest(parsing: Array(body.serialized().utf8)[...])
                let upstream = try chat.makeRequest(adapter: type.adapter, upstreamModel: model, provider: provider)
                switch type {
                case .openai:
                    #expect(upstream.path == "/chat/completions")
                case .anthropic:
                    #expect(upstream.path == "/v1/messages")
                case .gemini:
                    let method = stream ? ":streamGenerateContent?alt=sse" : ":generateContent"
                    #expect(upstream.path.hasPrefix("/v1beta/models/") && upstream.path.hasSuffix(method), "\(model): \(upstream.path)")
                    let segment = upstream.path.dropFirst("/v1beta/models/".count).dropLast(method.count)
                    #expect(!segment.isEmpty, "\(model)")
                    #expect(segment.allSatisfy { $0.isLetter || $0.isNumber || "-._~%".contains($0) }, "\(model): \(segment)")
                    // The path's last segment is the model and its method together: never a dot-segment a server would resolve.
                    let last = upstream.path.split(separator: "/").last.map(String.init) ?? ""
                    #expect(last != ".." && last != "." && last.hasPrefix(String(segment) + ":"), "\(model): \(last)")
                }
                #expect(UpstreamProxy.joinURL(provider.baseURL, upstream.path).hasPrefix("https://upstream.example/base/"))
            }
        }
    }

    // MARK: - Admission through the running gateway

    /// A request that fails gives back the tokens its admission held: five refused calls, each holding about 42 of
    /// a 100-token minute while it runs, all reach the provider and none is refused by the limit.
    @Test func aFailedRequestReleasesWhatItsAdmissionHeld() async throws {
        try await GatewayHarness.with(configure: { config in
            config.keys[0].rateLimit = RateLimit(tokensPerMinute: 100)
            config.models["refused"] = ModelConfig(name: "refused", provider: "openai", upstream: "status-400")
        }) { gateway in
            for index in 0..<6 {
                let reply = try await gateway.post(
                    json: ["model": "refused", "stream": .bool(index % 2 == 1), "max_tokens": 40, "messages": [["role": "user", "content": "hi"]]])
                #expect(reply.status == 400, "request \(index): \(reply.body)")
            }
            #expect(gateway.openai.requests.count == 6)
        }
    }

    // MARK: - The provider's one meaning

    /// `X-Provider`, `X-Original-Provider` and the log's `provider` name the configured provider, on a miss, a hit
    /// and a failover alike.
    @Test func theProviderIsTheConfiguredNameOnEveryPath() async throws {
        try await GatewayHarness.with(configure: { config in
            config.cache.backend = .memory
            var primary = config.providers.first { $0.name == "openai" }!
            primary.name = "primary"
            config.providers.append(primary)
            var backup = config.providers.first { $0.name == "anthropic" }!
            backup.name = "backup"
            config.providers.append(backup)
            config.models["named"] = ModelConfig(name: "named", provider: "primary", upstream: "gpt-4o-mini")
            config.models["falls"] = ModelConfig(name: "falls", provider: "primary", upstream: "status-500", fallbacks: ["backup/claude-haiku-4-5"])
        }) { gateway in
            let ask: JSON = ["model": "named", "messages": [["role": "user", "content": "who answers?"]]]
            let miss = try await gateway.post(json: ask)
            let hit = try await gateway.post(json: ask)
            #expect(miss.header("X-Cache-Hit") == "miss" && hit.header("X-Cache-Hit") == "exact")
            #expect(miss.header("X-Provider") == "primary" && hit.header("X-Provider") == "primary")
            let failover = try await gateway.post(
                json: ["model": "falls", "messages": [["role": "user", "content": "fail over"]]], headers: ["Cache-Control": "no-store, no-cache"])
            #expect(failover.header("X-Provider") == "backup" && failover.header("X-Original-Provider") == "primary")
            let rows = try await gateway.records.waitFor(3)
            #expect(rows.map(\.provider) == ["primary", "primary", "backup"])
            #expect(rows.last?.originalProvider == "primary")
        }
    }
}

/// Keeps every record it is given.
final class CollectingSink: RequestRecordSink {
    let rows = NIOLockedValueBox<[RequestRecord]>([])
    func record(_ record: RequestRecord) { rows.withLockedValue { $0.append(record) } }
}
