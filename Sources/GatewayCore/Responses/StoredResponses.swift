import Logging
import NIOConcurrencyHelpers

/// The Responses API responses the gateway keeps (`store: true`), in the request log's database.
///
/// A kept response travels with its request's row (`RequestRecord.storedResponse`), so it is written in the row's
/// batch, spooled through a database outage and replayed with it: keeping one adds no write to the request path.
/// Until the row is written, the response waits here, so the gateway that answered finds it at once; another gateway
/// of a fleet finds it once the row is written (within `request_log.flush_interval`), and a lookup there that finds
/// nothing asks again for up to twice that (`fleetWait`). At most `pendingLimit` responses
/// and `pendingByteLimit` bytes wait here: beyond, the oldest are only in the log's queue or spool until written.
///
/// Responses are scoped to the key that made them: any other key is told there is no such response.
///
/// ```swift
/// let responses = StoredResponses(log: requestLog)
/// let previous = try await responses.find(id: "resp_…", keyName: "app")
/// ```
public final class StoredResponses: Sendable {
    /// How many responses may wait here for their rows to be written.
    public static let pendingLimit = 10_000
    /// How many bytes of responses and conversations may wait here by default (a long conversation is kept whole
    /// each turn).
    public static let defaultPendingByteLimit = 64 << 20
    /// How many bytes of responses and conversations may wait here.
    public let pendingByteLimit: Int

    private struct Pending {
        var byID: [String: (order: Int, response: StoredResponse)] = [:]
        var next = 0
        var bytes = 0

        mutating func remove(_ id: String) {
            guard let removed = byID.removeValue(forKey: id) else { return }
            bytes -= removed.response.byteCount
        }
    }

    private let log: RequestLog
    private let pending = NIOLockedValueBox(Pending())

    /// How long a lookup that finds nothing keeps asking the database: another gateway of the fleet may have
    /// answered the response a moment ago, its row not written yet. Zero for a database of one gateway.
    public let fleetWait: Duration

    /// Keeps responses in `log`'s database, and learns from it when their rows are written.
    /// - Parameters:
    ///   - fleetWait: how long a lookup waits for another gateway's row (`fleetWait(for:)`).
    ///   - pendingByteLimit: the bytes of responses that may wait in memory for their rows.
    public init(log: RequestLog, fleetWait: Duration = .zero, pendingByteLimit: Int = StoredResponses.defaultPendingByteLimit) {
        self.log = log
        self.fleetWait = fleetWait
        self.pendingByteLimit = pendingByteLimit
        log.onWritten { [weak self] records in
            let written = records.compactMap(\.storedResponse?.id)
            guard let self, !written.isEmpty else { return }
            self.pending.withLockedValue { pending in
                for id in written { pending.remove(id) }
            }
        }
    }

    /// How many responses wait for their rows to be written.
    public var pendingCount: Int { pending.withLockedValue { $0.byID.count } }

    /// Makes `response` findable now; its row carries it to the database.
    func keep(_ response: StoredResponse) {
        let pendingByteLimit = self.pendingByteLimit
        pending.withLockedValue { pending in
            pending.remove(response.id)
            pending.byID[response.id] = (pending.next, response)
            pending.bytes += response.byteCount
            pending.next += 1
            // Rare (the database is down or slow): the oldest are still in the log's queue or spool.
            while pending.byID.count > Self.pendingLimit || (pending.bytes > pendingByteLimit && pending.byID.count > 1),
                let oldest = pending.byID.min(by: { $0.value.order < $1.value.order })
            {
                pending.remove(oldest.key)
            }
        }
    }

    /// How long a fleet's lookups wait for another gateway's row: twice the flush interval when the request log is
    /// a database several gateways share (PostgreSQL), else nothing.
    public static func fleetWait(for settings: RequestLogSettings) -> Duration {
        settings.backend == .postgres ? settings.flushInterval * 2 : .zero
    }

    /// The response `id` of `keyName`, unless it expired or belongs to another key. With a `fleetWait`, a miss asks
    /// the database again every 100 ms until it has passed.
    /// - Throws: the store's error when the database cannot be asked.
    public func find(id: String, keyName: String, nowMicros: Int64 = UnixTime.nowMicros()) async throws -> StoredResponse? {
        if let waiting = pending.withLockedValue({ $0.byID[id]?.response }) {
            return waiting.isVisible(to: keyName, atMicros: nowMicros) ? waiting : nil
        }
        let deadline = ContinuousClock.now + fleetWait
        while true {
            if let found = try await log.backingStore.storedResponse(id: id, keyName: keyName, nowMicros: nowMicros) { return found }
            guard ContinuousClock.now + .milliseconds(100) <= deadline else { return nil }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Deletes the response `id` of `keyName`; false when there is none for that key.
    ///
    /// A response whose row is not written yet is written first, so it cannot come back with a late batch.
    /// - Throws: `GatewayError.unavailable` when the row cannot be written now (the database is down); the store's
    ///   error when the database cannot be asked.
    public func delete(id: String, keyName: String) async throws -> Bool {
        if let waiting = pending.withLockedValue({ $0.byID[id]?.response }) {
            guard waiting.keyName == keyName else { return false }
            await log.flush()
            if pending.withLockedValue({ $0.byID[id] != nil }) {
                throw GatewayError.unavailable("The response cannot be deleted now: the request log's database is unavailable. Try again later.")
            }
        }
        return try await log.backingStore.deleteStoredResponse(id: id, keyName: keyName)
    }

    /// A keeper for the response `id` to a request of `keyName` whose conversation so far is `input`.
    func keeper(id: String, keyName: String, input: [JSON], ttl: Duration, outcome: RequestOutcome?) -> ResponseKeeper {
        ResponseKeeper(id: id, keyName: keyName, input: JSON.array(input).serialized(), ttl: ttl, responses: self, outcome: outcome)
    }
}

/// Keeps one request's response once it is complete: the answer's encoder hands it over (a stream's at its end).
final class ResponseKeeper: Sendable {
    let id: String
    let keyName: String
    /// The conversation's input items, as JSON text.
    let input: String
    let ttl: Duration
    private let responses: StoredResponses
    private let outcome: RequestOutcome?

    init(id: String, keyName: String, input: String, ttl: Duration, responses: StoredResponses, outcome: RequestOutcome?) {
        self.id = id
        self.keyName = keyName
        self.input = input
        self.ttl = ttl
        self.responses = responses
        self.outcome = outcome
    }

    /// Keeps `response` (the `response` object as the client receives it) until the TTL passes.
    func keep(_ response: JSON) {
        let now = UnixTime.nowMicros()
        let (seconds, attoseconds) = ttl.components
        // A response OpenAI streamed as it came carries OpenAI's id; every other one carries `id`.
        let stored = StoredResponse(
            id: response["id"]?.stringValue ?? id, keyName: keyName, createdAtMicros: now, expiresAtMicros: now + seconds * 1_000_000 + attoseconds / 1_000_000_000_000,
            response: response.serialized(), input: input)
        responses.keep(stored)
        outcome?.update { $0.storedResponse = stored }
    }
}
