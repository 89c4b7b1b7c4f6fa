import Foundation
import Logging
import Testing

@testable import GatewayCore

/// `PostgresRequestLogStore` against real PostgreSQL 15 clusters (see `PostgresServerProcess`); nothing is mocked.
@Suite("PostgreSQL request log", .timeLimit(.minutes(2)))
struct PostgresRequestLogTests {
    static let now = Int64(Date().timeIntervalSince1970 * 1_000_000)

    // MARK: - Migrations

    @Test func migrateIsIdempotentAndSafeWhenGatewaysStartAtOnce() async throws {
        try await withPostgresServer { server in
            let first = try Self.store(server), second = try Self.store(server)
            async let one: Void = first.migrate()
            async let two: Void = second.migrate()
            _ = try await (one, two)
            try await first.migrate()
            await first.close()
            await second.close()
            let versions = try Migration.all(for: .postgres).map { "\($0.version)\n" }.joined()
            #expect(try await server.psql("SELECT version FROM schema_migrations ORDER BY version") == versions)
            #expect(versions.hasPrefix("1\n"))
            #expect(try await server.psql("SELECT count(*) FROM gateway_logs") == "0\n")
            let indexes = try await server.psql("SELECT indexname FROM pg_indexes WHERE tablename = 'gateway_logs' ORDER BY 1")
            #expect(indexes.contains("gateway_logs_created_at\n"))
            #expect(indexes.contains("gateway_logs_key_name_created_at\n"))
            #expect(indexes.contains("gateway_logs_model_created_at\n"))
        }
    }

    /// A database made by an older gateway gets only the migrations it lacks, and keeps its rows.
    @Test func anExistingDatabaseGetsOnlyTheNewMigrations() async throws {
        try await withMigratedStore { server, store in
            try await store.insert([RequestRecord(requestID: "old", createdAtMicros: Self.now, statusCode: 200)])
            let embedded = try Migration.all(for: .postgres)
            let next = Migration.addingRegion(after: embedded)
            try await store.migrate(applying: embedded + [next])
            try await store.migrate(applying: embedded + [next])
            let versions = (embedded.map(\.version) + [next.version]).map { "\($0)\n" }.joined()
            #expect(try await server.psql("SELECT version FROM schema_migrations ORDER BY version") == versions)
            #expect(try await server.psql("SELECT request_id, region IS NULL FROM gateway_logs") == "old|t\n")
        }
    }

    // MARK: - Writes

