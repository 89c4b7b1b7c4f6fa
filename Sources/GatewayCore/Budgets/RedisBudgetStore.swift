/// Budget counters in Redis, so every gateway of a fleet sees one budget: one hash per counter (spend per slot
/// `s:<slot>`, reservations `r:<id>` = `<amount>:<expiry ms>`, the seed mark `seeded`), and one index hash per
/// budget and window listing its buckets. Each call is one atomic Lua script (EVALSHA, falling back to EVAL).
/// Keys expire a window after their last use.
public final class RedisBudgetStore: BudgetStore {
    private let client: RedisClient
    private let prefix: String

    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix + "budget:"
    }

    /// The level of counter `key`, pruning slots older than `oldest` and reservations expired at `now`.
    private static let levelFunction = """
        local function level(key, oldest, now)
          local all = redis.call('HGETALL', key)
          local spent, reserved = 0, 0
          for i = 1, #all, 2 do
            local field, value = all[i], all[i + 1]
            local kind = string.sub(field, 1, 2)
            if kind == 's:' then
              if tonumber(string.sub(field, 3)) < oldest then redis.call('HDEL', key, field) else spent = spent + tonumber(value) end
            elseif kind == 'r:' then
              local colon = string.find(value, ':', 1, true)
              if colon == nil or tonumber(string.sub(value, colon + 1)) <= now then
                redis.call('HDEL', key, field)
              else
                reserved = reserved + tonumber(string.sub(value, 1, colon - 1))
              end
            end
          end
          return spent, reserved
        end
        """

    /// KEYS: n counters, then their n index hashes. ARGV: amount, id, expiry, now, n, then for each counter: limit,
    /// hard (1|0), oldest slot, ttl ms, bucket digest, bucket description. Returns {1, spent, reserved, …} or
    /// {0, index, spent, reserved}.
    static let reserveScript = RedisScript(
        levelFunction + """

        local amount, id, expiry, now, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
        local result = {1}
        for i = 1, n do
          local base = 5 + (i - 1) * 6
          local spent, reserved = level(KEYS[i], tonumber(ARGV[base + 3]), now)
          if ARGV[base + 2] == '1' and spent + reserved + amount > tonumber(ARGV[base + 1]) then
            return {0, i - 1, spent, reserved}
          end
          table.insert(result, spent)
          table.insert(result, reserved + amount)
        end
        for i = 1, n do
          local base = 5 + (i - 1) * 6
          redis.call('HSET', KEYS[i], 'r:' .. id, ARGV[1] .. ':' .. expiry)
          redis.call('PEXPIRE', KEYS[i], ARGV[base + 4])
          redis.call('HSET', KEYS[n + i], ARGV[base + 5], ARGV[base + 6])
          redis.call('PEXPIRE', KEYS[n + i], ARGV[base + 4])
        end
        return result
        """)

    /// KEYS: n counters, then their n index hashes. ARGV: id ('' for none), amount, now, n, mode ('settle' |
    /// 'seed'), then for each counter: current slot, oldest slot, ttl ms, bucket digest, bucket description.
    /// Returns {spent, reserved, …}.
    static let settleScript = RedisScript(
        levelFunction + """

        local id, amount, now, n, mode = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
        local result = {}
        for i = 1, n do
          local base = 5 + (i - 1) * 5
          if mode == 'seed' then
            if redis.call('HSETNX', KEYS[i], 'seeded', '1') == 1 and amount > 0 then
              redis.call('HINCRBY', KEYS[i], 's:' .. ARGV[base + 1], amount)
            end
          else
            if id ~= '' then redis.call('HDEL', KEYS[i], 'r:' .. id) end
            if amount > 0 then redis.call('HINCRBY', KEYS[i], 's:' .. ARGV[base + 1], amount) end
          end
          redis.call('PEXPIRE', KEYS[i], ARGV[base + 3])
          redis.call('HSET', KEYS[n + i], ARGV[base + 4], ARGV[base + 5])
          redis.call('PEXPIRE', KEYS[n + i], ARGV[base + 3])
          local spent, reserved = level(KEYS[i], tonumber(ARGV[base + 2]), now)
          table.insert(result, spent)
          table.insert(result, reserved)
        end
        return result
        """)

    /// KEYS: the index hash. ARGV: now, oldest slot, prefix of counter keys, digest ('' for all), reset (1|0).
    /// Returns {digest, description, spent, reserved, …}.
    static let listScript = RedisScript(
        levelFunction + """

        local now, oldest, keyPrefix, only, reset = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
        local entries = redis.call('HGETALL', KEYS[1])
        local result = {}
        for i = 1, #entries, 2 do
          local digest = entries[i]
          if only == '' or only == digest then
            local key = keyPrefix .. digest
            if reset == '1' then
              redis.call('DEL', key)
              redis.call('HSET', key, 'seeded', '1')
              redis.call('PEXPIRE', key, redis.call('PTTL', KEYS[1]))
            end
            local spent, reserved = level(key, oldest, now)
            table.insert(result, digest)
            table.insert(result, entries[i + 1])
            table.insert(result, spent)
            table.insert(result, reserved)
          end
        end
        return result
        """)

    private func key(_ counter: BudgetCounter) -> String { prefix + counter.storageKey }
    private func indexKey(_ budget: String, _ span: BudgetSpan) -> String { prefix + "\(budget):\(span.storageID):index" }

    /// How long a counter is kept after its last use: to its window's end, and one window more for a rolling one
    /// (at least a minute).
    private static func ttlMillis(_ span: BudgetSpan, nowMillis: Int64) -> String {
        String(max(60_000, span.endMillis - nowMillis + (span.endMillis - span.startMillis)))
    }

    private func keys(_ counters: [BudgetCounter]) -> [String] {
        counters.map(key) + counters.map { indexKey($0.budget, $0.span) }
    }

    public func reserve(_ counters: [BudgetCounter], amount: Int64, id: String, expiresAtMillis: Int64, nowMillis: Int64) async throws
        -> BudgetReservation
    {
        var arguments = [String(amount), id, String(expiresAtMillis), String(nowMillis), String(counters.count)]
        for counter in counters {
            arguments += [
                String(counter.limitNanos), counter.hard ? "1" : "0", String(counter.span.oldestSlot),
                Self.ttlMillis(counter.span, nowMillis: nowMillis), counter.bucketDigest, Self.describe(counter.bucket),
            ]
        }
        let numbers = try Self.numbers(await client.evaluate(Self.reserveScript, keys: keys(counters), arguments: arguments))
        if numbers.first == 0, numbers.count == 4 {
            return .refused(index: Int(min(max(numbers[1], 0), Int64(counters.count - 1))), level: BudgetLevel(spentNanos: numbers[2], reservedNanos: numbers[3]))
        }
        guard numbers.count == 1 + 2 * counters.count else { throw RedisError(.protocol, "unexpected reply from the budget script") }
        return .held(Self.levels(numbers.dropFirst()))
    }

    public func settle(_ counters: [BudgetCounter], id: String?, amount: Int64, nowMillis: Int64) async throws -> [BudgetLevel] {
        try await run(counters, id: id, amount: amount, nowMillis: nowMillis, mode: "settle")
    }

    public func seed(_ counter: BudgetCounter, amount: Int64, nowMillis: Int64) async throws {
        _ = try await run([counter], id: nil, amount: amount, nowMillis: nowMillis, mode: "seed")
    }

    private func run(_ counters: [BudgetCounter], id: String?, amount: Int64, nowMillis: Int64, mode: String) async throws -> [BudgetLevel] {
        guard !counters.isEmpty else { return [] }
        var arguments = [id ?? "", String(amount), String(nowMillis), String(counters.count), mode]
        for counter in counters {
            arguments += [
                String(counter.span.currentSlot), String(counter.span.oldestSlot), Self.ttlMillis(counter.span, nowMillis: nowMillis),
                counter.bucketDigest, Self.describe(counter.bucket),
            ]
        }
        let numbers = try Self.numbers(await client.evaluate(Self.settleScript, keys: keys(counters), arguments: arguments))
        guard numbers.count == 2 * counters.count else { throw RedisError(.protocol, "unexpected reply from the budget script") }
        return Self.levels(numbers[...])
    }

    public func counters(of budget: String, span: BudgetSpan, nowMillis: Int64) async throws -> [BudgetCounterState] {
        try await list(budget, span: span, nowMillis: nowMillis, digest: nil, reset: false)
    }

    public func reset(_ budget: String, span: BudgetSpan, bucketDigest: String?, nowMillis: Int64) async throws -> Int {
        try await list(budget, span: span, nowMillis: nowMillis, digest: bucketDigest, reset: true).count
    }

    private func list(_ budget: String, span: BudgetSpan, nowMillis: Int64, digest: String?, reset: Bool) async throws -> [BudgetCounterState] {
        let reply = try await client.evaluate(
            Self.listScript, keys: [indexKey(budget, span)],
            arguments: [String(nowMillis), String(span.oldestSlot), prefix + "\(budget):\(span.storageID):", digest ?? "", reset ? "1" : "0"])
        guard let items = reply.array, items.count % 4 == 0 else { throw RedisError(.protocol, "unexpected reply from the budget script") }
        return stride(from: 0, to: items.count, by: 4).map { index in
            BudgetCounterState(
                budget: budget, bucket: Self.parse(items[index + 1].string ?? ""),
                storageKey: "\(budget):\(span.storageID):\(items[index].string ?? "")",
                level: BudgetLevel(spentNanos: Self.clamp(items[index + 2].integer), reservedNanos: Self.clamp(items[index + 3].integer)))
        }.sorted { $0.storageKey < $1.storageKey }
    }

    // MARK: Replies (untrusted like any input)

    private static func numbers(_ reply: RedisValue) throws -> [Int64] {
        guard let items = reply.array else { throw RedisError(.protocol, "unexpected reply from the budget script") }
        return items.map { clamp($0.integer) }
    }

    /// A counter's number kept within 0…10¹⁵ nano-USD, so no arithmetic on it can trap.
    private static func clamp(_ value: Int64?) -> Int64 { min(max(value ?? 0, 0), 1_000_000_000_000_000) }

    private static func levels(_ numbers: ArraySlice<Int64>) -> [BudgetLevel] {
        stride(from: numbers.startIndex, to: numbers.endIndex, by: 2).map { BudgetLevel(spentNanos: numbers[$0], reservedNanos: numbers[$0 + 1]) }
    }

    /// A bucket as the index stores it: JSON of its values.
    static func describe(_ bucket: [BudgetBucketValue]) -> String {
        JSON.array(bucket.map { JSON.object(["dimension": .string($0.dimension), "value": .string($0.value)]) }).serialized()
    }

    static func parse(_ text: String) -> [BudgetBucketValue] {
        guard let items = (try? JSON.parse(Array(text.utf8)))?.arrayValue else { return [] }
        return items.compactMap { item in
            guard let dimension = item["dimension"]?.stringValue, let value = item["value"]?.stringValue else { return nil }
            return BudgetBucketValue(dimension: dimension, value: value)
        }
    }
}
