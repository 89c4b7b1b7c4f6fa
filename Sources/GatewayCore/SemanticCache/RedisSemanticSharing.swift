import Logging
import NIOConcurrencyHelpers

/// Semantic cache entries shared through Redis (`cache.backend: redis` with `cache.semantic`): what one gateway
/// stores, every gateway of the fleet finds, while each searches its own in-process copy.
///
/// In Redis, under `redis.prefix`:
/// - `semantic:entry:<id>`: the entry (`SemanticEntry.encoded`), expiring with its TTL;
/// - `semantic:lru`: a sorted set of ids by last use, trimmed to `max_entries` (fleet-wide least recently used);
/// - `semantic:log`: a stream of `add` and `forget` events, capped at about 100,000.
///
/// A gateway loads the most recently used entries when it starts, then follows the stream (polled every 100 ms),
/// adding what others store and dropping what they forget or evict. Redis failures never fail a request: the
/// gateway keeps answering from what it holds, logs the outage once a minute, and resumes following.
final class RedisSemanticSharing: SemanticSharing {
    let client: RedisClient
    let store: SemanticStore
    let logger: Logger
    let outage = OutageLog(name: "redis semantic cache")
    /// The settings in force (the snapshot's `cache.semantic`), read at each step.
    let settings: @Sendable () -> SemanticCacheSettings?
    private let entryPrefix: String
    private let lruKey: String
    private let logKey: String
    private let follower = NIOLockedValueBox<Task<Void, Never>?>(nil)
    /// How often the stream is read when it had nothing new.
    let pollInterval: Duration = .milliseconds(100)

    init(client: RedisClient, prefix: String, store: SemanticStore, logger: Logger, settings: @escaping @Sendable () -> SemanticCacheSettings?) {
        self.client = client
        self.store = store
        self.logger = logger
        self.settings = settings
        self.entryPrefix = prefix + "semantic:entry:"
        self.lruKey = prefix + "semantic:lru"
        self.logKey = prefix + "semantic:log"
    }

    /// Adds the entry, marks it used, logs `add`, and evicts the fleet's least recently used beyond `ARGV[3]`,
    /// logging a `forget` for each.
    static let publishScript = RedisScript(
        """
        redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'op', 'add', 'id', ARGV[1])
        local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
        if over > 0 then
          local old = redis.call('ZPOPMIN', KEYS[1], over)
          for i = 1, #old, 2 do
            redis.call('DEL', ARGV[4] .. old[i])
            redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'op', 'forget', 'id', old[i])
          end
        end
        return over
        """)

    /// Removes the entry and logs `forget`; returns 1 when Redis had it.
    static let forgetScript = RedisScript(
        """
        local removed = redis.call('DEL', ARGV[2] .. ARGV[1]) + redis.call('ZREM', KEYS[1], ARGV[1])
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'op', 'forget', 'id', ARGV[1])
        if removed > 0 then return 1 end
        return 0
        """)

    // MARK: - SemanticSharing

    func publish(_ entry: SemanticEntry, maxEntries: Int) async {
        let id = SemanticEntry.describe(entry.id)
        let now = UnixTime.nowMicros() / 1000
        do {
            try await client.set(entryPrefix + id, entry.encoded(), ttl: .milliseconds(max(1, entry.expiresAtMillis - now)))
            let reply = try await client.evaluate(
                Self.publishScript, keys: [lruKey, logKey], arguments: [id, String(now), String(max(1, maxEntries)), entryPrefix])
            if case .error(let message) = reply { throw RedisError(.server, message) }
            outage.succeeded(logger: logger)
        } catch {
            outage.failed(error, logger: logger, consequence: "semantic cache entries are kept in this gateway only")
        }
    }

    func touched(_ entry: SemanticEntry) {
        let (client, key, id) = (client, lruKey, SemanticEntry.describe(entry.id))
        Task(executorPreference: TaskPlacement.preferredExecutor) {
            _ = try? await client.send("ZADD", key, "XX", String(UnixTime.nowMicros() / 1000), id)
        }
    }

    func forget(_ id: UInt64) async -> Bool {
        do {
            let reply = try await client.evaluate(Self.forgetScript, keys: [lruKey, logKey], arguments: [SemanticEntry.describe(id), entryPrefix])
            return reply.integer == 1
        } catch {
            outage.failed(error, logger: logger, consequence: "an entry could not be forgotten in the other gateways")
            return false
        }
    }

    // MARK: - Following the fleet

    /// Starts loading and following the fleet's entries, once; `stop` ends it.
    func startFollowing() {
        follower.withLockedValue { task in
            guard task == nil else { return }
            task = Task(executorPreference: TaskPlacement.preferredExecutor) { [self] in await follow() }
        }
    }

    /// Stops following (at shutdown).
    func stop() {
        follower.withLockedValue { $0?.cancel() }
    }