    @Test func insertingABatchTwiceKeepsOneRowPerRequest() async throws {
        try await withMigratedStore { server, store in
            let batch = [
                RequestRecord(
                    requestID: "req-1", createdAtMicros: Self.now, keyName: "team-a", model: "gpt-4o-mini",
                    servedModel: "claude-haiku-4-5", provider: "anthropic", originalProvider: "openai", statusCode: 200,
                    promptTokens: 12, completionTokens: 30, totalTokens: 42, cachedTokens: 2, costUSD: 0.000123,
                    latencyMs: 850, ttfbMs: 120, failoverUsed: true, attempts: 2, stream: true, customer: "acme",
                    feature: "chat", metadata: ["tenant": "eu", "quote": "it's \"fine\"; DROP TABLE gateway_logs"]),
                RequestRecord(requestID: "req-2", createdAtMicros: Self.now + 1, statusCode: 429, errorMessage: "slow down"),
                RequestRecord(requestID: "req-3", createdAtMicros: Self.now + 2, statusCode: 200, savedCostUSD: 0.5, cacheHit: true),
            ]
            try await store.insert(batch)
            try await store.insert(batch)
            try await store.insert(batch + [batch[0]])
            #expect(try await server.psql("SELECT count(*) FROM gateway_logs") == "3\n")
            let row = try await server.psql(
                """
                SELECT key_name, endpoint, model, served_model, provider, original_provider, status_code, prompt_tokens,
                    completion_tokens, total_tokens, cached_tokens, cost_usd, latency_ms, ttfb_ms, cache_hit, failover_used,
                    attempts, stream, customer, feature, metadata->>'quote',
                    (extract(epoch FROM created_at) * 1000000)::bigint
                FROM gateway_logs WHERE request_id = 'req-1'
                """)
            #expect(
                row == "team-a|/v1/chat/completions|gpt-4o-mini|claude-haiku-4-5|anthropic|openai|200|12|30|42|2|0.0001230000|850|120"
                    + "|f|t|2|t|acme|chat|it's \"fine\"; DROP TABLE gateway_logs|\(Self.now)\n")
            #expect(try await server.psql("SELECT error_message, key_name IS NULL, metadata FROM gateway_logs WHERE request_id = 'req-2'") == "slow down|t|{}\n")
        }
    }

    @Test func aOneTokenCostIsStoredExactly() async throws {
        try await withMigratedStore { server, store in
            // One token of gpt-4o-mini input: $0.15 per million.
            let cost = 0.15 / 1_000_000
            try await store.insert([RequestRecord(requestID: "one-token", createdAtMicros: Self.now, model: "gpt-4o-mini", statusCode: 200, promptTokens: 1, costUSD: cost)])
            #expect(try await server.psql("SELECT cost_usd FROM gateway_logs") == "0.0000001500\n")
            let stats = try await store.stats(sinceMicros: Self.now - 1, by: .model)
            #expect(stats.map(\.spendUSD) == [1.5e-7])
        }
    }

    @Test func aBatchLargerThanOneStatementIsWrittenWhole() async throws {
        try await withMigratedStore { server, store in
            let records = (0..<4500).map { RequestRecord(requestID: "bulk-\($0)", createdAtMicros: Self.now, statusCode: 200, latencyMs: $0) }
            try await store.insert(records)
            #expect(try await server.psql("SELECT count(*), sum(latency_ms) FROM gateway_logs") == "4500|\((0..<4500).reduce(0, +))\n")
            // Again, overlapping the first batch across its statements' boundaries: stored rows are skipped.
            let overlap = PostgresRequestLogStore.rowsPerStatement + 3
            let more = (4500 - overlap..<4540).map { RequestRecord(requestID: "bulk-\($0)", createdAtMicros: Self.now, statusCode: 200, latencyMs: $0) }
            try await store.insert(more)
            #expect(try await server.psql("SELECT count(*), sum(latency_ms) FROM gateway_logs") == "4540|\((0..<4540).reduce(0, +))\n")
        }
    }

    @Test func aBatchIsOneTransaction() async throws {
        try await withMigratedStore { server, store in
            try await server.psql("ALTER TABLE gateway_logs ADD CONSTRAINT no_teapots CHECK (status_code <> 418)")
            // The refused row is in the batch's last statement: the statements before it are not kept either.
            var records = (0..<40).map { RequestRecord(requestID: "tx-\($0)", createdAtMicros: Self.now, statusCode: 200) }
            records.append(RequestRecord(requestID: "tx-teapot", createdAtMicros: Self.now, statusCode: 418))
            await #expect(throws: PostgresStoreError.self) { try await store.insert(records) }
            #expect(try await server.psql("SELECT count(*) FROM gateway_logs") == "0\n")
        }
    }

    @Test func aNULInAClientsTextIsStoredAsAReplacementCharacter() async throws {
        try await withMigratedStore { server, store in
            // PostgreSQL's text and jsonb refuse U+0000; one such row must not fail its batch.
            let records = [
                RequestRecord(
                    requestID: "nul", createdAtMicros: Self.now, model: "gpt\u{0}4o", statusCode: 404, errorMessage: "no model gpt\u{0}4o",
                    customer: "a\u{0}b", feature: "\u{0}", metadata: ["k\u{0}": "v\u{0}", "plain": "ok"]),
                RequestRecord(requestID: "clean", createdAtMicros: Self.now, model: "gpt-4o", statusCode: 200),
            ]
            try await store.insert(records)
            let stored = try await server.psql(
                "SELECT model, error_message, customer, feature, metadata->>'k\u{FFFD}', metadata->>'plain' FROM gateway_logs WHERE request_id = 'nul'")
            #expect(stored == "gpt\u{FFFD}4o|no model gpt\u{FFFD}4o|a\u{FFFD}b|\u{FFFD}|v\u{FFFD}|ok\n")
            #expect(try await server.psql("SELECT count(*) FROM gateway_logs") == "2\n")
        }
    }

    // MARK: - Reads

    @Test func statsByEachDimension() async throws {
        try await withMigratedStore { _, store in
            let old = RequestRecord(requestID: "old", createdAtMicros: Self.now - 3_600_000_000, keyName: "team-a", model: "gpt-4o", statusCode: 200, costUSD: 100)
            let records = [
                RequestRecord(
                    requestID: "a1", createdAtMicros: Self.now, keyName: "team-a", model: "gpt-4o", provider: "openai", statusCode: 200,
                    promptTokens: 100, completionTokens: 10, costUSD: 0.25, latencyMs: 100, customer: "acme", feature: "chat"),
                RequestRecord(
                    requestID: "a2", createdAtMicros: Self.now, keyName: "team-a", model: "gpt-4o", provider: "openai", statusCode: 500,
                    promptTokens: 50, completionTokens: 0, latencyMs: 300, customer: "acme", feature: "chat"),
                RequestRecord(
                    requestID: "a3", createdAtMicros: Self.now, keyName: "team-b", model: "gpt-4o", provider: "openai", statusCode: 200,
                    savedCostUSD: 0.25, latencyMs: 200, cacheHit: true, customer: "globex"),
                RequestRecord(
                    requestID: "b1", createdAtMicros: Self.now, keyName: "team-b", model: "claude-haiku-4-5", provider: "anthropic",
                    statusCode: 200, promptTokens: 20, completionTokens: 5, costUSD: 0.01, latencyMs: 40, feature: "search"),
            ]
            try await store.insert(records + [old])

            let byModel = try await store.stats(sinceMicros: Self.now - 1_000_000, by: .model)
            #expect(
                byModel == [
                    StatsRow(
                        group: "gpt-4o", requests: 3, errors: 1, cacheHits: 1, promptTokens: 150, completionTokens: 10, spendUSD: 0.25,
                        savedUSD: 0.25, latencyP50Ms: 200, latencyP95Ms: 290),
                    StatsRow(
                        group: "claude-haiku-4-5", requests: 1, errors: 0, cacheHits: 0, promptTokens: 20, completionTokens: 5,
                        spendUSD: 0.01, savedUSD: 0, latencyP50Ms: 40, latencyP95Ms: 40),
                ])

            let groups: [StatsDimension: [String: (requests: Int, spend: Double, p50: Double)]] = [
                .key: ["team-a": (2, 0.25, 200), "team-b": (2, 0.01, 120)],
                .provider: ["openai": (3, 0.25, 200), "anthropic": (1, 0.01, 40)],
                .customer: ["acme": (2, 0.25, 200), "globex": (1, 0, 200), "(none)": (1, 0.01, 40)],
                .feature: ["chat": (2, 0.25, 200), "search": (1, 0.01, 40), "(none)": (1, 0, 200)],
            ]
            for (dimension, expected) in groups {
                let rows = try await store.stats(sinceMicros: Self.now - 1_000_000, by: dimension)
                #expect(Set(rows.map(\.group)) == Set(expected.keys), "\(dimension)")
                #expect(rows.map(\.spendUSD) == rows.map(\.spendUSD).sorted(by: >), "\(dimension): biggest spend first")
                for row in rows {
                    let want = try #require(expected[row.group])
                    #expect(row.requests == want.requests, "\(dimension) \(row.group)")
                    #expect(abs(row.spendUSD - want.spend) < 1e-12, "\(dimension) \(row.group)")
                    #expect(row.latencyP50Ms == want.p50, "\(dimension) \(row.group)")
                }
            }
            let everything = try await store.stats(sinceMicros: 0, by: .key)
            #expect(everything.first == StatsRow(
                group: "team-a", requests: 3, errors: 1, cacheHits: 0, promptTokens: 150, completionTokens: 10, spendUSD: 100.25,
                savedUSD: 0, latencyP50Ms: 100, latencyP95Ms: 280))
        }
    }

    /// The query an operator would type in psql works on the table as the migrations make it.
    @Test func theSeedQueryRunsUnchanged() async throws {
        try await withMigratedStore { server, store in
            try await store.insert([
                RequestRecord(requestID: "s1", createdAtMicros: Self.now, model: "gpt-4o", statusCode: 200, costUSD: 0.5, latencyMs: 100),
                RequestRecord(requestID: "s2", createdAtMicros: Self.now, model: "gpt-4o", statusCode: 200, costUSD: 0.25, latencyMs: 200),
                RequestRecord(requestID: "s3", createdAtMicros: Self.now, model: "claude-haiku-4-5", statusCode: 200, latencyMs: 40),
                RequestRecord(requestID: "s4", createdAtMicros: Self.now - 8 * 86_400_000_000, model: "gpt-4o", statusCode: 200, costUSD: 9, latencyMs: 9),
            ])
            let output = try await server.psql(
                "SELECT model, COUNT(*), SUM(cost_usd), AVG(latency_ms) FROM gateway_logs WHERE created_at >= NOW() - INTERVAL '7 days' GROUP BY model;")
            let rows = Set(output.split(separator: "\n").map(String.init))
            #expect(rows == ["gpt-4o|2|0.7500000000|150.0000000000000000", "claude-haiku-4-5|1||40.0000000000000000"])
        }
    }

    // MARK: - Outages

    @Test func insertFailsWhileTheServerIsDownAndWorksAfterItsRestart() async throws {
        try await withPostgresServer { server in
            let store = try Self.store(server, timeout: .seconds(2))
            try await store.migrate()
            try await store.insert([RequestRecord(requestID: "before", createdAtMicros: Self.now, statusCode: 200)])
            try await server.stop()

            let started = ContinuousClock.now
            await #expect(throws: PostgresStoreError.self) {
                try await store.insert([RequestRecord(requestID: "during", createdAtMicros: Self.now, statusCode: 200)])
            }
            #expect(ContinuousClock.now - started < .seconds(5))

            try await server.restart()
            // The pool reconnects with its own backoff: retry as the writer would, with the same store.
            var written = false
            let deadline = ContinuousClock.now + .seconds(30)
            while !written, ContinuousClock.now < deadline {
                do {
                    try await store.insert([RequestRecord(requestID: "during", createdAtMicros: Self.now, statusCode: 200)])
                    written = true
                } catch {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            #expect(written)
            #expect(try await server.psql("SELECT string_agg(request_id, ',' ORDER BY request_id) FROM gateway_logs") == "before,during\n")
            await store.close()
        }
    }

    @Test func connectsThroughAUnixSocket() async throws {
        try await withPostgresServer { server in
            let store = try PostgresRequestLogStore(url: server.unixSocketURL, poolSize: 1, logger: Self.logger)
            try await store.migrate()
            try await store.insert([RequestRecord(requestID: "unix", createdAtMicros: Self.now, statusCode: 200)])
            await store.close()
            #expect(try await server.psql("SELECT request_id FROM gateway_logs") == "unix\n")
        }
    }

    // MARK: - URLs

    @Test(arguments: [
        "mysql://gateway:s3cret-pw@db/gateway", "postgres://gateway:s3cret-pw@db:99999/gateway",
        "postgres://gateway:s3cret-pw@db/gateway?sslmode=sometimes", "postgres://gateway:s3cret-pw@db/gateway?password=s3cret-pw",
        "postgres://gateway:s3cret-pw@/gateway",
    ])
    func badURLsAreRejectedWithoutTheirPassword(url: String) throws {
        let error = try #require(throws: PostgresStoreError.self) {
            try PostgresRequestLogStore(url: url, poolSize: 1, logger: Self.logger)
        }
        #expect(!error.description.contains("s3cret"))
    }

    @Test func urlsParseLikeLibpq() throws {
        let full = try PostgresURL(parsing: "postgresql://gw%40corp:p%40ss@w:rd@[::1]:6543/logs%2Fdb?sslmode=require&application_name=edge").configuration
        #expect(full.host == "::1")
        #expect(full.port == 6543)
        #expect(full.username == "gw@corp")
        #expect(full.password == "p@ss@w:rd")
        #expect(full.database == "logs/db")
        #expect(full.options.additionalStartupParameters.map(\.1) == ["edge"])
        let plain = try PostgresURL(parsing: "postgres://gateway@127.0.0.1/gateway").configuration
        #expect(plain.port == 5432)
        #expect(plain.password == nil)
        let socket = try PostgresURL(parsing: "postgres://gateway@/gateway?host=/run/postgresql").configuration
        #expect(socket.unixSocketPath == "/run/postgresql/.s.PGSQL.5432")
    }

    // MARK: - Rows PostgreSQL refuses

    /// A row PostgreSQL refuses for its values (here a count past `INTEGER`, set after the record's own bounds, and
    /// an 8 KB model, past what the model index holds) is set aside alone, with its error, in the rejected-rows file;
    /// every other row of its batch, and of the batches after it, is written, and the spool stays empty.
    @Test func aRowPostgresRefusesIsSetAsideAndNeverHoldsBackTheOthers() async throws {
        try await withMigratedStore { server, store in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pg-refused-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let log = RequestLog(store: store, spoolPath: folder + "/requests.spool", batchSize: 8, flushInterval: .seconds(60), logger: Self.logger)
            var overflowing = RequestRecord(requestID: "bad-count", createdAtMicros: Self.now, statusCode: 200)
            overflowing.promptTokens = Int(Int32.max) + 1
            var longModel = RequestRecord(requestID: "bad-model", createdAtMicros: Self.now, statusCode: 404)
            // Random, so PostgreSQL cannot compress it under the index's limit.
            longModel.model = String((0..<8192).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
            for index in 0..<20 {
                if index == 3 { log.record(overflowing) }
                if index == 11 { log.record(longModel) }
                log.record(RequestRecord(requestID: "good-\(index)", createdAtMicros: Self.now + Int64(index), statusCode: 200))
            }
            await log.flush()
            #expect(try await server.psql("SELECT count(*) FROM gateway_logs WHERE request_id LIKE 'good-%'") == "20\n")
            #expect(try await server.psql("SELECT count(*) FROM gateway_logs WHERE request_id LIKE 'bad-%'") == "0\n")
            #expect(log.rejected == 2 && log.written == 20 && log.spooled == 0)
            let rejected = try String(contentsOfFile: log.rejectedRowsPath, encoding: .utf8).split(separator: "\n")
            #expect(rejected.count == 2)
            let reasons = rejected.compactMap { try? JSON.parse(Array($0.utf8)[...]) }.compactMap { $0["rejected_because"]?.stringValue }
            #expect(reasons.count == 2 && reasons.allSatisfy { $0.contains("SQLSTATE") }, "\(reasons)")
        }
    }

    // MARK: - Helpers

    static let logger = {
        var logger = Logger(label: "pg-test")
        logger.logLevel = .warning
        return logger
    }()

    static func store(_ server: PostgresServerProcess, timeout: Duration = .seconds(10)) throws -> PostgresRequestLogStore {
        try PostgresRequestLogStore(url: server.url, poolSize: 4, logger: Self.logger, operationTimeout: timeout)
    }

    private func withMigratedStore(_ body: (PostgresServerProcess, PostgresRequestLogStore) async throws -> Void) async throws {
        try await withPostgresServer { server in
            let store = try Self.store(server)
            do {
                try await store.migrate()
                try await body(server, store)
                await store.close()
            } catch {
                await store.close()
                throw error
            }
        }
    }
}

