/// Entries in least-recently-used order with a TTL each, every operation O(1): entries live in an array of slots
/// linked into a recency list by index, found through a dictionary. Not thread-safe on its own: its owner keeps it
/// under a lock (`MemoryCache`, `SemanticStore`).
struct LRUStorage<Key: Hashable, Value> {
    struct Slot {
        var key: Key
        var answer: Value
        var bytes: Int
        var expires: ContinuousClock.Instant
        /// Neighbour towards the most recently used end, or `none`.
        var newer: Int
        /// Neighbour towards the least recently used end, or `none`.
        var older: Int
    }

    static var none: Int { -1 }

    var slots: [Slot?] = []
    var freeSlots: [Int] = []
    var index: [Key: Int] = [:]
    /// Most recently used.
    var head = none
    /// Least recently used.
    var tail = none
    var stats = CacheStats()

    /// The live value under `key`, marked most recently used; an expired one is dropped (nil).
    mutating func get(_ key: Key, now: ContinuousClock.Instant) -> Value? {
        guard let position = index[key], let slot = slots[position] else {
            stats.misses += 1
            return nil
        }
        if slot.expires <= now {
            release(position)
            stats.expirations += 1
            stats.misses += 1
            return nil
        }
        unlink(position)
        pushFront(position)
        stats.hits += 1
        return slot.answer
    }

    mutating func set(_ key: Key, _ answer: Value, bytes: Int, expires: ContinuousClock.Instant) {
        if let position = index[key] {
            stats.bytes += bytes - slots[position]!.bytes
            slots[position]!.answer = answer
            slots[position]!.bytes = bytes
            slots[position]!.expires = expires
            unlink(position)
            pushFront(position)
            return
        }
        let slot = Slot(key: key, answer: answer, bytes: bytes, expires: expires, newer: Self.none, older: Self.none)
        let position: Int
        if let free = freeSlots.popLast() {
            slots[free] = slot
            position = free
        } else {
            slots.append(slot)
            position = slots.count - 1
        }
        index[key] = position
        stats.entries += 1
        stats.bytes += bytes
        pushFront(position)
    }

    /// Drops tail entries until both bounds hold; expired ones count as expirations, live ones as evictions.
    /// - Returns: the entries dropped.
    mutating func evict(maxEntries: Int, maxBytes: Int, now: ContinuousClock.Instant) -> [(key: Key, value: Value)] {
        var dropped: [(key: Key, value: Value)] = []
        while tail != Self.none, stats.entries > maxEntries || stats.bytes > maxBytes {
            let slot = slots[tail]!
            release(tail)
            dropped.append((slot.key, slot.answer))
            if slot.expires <= now { stats.expirations += 1 } else { stats.evictions += 1 }
        }
        return dropped
    }

    /// Drops the entry under `key`; returns its value.
    mutating func remove(_ key: Key) -> Value? {
        guard let position = index[key], let slot = slots[position] else { return nil }
        release(position)
        return slot.answer
    }

    /// The value under `key`, expired or not, leaving its place in the recency list alone.
    func peek(_ key: Key) -> Value? {
        index[key].flatMap { slots[$0]?.answer }
    }

    /// The entries from the most recently used, at most `limit` of them.
    func mostRecent(_ limit: Int) -> [(key: Key, value: Value, expires: ContinuousClock.Instant)] {
        var entries: [(key: Key, value: Value, expires: ContinuousClock.Instant)] = []
        var position = head
        while position != Self.none, entries.count < limit, let slot = slots[position] {
            entries.append((slot.key, slot.answer, slot.expires))
            position = slot.older
        }
        return entries
    }

    mutating func removeAll() -> Int {
        let count = stats.entries
        slots = []
        freeSlots = []
        index = [:]
        head = Self.none
        tail = Self.none
        stats.entries = 0
        stats.bytes = 0
        return count
    }

    /// Unlinks the slot at `position`, frees it and forgets its key.
    private mutating func release(_ position: Int) {
        unlink(position)
        let slot = slots[position]!
        index[slot.key] = nil
        slots[position] = nil
        freeSlots.append(position)
        stats.entries -= 1
        stats.bytes -= slot.bytes
    }

    private mutating func unlink(_ position: Int) {
        let newer = slots[position]!.newer
        let older = slots[position]!.older
        if newer != Self.none { slots[newer]!.older = older } else { head = older }
        if older != Self.none { slots[older]!.newer = newer } else { tail = newer }
        slots[position]!.newer = Self.none
        slots[position]!.older = Self.none
    }

    private mutating func pushFront(_ position: Int) {
        slots[position]!.older = head
        slots[position]!.newer = Self.none
        if head != Self.none { slots[head]!.newer = position }
        head = position
        if tail == Self.none { tail = position }
    }
}

extension LRUStorage: Sendable where Key: Sendable, Value: Sendable {}
extension LRUStorage.Slot: Sendable where Key: Sendable, Value: Sendable {}
