import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Testing
@testable import GatewayCore

/// The SQLite request-log store, the batching writer with its spool, and `llm-gateway stats`.
@Suite("Request log", .timeLimit(.minutes(2)))
struct RequestLogTests {
    static let logger: Logger = {
        var logger = Logger(label: "request-log-test")
        logger.logLevel = .critical
        return logger
    }()

    func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "request-log-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func makeStore() async throws -> (SQLiteRequestLogStore, String) {
        let folder = try temporaryFolder()
        let store = try await SQLiteRequestLogStore(path: folder + "/db/requests.db", logger: Self.logger)
        try await store.migrate()
        return (store, folder)
    }

    func record(_ id: String, at micros: Int64 = 1_700_000_000_000_000, model: String = "gpt-4o", status: Int = 200,
                latency: Int = 100, cost: Double? = 0.001, cacheHit: Bool = false) -> RequestRecord {
        RequestRecord(
            requestID: id, createdAtMicros: micros, keyName: "web", model: model, servedModel: model, provider: "openai",
            statusCode: status, promptTokens: 10, completionTokens: 5, totalTokens: 15, costUSD: cost, latencyMs: latency,
            cacheHit: cacheHit, attempts: 1, customer: "acme", metadata: ["team": "search"])
    }

    /// A writer over a SQLite store whose every insert first waits `delay`.
    func makeSlowLog(delay: Duration, batchSize: Int, flushInterval: Duration) async throws
        -> (sqlite: SQLiteRequestLogStore, store: SwitchableStore, log: RequestLog)
    {
        let (sqlite, folder) = try await makeStore()
        let store = SwitchableStore(sqlite)
        store.delay = delay
        let log = RequestLog(store: store, spoolPath: folder + "/spool", batchSize: batchSize, flushInterval: flushInterval, logger: Self.logger)
        return (sqlite, store, log)
    }

    /// Runs `log` as a service while `body` runs, then shuts it down gracefully and waits for it to stop.
    static func whileRunning(_ log: RequestLog, _ body: () async throws -> Void) async throws {
        let group = ServiceGroup(configuration: .init(services: [log], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    // MARK: - SQLite store

    @Test func migrateAppliesEveryEmbeddedFileOnceAndCreatesTheParentFolder() async throws {
        let (store, folder) = try await makeStore()
        try await store.migrate()
        try await store.migrate()
        #expect(FileManager.default.fileExists(atPath: folder + "/db/requests.db"))
        let embedded = try Migration.all(for: .sqlite)
        #expect(try await store.migrationVersions() == embedded.map(\.version))
        #expect(try await store.migrationVersions().first == 1)
        let indexes = try await store.strings("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'gateway_logs' AND sql IS NOT NULL ORDER BY name")
        #expect(indexes == ["gateway_logs_created_at", "gateway_logs_customer_created_at", "gateway_logs_key_created_at", "gateway_logs_model_created_at"])
        await store.close()
    }

    /// A database made by an older gateway gets only the migrations it lacks, and keeps its rows.
    @Test func anExistingDatabaseGetsOnlyTheNewMigrations() async throws {
        let (store, _) = try await makeStore()
        try await store.insert([record("old")])
        let embedded = try Migration.all(for: .sqlite)
        let next = Migration.addingRegion(after: embedded)
        try await store.migrate(applying: embedded + [next])
        try await store.migrate(applying: embedded + [next])
        #expect(try await store.migrationVersions() == embedded.map(\.version) + [next.version])
        #expect(try await store.allRequestIDs() == ["old"])
        #expect(try await store.strings("SELECT count(*) FROM pragma_table_info('gateway_logs') WHERE name = 'region'") == ["1"])
        await store.close()
    }

    @Test func insertIsIdempotentOnRequestID() async throws {
        let (store, _) = try await makeStore()
        try await store.insert([record("a"), record("b")])
        try await store.insert([record("b"), record("c")])
        try await store.insert([record("a")])
        #expect(try await store.allRequestIDs() == ["a", "b", "c"])
        await store.close()
    }

    @Test func aBatchLongerThanOneStatementIsWrittenWholeAndOnce() async throws {
        let (store, _) = try await makeStore()
        let count = SQLiteRequestLogStore.rowsPerStatement * 3 + 5
        let ids = (0..<count).map { String(format: "r%04d", $0) }
        try await store.insert(ids.map { record($0) })
        // Again, overlapping the first batch across its statements' boundaries: stored rows are skipped.
        let more = ids.suffix(SQLiteRequestLogStore.rowsPerStatement + 3) + (count..<count + 40).map { String(format: "r%04d", $0) }
        try await store.insert(more.map { record($0) })
        #expect(try await store.allRequestIDs() == (0..<count + 40).map { String(format: "r%04d", $0) })
        await store.close()
    }

    @Test func oneTokenCostIsKeptExactly() async throws {
        let (store, _) = try await makeStore()
        try await store.insert([record("tiny", cost: 1.5e-7)])
        let rows = try await store.stats(sinceMicros: 0, by: .model)
        #expect(rows.first?.spendUSD == 1.5e-7)
        await store.close()
    }

    @Test func statsGroupByDimensionWithSumsErrorsCacheHitsAndPercentiles() async throws {
        let (store, _) = try await makeStore()
        var records: [RequestRecord] = []
        for index in 1...10 {
            records.append(record("g\(index)", model: "gpt-4o", status: index == 3 ? 500 : 200, latency: index * 100,
                                  cost: 0.01, cacheHit: index <= 2))
        }
        records.append(record("h1", model: "claude-haiku-4-5", status: 429, latency: 50, cost: nil))
        var anonymous = record("n1", model: "x", latency: 70, cost: 0.5)
        anonymous.customer = nil
        records.append(anonymous)
        records.append(record("old", at: 1_000, model: "gpt-4o", cost: 100))
        try await store.insert(records)

        let byModel = try await store.stats(sinceMicros: 1_600_000_000_000_000, by: .model)
        #expect(byModel.map(\.group) == ["x", "gpt-4o", "claude-haiku-4-5"])
        let gpt = try #require(byModel.first { $0.group == "gpt-4o" })
        #expect(gpt.requests == 10)
        #expect(gpt.errors == 1)
        #expect(gpt.cacheHits == 2)
        #expect(gpt.promptTokens == 100)
        #expect(gpt.completionTokens == 50)
        #expect(abs(gpt.spendUSD - 0.1) < 1e-12)
        #expect(gpt.latencyP50Ms == 550)
        #expect(abs((gpt.latencyP95Ms ?? 0) - 955) < 1e-9)
        let haiku = try #require(byModel.first { $0.group == "claude-haiku-4-5" })
        #expect(haiku.errors == 1)
        #expect(haiku.spendUSD == 0)
        #expect(haiku.latencyP50Ms == 50)

        let byCustomer = try await store.stats(sinceMicros: 1_600_000_000_000_000, by: .customer)
        #expect(Set(byCustomer.map(\.group)) == ["acme", "(none)"])
        #expect(byCustomer.first { $0.group == "acme" }?.requests == 11)
        #expect(byCustomer.first { $0.group == "(none)" }?.latencyP50Ms == 70)
        await store.close()
    }

    // MARK: - Writer

    @Test func writerBatchesRecordsIntoTheStore() async throws {
        let (store, folder) = try await makeStore()
        let log = RequestLog(store: store, spoolPath: folder + "/spool", batchSize: 7, flushInterval: .seconds(60), logger: Self.logger)
        for index in 0..<50 { log.record(record("r\(index)")) }
        #expect(log.queued == 50)
        await log.flush()
        #expect(log.queued == 0)
        #expect(log.written == 50)
        #expect(log.spooled == 0)
        #expect(try await store.allRequestIDs().count == 50)
        await store.close()
    }

    @Test func writerSpoolsWhileTheStoreFailsAndReplaysInOrderOnceItRecovers() async throws {
        let (sqlite, folder) = try await makeStore()
        let store = SwitchableStore(sqlite)
        let spoolPath = folder + "/spool/requests.spool"
        let log = RequestLog(store: store, spoolPath: spoolPath, batchSize: 4, flushInterval: .seconds(60), logger: Self.logger)
        store.failing = true
        for index in 0..<10 { log.record(record(String(format: "r%03d", index))) }
        await log.flush()
        for index in 10..<15 { log.record(record(String(format: "r%03d", index))) }
        await log.flush()
        #expect(log.spooled == 15)
        #expect(try await sqlite.allRequestIDs().isEmpty)
        #expect(try String(contentsOfFile: spoolPath, encoding: .utf8).split(separator: "\n").count == 15)

        store.failing = false
        for index in 15..<20 { log.record(record(String(format: "r%03d", index))) }
        await log.flush()
        let expected = (0..<20).map { String(format: "r%03d", $0) }
        #expect(try await sqlite.allRequestIDs().sorted() == expected)
        // The queue is written first, then the spool in its own order.
        let spoolOrder = store.inserted.filter { $0 < "r015" }
        #expect(spoolOrder == (0..<15).map { String(format: "r%03d", $0) })
        #expect(try FileManager.default.attributesOfItem(atPath: spoolPath)[.size] as? Int == 0)
        // Replaying again (a crash before the truncate) duplicates nothing.
        try await sqlite.insert((0..<20).map { record(String(format: "r%03d", $0)) })
        #expect(try await sqlite.allRequestIDs().count == 20)
        await sqlite.close()
    }

    @Test func spoolKeepsOneTokenCostsAndEveryField() throws {
        var original = record("full", cost: 1.5e-7)
        original.errorMessage = "upstream said \"no\"\n"
        original.ttfbMs = 12
        original.savedCostUSD = 2.5e-9
        original.originalProvider = "anthropic"
        original.failoverUsed = true
        original.stream = true
        original.feature = "search"
        let folder = try temporaryFolder()
        let spool = RequestSpool(path: folder + "/spool")
        try spool.append([original, record("second")])
        let chunk = try spool.read(from: 0, upTo: try spool.size(), limit: 10)
        #expect(chunk.records == [original, record("second")])
        #expect(chunk.malformed == 0)
    }

    @Test func newWriterReplaysTheSpoolLeftByTheLastOne() async throws {
        let (sqlite, folder) = try await makeStore()
        let spoolPath = folder + "/requests.spool"
        let failing = SwitchableStore(sqlite)
        failing.failing = true
        let first = RequestLog(store: failing, spoolPath: spoolPath, batchSize: 100, flushInterval: .seconds(60), logger: Self.logger)
        for index in 0..<30 { first.record(record("left\(index)")) }
        await first.flush()
        #expect(first.spooled == 30)
        // A crash mid-append leaves a partial line; it is skipped and does not swallow the next record.
        let handle = try #require(FileHandle(forWritingAtPath: spoolPath))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"request_id":"trunc"#.utf8))
        try handle.close()
        try RequestSpool(path: spoolPath).append([record("after-crash")])

        let second = RequestLog(store: sqlite, spoolPath: spoolPath, batchSize: 100, flushInterval: .milliseconds(50), logger: Self.logger)
        try await Self.whileRunning(second) {
            for _ in 0..<100 where try await sqlite.allRequestIDs().count < 31 {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let ids = try await sqlite.allRequestIDs()
        #expect(ids.count == 31)
        #expect(ids.contains("after-crash"))
        #expect(try FileManager.default.attributesOfItem(atPath: spoolPath)[.size] as? Int == 0)
        await sqlite.close()
    }

    @Test func gracefulShutdownFlushesTheQueue() async throws {
        let (sqlite, folder) = try await makeStore()
        let log = RequestLog(store: sqlite, spoolPath: folder + "/spool", batchSize: 1000, flushInterval: .seconds(3600), logger: Self.logger)
        try await Self.whileRunning(log) {
            try await Task.sleep(for: .milliseconds(100))
            for index in 0..<25 { log.record(record("s\(index)")) }
        }
        #expect(try await sqlite.allRequestIDs().count == 25)
        #expect(log.spooled == 0)
        await sqlite.close()
    }

    @Test func gracefulShutdownSpoolsWhenTheStoreIsDown() async throws {
        let (sqlite, folder) = try await makeStore()
        let store = SwitchableStore(sqlite)
        let log = RequestLog(store: store, spoolPath: folder + "/spool", batchSize: 1000, flushInterval: .seconds(3600), logger: Self.logger)
        try await Self.whileRunning(log) {
            try await Task.sleep(for: .milliseconds(100))
            store.failing = true
            for index in 0..<25 { log.record(record("s\(index)")) }
        }
        #expect(log.spooled == 25)
        #expect(try String(contentsOfFile: folder + "/spool", encoding: .utf8).split(separator: "\n").count == 25)
        await sqlite.close()
    }

    @Test func fullQueueGoesToTheSpoolInsteadOfDropping() async throws {
        let (sqlite, folder) = try await makeStore()
        let log = RequestLog(
            store: sqlite, spoolPath: folder + "/spool", batchSize: 1000, flushInterval: .seconds(60), maxQueued: 10, logger: Self.logger)
        for index in 0..<25 { log.record(record("q\(index)")) }
        // The spool is written off the caller's event loop: give it a moment.
        for _ in 0..<100 where log.spooled < 20 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(log.spooled == 20)
        #expect(log.queued == 5)
        await log.flush()
        #expect(try await sqlite.allRequestIDs().count == 25)
        await sqlite.close()
    }

    @Test func recordDoesNotWaitForASlowStore() async throws {
        let (sqlite, store, log) = try await makeSlowLog(delay: .seconds(2), batchSize: 10, flushInterval: .milliseconds(10))
        try await Self.whileRunning(log) {
            // The first batch reaches the store and sleeps there while the next 1000 records arrive.
            for index in 0..<10 { log.record(record("first\(index)")) }
            for _ in 0..<200 where store.insertsStarted == 0 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(store.insertsStarted == 1)
            let started = ContinuousClock.now
            for index in 0..<1000 { log.record(record("slow\(index)")) }
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .seconds(1))
            store.delay = .zero
        }
        #expect(try await sqlite.allRequestIDs().count == 1010)
        await sqlite.close()
    }

    @Test func steadyTrafficIsWrittenInWholeBatches() async throws {
        let (sqlite, store, log) = try await makeSlowLog(delay: .milliseconds(5), batchSize: 50, flushInterval: .seconds(60))
        try await Self.whileRunning(log) {
            // Records keep arriving while each batch is being written.
            for burst in 0..<40 {
                for index in 0..<10 { log.record(record("steady\(burst)-\(index)")) }
                try await Task.sleep(for: .milliseconds(2))
        }
        for _ in 0..<500 where log.written < 350 { try await Task.sleep(for: .milliseconds(10)) }
        // The writer's first pass, at start, takes whatever it finds; every later one writes whole batches.
        let batches = store.batches
        #expect(batches.count >= 7)
        #expect(batches.dropFirst().allSatisfy { $0 == 50 }, "batches written: \(batches)")
        }
        // Shutdown writes the partial batch left over.
        #expect(try await sqlite.allRequestIDs().count == 400)
        await sqlite.close()
    }

    // MARK: - Report and command line

    @Test func sinceAcceptsDays() throws {
        #expect(try StatsReport.parseSince("7d") == .seconds(7 * 86_400))
        #expect(try StatsReport.parseSince("1d12h") == .seconds(36 * 3600))
        #expect(try StatsReport.parseSince("90m") == .seconds(5400))
        #expect(throws: UnitParseError.self) { try StatsReport.parseSince("7x") }
    }

    @Test func tableIsAligned() {
        let rows = [
            StatsRow(group: "gpt-4o", requests: 12, errors: 1, cacheHits: 3, promptTokens: 3400, completionTokens: 1200,
                     spendUSD: 0.021, savedUSD: 0.004, latencyP50Ms: 850, latencyP95Ms: 1900),
            StatsRow(group: "(none)", requests: 1, errors: 0, cacheHits: 0, promptTokens: 0, completionTokens: 0,
                     spendUSD: 0, savedUSD: 0, latencyP50Ms: nil, latencyP95Ms: nil),
        ]
        let lines = StatsReport.table(rows).split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("GROUP"))
        #expect(lines[1].hasPrefix("gpt-4o"))
        #expect(lines[1].contains("25.0"))
        #expect(lines[1].contains("0.021000"))
        #expect(lines[3].hasPrefix("TOTAL"))
        // Right-aligned numeric columns end at the same place.
        #expect(lines[0].hasSuffix("P95 MS"))
        #expect(lines[1].count == lines[0].count)
    }

    @Test func statsCommandPrintsJSONFromTheConfiguredSQLiteFile() async throws {
        let folder = try temporaryFolder()
        let database = folder + "/requests.db"
        let store = try await SQLiteRequestLogStore(path: database, logger: Self.logger)
        try await store.migrate()
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        try await store.insert([
            record("c1", at: now - 1_000_000, model: "gpt-4o", latency: 100, cost: 0.25),
            record("c2", at: now - 2_000_000, model: "gpt-4o", status: 502, latency: 300, cost: nil),
            record("c3", at: now - 3_000_000, model: "claude-haiku-4-5", latency: 40, cost: 1.5e-7, cacheHit: true),
            record("c4", at: now - 10 * 86_400_000_000, model: "ancient", cost: 9),
        ])
        await store.close()
        let config = folder + "/gateway.yaml"
        try "request_log: {backend: sqlite, path: \(database)}\n".write(toFile: config, atomically: true, encoding: .utf8)

        let migrated = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["migrate", "--config", config])
        #expect(migrated.status == 0, "\(migrated.stderr)")
        let result = try await ProcessRunner.run(
            ProcessRunner.gatewayBinary, ["stats", "--config", config, "--since", "7d", "--by", "model", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSON.parse(result.stdout)
        let rows = try #require(json.arrayValue)
        #expect(rows.count == 2)
        #expect(rows.first?["group"]?.stringValue == "gpt-4o")
        #expect(rows.first?["requests"]?.intValue == 2)
        #expect(rows.first?["errors"]?.intValue == 1)
        #expect(rows.first?["spend_usd"]?.doubleValue == 0.25)
        #expect(rows.first?["latency_p50_ms"]?.doubleValue == 200)
        #expect(rows.last?["spend_usd"]?.doubleValue == 1.5e-7)
        #expect(rows.last?["cache_hit_rate_percent"]?.doubleValue == 100)

        let table = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["stats", "--config", config, "--by", "key"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.hasPrefix("GROUP"))
        #expect(table.stdout.contains("web"))
        let bad = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["stats", "--config", config, "--by", "colour"])
        #expect(bad.status != 0)
    }
}

// MARK: - Fakes

/// Wraps a store so a test can make it fail or slow, and see what reached it in order.
final class SwitchableStore: RequestLogStore, @unchecked Sendable {
    private let base: any RequestLogStore
    private let state = NIOLockedValueBox((failing: false, delay: Duration.zero, inserted: [String](), started: 0, batches: [Int]()))

    init(_ base: any RequestLogStore) { self.base = base }

    var failing: Bool {
        get { state.withLockedValue { $0.failing } }
        set { state.withLockedValue { $0.failing = newValue } }
    }
    var delay: Duration {
        get { state.withLockedValue { $0.delay } }
        set { state.withLockedValue { $0.delay = newValue } }
    }
    var inserted: [String] { state.withLockedValue { $0.inserted } }
    var insertsStarted: Int { state.withLockedValue { $0.started } }
    /// The size of each batch written, in order.
    var batches: [Int] { state.withLockedValue { $0.batches } }

    struct Down: Error {}

    func migrate() async throws {
        if failing { throw Down() }
        try await base.migrate()
    }

    func insert(_ records: [RequestRecord]) async throws {
        let delay = state.withLockedValue { state in
            state.started += 1
            return state.delay
        }
        if delay > .zero { try? await Task.sleep(for: delay) }
        if failing { throw Down() }
        try await base.insert(records)
        state.withLockedValue { state in
            state.inserted += records.map(\.requestID)
            state.batches.append(records.count)
        }
    }

    func stats(sinceMicros: Int64, by dimension: StatsDimension) async throws -> [StatsRow] {
        try await base.stats(sinceMicros: sinceMicros, by: dimension)
    }

    func spend(sinceMicros: Int64) async throws -> [SpendRow] {
        try await base.spend(sinceMicros: sinceMicros)
    }

    func hourlySpend(sinceMicros: Int64) async throws -> [HourlySpend] {
        try await base.hourlySpend(sinceMicros: sinceMicros)
    }

    func storedResponse(id: String, keyName: String, nowMicros: Int64) async throws -> StoredResponse? {
        if failing { throw Down() }
        return try await base.storedResponse(id: id, keyName: keyName, nowMicros: nowMicros)
    }

    func deleteStoredResponse(id: String, keyName: String) async throws -> Bool {
        if failing { throw Down() }
        return try await base.deleteStoredResponse(id: id, keyName: keyName)
    }

    func purgeStoredResponses(expiredBeforeMicros: Int64) async throws -> Int {
        if failing { throw Down() }
        return try await base.purgeStoredResponses(expiredBeforeMicros: expiredBeforeMicros)
    }

    func close() async { await base.close() }

    func refusesRows(_ error: any Error) -> Bool { base.refusesRows(error) }
}

extension SQLiteRequestLogStore {
    /// Every stored request id, in insertion order.
    func allRequestIDs() async throws -> [String] {
        try await strings("SELECT request_id FROM gateway_logs ORDER BY id")
    }

    func migrationVersions() async throws -> [Int] {
        try await strings("SELECT version FROM schema_migrations ORDER BY version").compactMap { Int($0) }
    }
}
