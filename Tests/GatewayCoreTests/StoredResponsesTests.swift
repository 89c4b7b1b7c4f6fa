import Foundation
import Logging
import Testing

@testable import GatewayCore

/// The `stored_responses` table in both request-log stores, and `StoredResponses` in front of the log's writer.
@Suite("Stored responses", .timeLimit(.minutes(2)))
struct StoredResponsesTests {
    static let logger = RequestLogTests.logger

    static func response(_ id: String, key: String = "app", expiresAt: Int64) -> StoredResponse {
        StoredResponse(
            id: id, keyName: key, createdAtMicros: expiresAt - 1_000_000, expiresAtMicros: expiresAt,
            response: #"{"id":"\#(id)","object":"response","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"hi \u0000 there"}]}]}"#,
            input: #"[{"type":"message","role":"user","content":"hello"}]"#)
    }

    static func row(_ id: String, keeping response: StoredResponse?) -> RequestRecord {
        RequestRecord(requestID: id, createdAtMicros: 1_700_000_000_000_000, keyName: response?.keyName, endpoint: "/v1/responses", statusCode: 200, storedResponse: response)
    }

    /// What every store must do: keep each response with its row, once; find it for its key only and before it
    /// expires; delete it for its key only; purge what expired.
    static func exercise(_ store: any RequestLogStore) async throws {
        let now: Int64 = 1_800_000_000_000_000
        let kept = response("resp_1", expiresAt: now + 60_000_000)
        let expired = response("resp_2", expiresAt: now - 1)
        let otherKey = response("resp_3", key: "other", expiresAt: now + 60_000_000)
        let batch = [row("r1", keeping: kept), row("r2", keeping: expired), row("r3", keeping: otherKey), row("r4", keeping: nil)]
        try await store.insert(batch)
        try await store.insert(batch)

        #expect(try await store.storedResponse(id: "resp_1", keyName: "app", nowMicros: now) == kept)
        #expect(try await store.storedResponse(id: "resp_1", keyName: "other", nowMicros: now) == nil)
        #expect(try await store.storedResponse(id: "resp_1", keyName: "app", nowMicros: kept.expiresAtMicros) == nil)
        #expect(try await store.storedResponse(id: "resp_2", keyName: "app", nowMicros: now) == nil)
        #expect(try await store.storedResponse(id: "resp_3", keyName: "other", nowMicros: now) == otherKey)
        #expect(try await store.storedResponse(id: "resp_x", keyName: "app", nowMicros: now) == nil)

        #expect(try await store.deleteStoredResponse(id: "resp_3", keyName: "app") == false)
        #expect(try await store.deleteStoredResponse(id: "resp_3", keyName: "other") == true)
        #expect(try await store.deleteStoredResponse(id: "resp_3", keyName: "other") == false)
        #expect(try await store.storedResponse(id: "resp_3", keyName: "other", nowMicros: now) == nil)

        #expect(try await store.purgeStoredResponses(expiredBeforeMicros: now) == 1)
        #expect(try await store.purgeStoredResponses(expiredBeforeMicros: now) == 0)
        #expect(try await store.storedResponse(id: "resp_1", keyName: "app", nowMicros: now) == kept)
        #expect(try await store.stats(sinceMicros: 0, by: .key).reduce(0) { $0 + $1.requests } == 4, "the rows are written once each")
    }

    @Test func sqliteKeepsResponsesForTheirKeyUntilTheyExpire() async throws {
        let folder = NSTemporaryDirectory() + "stored-responses-\(UUID().uuidString)"
        let store = try await SQLiteRequestLogStore(path: folder + "/requests.db", logger: Self.logger)
        try await store.migrate()
        try await Self.exercise(store)
        await store.close()
    }

    @Test func postgresKeepsResponsesForTheirKeyUntilTheyExpire() async throws {
        try await withPostgresServer { server in
            let store = try PostgresRequestLogStore(url: server.url, poolSize: 2, logger: Self.logger)
            try await store.migrate()
            do {
                try await Self.exercise(store)
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        }
    }

    @Test func aKeptResponseRidesThroughTheSpool() throws {
        let record = Self.row("r1", keeping: Self.response("resp_1", expiresAt: 1_900_000_000_000_000))
        let line = record.spoolJSON.serialized()
        let back = try #require(RequestRecord(spoolJSON: try JSON.parse(Array(line.utf8))))
        #expect(back == record)
        #expect(RequestRecord(spoolJSON: try JSON.parse(Array(Self.row("r2", keeping: nil).spoolJSON.serialized().utf8)))?.storedResponse == nil)
    }

    /// The gateway that answered finds a response at once, through a database outage too; once the spool is
    /// replayed it is in the database, and a delete is refused while the database is down rather than undone later.
    @Test func aResponseIsFoundBeforeItsRowIsWrittenAndFromTheDatabaseAfter() async throws {
        let folder = NSTemporaryDirectory() + "stored-responses-\(UUID().uuidString)"
        let sqlite = try await SQLiteRequestLogStore(path: folder + "/requests.db", logger: Self.logger)
        let store = SwitchableStore(sqlite)
        let log = RequestLog(store: store, spoolPath: folder + "/spool", batchSize: 10, flushInterval: .seconds(60), logger: Self.logger)
        let responses = StoredResponses(log: log)
        let kept = Self.response("resp_1", expiresAt: UnixTime.nowMicros() + 60_000_000)

        store.failing = true
        responses.keep(kept)
        log.record(Self.row("r1", keeping: kept))
        await log.flush()
        #expect(log.spooled == 1)
        #expect(try await responses.find(id: "resp_1", keyName: "app") == kept)
        #expect(try await responses.find(id: "resp_1", keyName: "other") == nil)
        await #expect(throws: GatewayError.self) { try await responses.delete(id: "resp_1", keyName: "app") }

        store.failing = false
        await log.flush()
        #expect(responses.pendingCount == 0)
        #expect(try await sqlite.storedResponse(id: "resp_1", keyName: "app", nowMicros: UnixTime.nowMicros()) == kept)
        #expect(try await responses.find(id: "resp_1", keyName: "app") == kept)
        #expect(try await responses.delete(id: "resp_1", keyName: "other") == false)
        #expect(try await responses.delete(id: "resp_1", keyName: "app") == true)
        #expect(try await responses.find(id: "resp_1", keyName: "app") == nil)
        await sqlite.close()
    }

    @Test func aDeleteWritesAWaitingRowFirstSoALateBatchCannotBringItBack() async throws {
        let folder = NSTemporaryDirectory() + "stored-responses-\(UUID().uuidString)"
        let sqlite = try await SQLiteRequestLogStore(path: folder + "/requests.db", logger: Self.logger)
        let log = RequestLog(store: sqlite, spoolPath: folder + "/spool", batchSize: 10, flushInterval: .seconds(60), logger: Self.logger)
        let responses = StoredResponses(log: log)
        let kept = Self.response("resp_1", expiresAt: UnixTime.nowMicros() + 60_000_000)
        responses.keep(kept)
        log.record(Self.row("r1", keeping: kept))
        #expect(try await responses.delete(id: "resp_1", keyName: "app") == true)
        await log.flush()
        #expect(try await responses.find(id: "resp_1", keyName: "app") == nil)
        #expect(try await sqlite.storedResponse(id: "resp_1", keyName: "app", nowMicros: UnixTime.nowMicros()) == nil)
        await sqlite.close()
    }
}

extension StoredResponsesTests {
    /// While the database is down, the responses waiting in memory stay within `pendingByteLimit`: the oldest make
    /// room, and are found again once the spool is replayed.
    @Test func waitingResponsesStayWithinTheirByteLimit() async throws {
        let folder = NSTemporaryDirectory() + "stored-responses-\(UUID().uuidString)"
        let sqlite = try await SQLiteRequestLogStore(path: folder + "/requests.db", logger: Self.logger)
        let store = SwitchableStore(sqlite)
        let log = RequestLog(store: store, spoolPath: folder + "/spool", batchSize: 50, flushInterval: .seconds(60), logger: Self.logger)
        let responses = StoredResponses(log: log, pendingByteLimit: 40_000)
        store.failing = true
        let big = String(repeating: "x", count: 10_000)
        let expires = UnixTime.nowMicros() + 60_000_000
        for index in 0..<6 {
            var response = Self.response("resp_\(index)", expiresAt: expires)
            response.input = JSON.array([.string(big)]).serialized()
            responses.keep(response)
            log.record(Self.row("r\(index)", keeping: response))
        }
        #expect(responses.pendingCount == 3, "three quarter-limit responses fit, with the rest of the fourth's room left")
        #expect(try await responses.find(id: "resp_5", keyName: "app")?.id == "resp_5")
        // The oldest made room: finding it asks the database, which is down.
        await #expect(throws: SwitchableStore.Down.self) { try await responses.find(id: "resp_0", keyName: "app") }
        await log.flush()
        store.failing = false
        await log.flush()
        #expect(responses.pendingCount == 0)
        #expect(try await responses.find(id: "resp_0", keyName: "app")?.id == "resp_0", "replayed from the spool")
        await sqlite.close()
    }
}