    private func follow() async {
        var position: String?
        while !Task.isCancelled {
            do {
                if position == nil { position = try await load() }
                if let next = try await readEvents(after: position!) {
                    position = next
                } else {
                    try await Task.sleep(for: pollInterval)
                }
                outage.succeeded(logger: logger)
            } catch {
                if Task.isCancelled { return }
                outage.failed(error, logger: logger, consequence: "this gateway does not see the semantic cache entries others store meanwhile")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Loads the most recently used entries (up to `max_entries`), oldest first so the local order matches;
    /// returns the stream position to follow from (taken before loading, so nothing stored meanwhile is missed).
    private func load() async throws -> String {
        let last = try await client.send("XREVRANGE", logKey, "+", "-", "COUNT", "1")
        let position = last.array?.first?.array?.first?.string ?? "0-0"
        let limit = settings()?.maxEntries ?? 0
        guard limit > 0 else { return position }
        let ids = try await client.send("ZREVRANGE", lruKey, "0", String(limit - 1)).array ?? []
        for id in ids.reversed() {
            guard let text = id.string else { continue }
            try await fetch(text, maxEntries: limit)
        }
        return position
    }

    /// Applies the events after `position`; returns the new position, or nil when there were none.
    private func readEvents(after position: String) async throws -> String? {
        let reply = try await client.send("XREAD", "COUNT", "256", "STREAMS", logKey, position)
        guard let events = reply.array?.first?.array?.dropFirst().first?.array, !events.isEmpty else { return nil }
        var next = position
        for event in events {
            guard let parts = event.array, parts.count == 2, let eventID = parts[0].string, let fields = parts[1].array else { continue }
            next = eventID
            var values: [String: String] = [:]
            for pair in stride(from: 0, to: fields.count - 1, by: 2) {
                if let name = fields[pair].string, let value = fields[pair + 1].string { values[name] = value }
            }
            guard let idText = values["id"], let id = SemanticEntry.id(idText) else { continue }
            switch values["op"] {
            case "add" where store.entry(id) == nil: try await fetch(idText, maxEntries: settings()?.maxEntries ?? 0)
            case "forget": store.forget(id)
            default: break
            }
        }
        return next
    }

    /// Reads one entry from Redis into this gateway's store; an entry gone (expired) or unreadable is skipped.
    private func fetch(_ id: String, maxEntries: Int) async throws {
        guard maxEntries > 0, let bytes = try await client.get(entryPrefix + id) else { return }
        guard let entry = SemanticEntry(encoded: bytes), SemanticEntry.describe(entry.id) == id else {
            logger.warning("an unreadable semantic cache entry in Redis was skipped", metadata: ["entry": "\(id)"])
            return
        }
        store.insert(entry, maxEntries: maxEntries)
    }
}

// MARK: - Stored form

extension SemanticEntry {
    private static let formTag = Array("llm-gateway-semantic/1\n".utf8)

    /// The stored form: a tag line, a JSON line (id, partition, expiry, dimensions), the vector's little-endian
    /// float32 values, then the answer's own stored form (`CachedAnswer.encoded`).
    func encoded() -> [UInt8] {
        let about: JSON = [
            "id": .string(Self.describe(id)), "partition": .string(partition), "expires_at_ms": .int(expiresAtMillis),
            "dimensions": .int(Int64(vector.count)),
        ]
        var bytes = Self.formTag + about.bytes() + [UInt8(ascii: "\n")]
        bytes.reserveCapacity(bytes.count + vector.count * 4 + answer.completionText.count + 256)
        for value in vector { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes + answer.encoded()
    }

    /// Reads the stored form back, checking every part (Redis replies are untrusted); nil when anything is off.
    init?(encoded bytes: [UInt8]) {
        guard bytes.starts(with: Self.formTag) else { return nil }
        let rest = bytes[Self.formTag.count...]
        guard let newline = rest.firstIndex(of: UInt8(ascii: "\n")), let about = try? JSON.parse(rest[..<newline]),
            let idText = about["id"]?.stringValue, let id = Self.id(idText), let partition = about["partition"]?.stringValue,
            let expires = about["expires_at_ms"]?.intValue, let dimensions = about["dimensions"]?.intValue, dimensions > 0, dimensions <= 65_536
        else { return nil }
        let vectorStart = rest.index(after: newline)
        guard rest.endIndex - vectorStart > dimensions * 4 else { return nil }
        var vector: [Float] = []
        vector.reserveCapacity(dimensions)
        for offset in 0..<dimensions {
            let start = vectorStart + offset * 4
            let bits = UInt32(rest[start]) | UInt32(rest[start + 1]) << 8 | UInt32(rest[start + 2]) << 16 | UInt32(rest[start + 3]) << 24
            vector.append(Float(bitPattern: bits))
        }
        guard let unit = VectorIndex.normalised(vector, dimensions: dimensions),
            let answer = CachedAnswer(encoded: Array(rest[(vectorStart + dimensions * 4)...]))
        else { return nil }
        self.init(id: id, partition: partition, vector: unit, answer: answer, expiresAtMillis: Int64(expires))
    }
}
