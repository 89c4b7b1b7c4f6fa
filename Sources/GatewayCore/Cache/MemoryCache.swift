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
    private let storage: NIOLockedValueBox<LRUStorage<String, CachedAnswer>>
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
        storage.withLockedValue { _ = $0.evict(maxEntries: bounds.maxEntries, maxBytes: bounds.maxBytes, now: instant) }
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
                _ = storage.remove(key)
                return
            }
            storage.set(key, answer, bytes: bytes, expires: expires)
            _ = storage.evict(maxEntries: bounds.maxEntries, maxBytes: bounds.maxBytes, now: instant)
        }
    }

    /// Removes every entry; returns how many there were. Counters other than entries and bytes are kept.
    @discardableResult
    public func removeAll() -> Int {
        storage.withLockedValue { $0.removeAll() }
    }
}
