import NIOConcurrencyHelpers

/// Counters of a `MemoryCache`.
public struct CacheStats: Sendable, Equatable {
    /// Entries held now (expired ones not yet noticed included).
    public var entries: Int
    /// Bytes the entries take, as the cache counts them.
    public var bytes: Int
    /// Lookups that found a live entry.
    public var hits: Int
    /// Lookups that found nothing or an expired entry.
    public var misses: Int
    /// Entries dropped to make room (least recently used first).
    public var evictions: Int
    /// Entries dropped because their TTL had passed.
    public var expirations: Int

    public init(entries: Int = 0, bytes: Int = 0, hits: Int = 0, misses: Int = 0, evictions: Int = 0, expirations: Int = 0) {
        self.entries = entries
        self.bytes = bytes
        self.hits = hits
        self.misses = misses
        self.evictions = evictions
        self.expirations = expirations
    }
}

/// An in-process response cache: least-recently-used, bounded by entry count and by bytes, with a TTL per entry.
///
/// Every operation is O(1): entries live in an array of slots linked into a recency list by index, found through
/// a dictionary; evictions take the list's tail. An entry's size is computed once, when it is stored
/// (`CachedAnswer.approximateBytes` plus the key). An answer larger than `maxBytes` is not stored.
/// Expired entries are dropped when a lookup finds them or when they reach the tail.
///
/// ```swift
/// let cache = MemoryCache(settings: snapshot.config.cache)
/// await cache.set(key, answer, ttl: .seconds(3600))
/// ```
public final class MemoryCache: ResponseCacheBackend {
    private struct Bounds {
        var maxEntries: Int
        var maxBytes: Int
    }

    private let now: @Sendable () -> ContinuousClock.Instant
    private let storage: NIOLockedValueBox<LRUStorage>
    private let bounds: NIOLockedValueBox<Bounds>

    /// Most entries kept.
    public var maxEntries: Int { bounds.withLockedValue { $0.maxEntries } }
    /// Most bytes kept.
    public var maxBytes: Int { bounds.withLockedValue { $0.maxBytes } }

    /// - Parameters:
    ///   - maxEntries: most entries kept.
    ///   - maxBytes: most bytes kept; a single larger answer is not stored.
    ///   - now: the clock TTLs are measured on (tests inject their own).
    public init(maxEntries: Int, maxBytes: Int, now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.bounds = NIOLockedValueBox(Bounds(maxEntries: max(0, maxEntries), maxBytes: max(0, maxBytes)))
        self.now = now
        self.storage = NIOLockedValueBox(LRUStorage())
    }

    /// Changes the bounds (a reload of `cache.max_entries` / `cache.max_bytes`), evicting the least recently used
    /// entries until the cache fits.
    public func resize(maxEntries: Int, maxBytes: Int) {
        let bounds = Bounds(maxEntries: max(0, maxEntries), maxBytes: max(0, maxBytes))
        self.bounds.withLockedValue { $0 = bounds }
        let instant = now()
        storage.withLockedValue { $0.evict(maxEntries: bounds.maxEntries, maxBytes: bounds.maxBytes, now: instant) }
    }

    /// A cache bounded by `cache.max_entries` and `cache.max_bytes`.
    public convenience init(settings: CacheSettings, now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.init(maxEntries: settings.maxEntries, maxBytes: settings.maxBytes, now: now)
    }

    /// The counters now.
    public var stats: CacheStats {
        storage.withLockedValue { $0.stats }
    }

    public func get(_ key: String) async -> CachedAnswer? {
        lookup(key)
    }

    public func set(_ key: String, _ answer: CachedAnswer, ttl: Duration) async {
        store(key, answer, ttl: ttl)
    }

    public func flush() async -> Int? {
        removeAll()
    }

    // MARK: - Synchronous core

    /// The live answer under `key`, marking it most recently used.
    public func lookup(_ key: String) -> CachedAnswer? {
        let instant = now()
        return storage.withLockedValue { $0.get(key, now: instant) }
    }

    /// Stores `answer` under `key` until `ttl` has passed, evicting the least recently used entries as needed.
    /// A non-positive `ttl` or an answer larger than `maxBytes` stores nothing (and drops an older entry
    /// under `key`, which the caller meant to replace).
    public func store(_ key: String, _ answer: CachedAnswer, ttl: Duration) {
        let bytes = answer.approximateBytes + key.utf8.count
        let instant = now()
        let expires = instant + ttl
        let bounds = self.bounds.withLockedValue { $0 }
        let storable = ttl > .zero && bytes <= bounds.maxBytes && bounds.maxEntries > 0
        storage.withLockedValue { storage in
            guard storable else {
                storage.remove(key)
                return
            }
            storage.set(key, answer, bytes: bytes, expires: expires)
            storage.evict(maxEntries: bounds.maxEntries, maxBytes: bounds.maxBytes, now: instant)
        }
    }

    /// Removes every entry; returns how many there were. Counters other than entries and bytes are kept.
    @discardableResult
    public func removeAll() -> Int {
        storage.withLockedValue { $0.removeAll() }
    }
}

// MARK: - Storage

/// The entries and their recency list; not thread-safe on its own.
private struct LRUStorage {
    struct Slot {
        var key: String
        var answer: CachedAnswer
        var bytes: Int
        var expires: ContinuousClock.Instant
        /// Neighbour towards the most recently used end, or `none`.
        var newer: Int
        /// Neighbour towards the least recently used end, or `none`.
        var older: Int
    }

    static let none = -1

    var slots: [Slot?] = []
    var freeSlots: [Int] = []
    var index: [String: Int] = [:]
    /// Most recently used.
    var head = none
    /// Least recently used.
    var tail = none
    var stats = CacheStats()

    mutating func get(_ key: String, now: ContinuousClock.Instant) -> CachedAnswer? {
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

    mutating func set(_ key: String, _ answer: CachedAnswer, bytes: Int, expires: ContinuousClock.Instant) {
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
    mutating func evict(maxEntries: Int, maxBytes: Int, now: ContinuousClock.Instant) {
        while tail != Self.none, stats.entries > maxEntries || stats.bytes > maxBytes {
            let expired = slots[tail]!.expires <= now
            release(tail)
            if expired { stats.expirations += 1 } else { stats.evictions += 1 }
        }
    }

    mutating func remove(_ key: String) {
        if let position = index[key] { release(position) }
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