/// The writer over PostgreSQL through an outage: nothing lost, nothing written twice.
@Suite("Request log through a PostgreSQL outage", .timeLimit(.minutes(2)))
struct PostgresOutageTests {
    @Test func postgresStoppedForTenSecondsUnderLoadLosesNoRows() async throws {
        let server = try await PostgresServerProcess.start()
        var logger = Logger(label: "outage-test")
        logger.logLevel = .critical
        let store = try PostgresRequestLogStore(url: server.url, poolSize: 2, logger: logger, operationTimeout: .seconds(2))
        let spool = NSTemporaryDirectory() + "pg-outage-\(RandomID.make(prefix: "", length: 8)).spool"
        let log = RequestLog(store: store, spoolPath: spool, batchSize: 20, flushInterval: .milliseconds(200), logger: logger)
        let writer = Task { try await log.run() }

        var written = 0
        func burst(_ count: Int) {
            for _ in 0..<count {
                log.record(RequestRecord(requestID: "outage-\(written)", createdAtMicros: UnixTime.nowMicros(), keyName: "load", model: "m", statusCode: 200, costUSD: 0.000001, latencyMs: 5))
                written += 1
            }
        }
        for _ in 0..<10 { burst(10); try await Task.sleep(for: .milliseconds(100)) }
        try await server.stop()
        let outage = ContinuousClock.now
        while ContinuousClock.now - outage < .seconds(10) { burst(10); try await Task.sleep(for: .milliseconds(100)) }
        try await server.restart()
        for _ in 0..<10 { burst(10); try await Task.sleep(for: .milliseconds(100)) }

        var rows = ""
        let deadline = ContinuousClock.now + .seconds(40)
        repeat {
            await log.flush()
            rows = try await server.psql("SELECT COUNT(*) || ',' || COUNT(DISTINCT request_id) FROM gateway_logs WHERE key_name = 'load'")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if rows == "\(written),\(written)" { break }
            try await Task.sleep(for: .milliseconds(500))
        } while ContinuousClock.now < deadline
        #expect(written > 200)
        #expect(rows == "\(written),\(written)", "every row written once after the outage")
        writer.cancel()
        _ = try? await writer.value
        await store.close()
        await server.destroy()
    }
}
