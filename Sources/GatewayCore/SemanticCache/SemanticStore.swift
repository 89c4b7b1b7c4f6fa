import NIOConcurrencyHelpers

/// One answer of the semantic cache, and where it is found.
struct SemanticEntry: Sendable {
    /// The entry's id (`ctl cache forget` takes its text, `SemanticEntry.describe`).
    let id: UInt64
    let partition: String
    /// The normalised vector of the user turns it answered.
    let vector: [Float]
    let answer: CachedAnswer
    /// When it stops answering, in milliseconds since 1970 (the same instant for every gateway sharing it).
    let expiresAtMillis: Int64

    /// The id as shown and taken by `ctl cache` and `POST /cache/semantic/forget`: 16 hex digits.
    static func describe(_ id: UInt64) -> String {
        let hex = String(id, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Reads an id as `describe` writes it.
    static func id(_ text: String) -> UInt64? {
        guard text.count == 16 else { return nil }
        return UInt64(text, radix: 16)
    }
}

/// Counters of the semantic cache.
public struct SemanticCacheStats: Sendable, Equatable {
    public var entries = 0
    public var partitions = 0
    public var hits = 0
    public var misses = 0
    public var evictions = 0
    public var expirations = 0
    /// Lookups where the embedder failed or was slower than `timeout`.
    public var embedderFailures = 0
    /// Bytes per entry held by the vector indexes (vectors, neighbour lists, ids), for reports.
    public var indexBytesPerEntry = 0
}

/// The semantic cache's entries in this process: one vector index per partition (`VectorIndex`), the answers in
/// least-recently-used order across all partitions, bounded by `max_entries`, each with its TTL.
///
/// A lookup searches only its partition for the nearest vector at or above the threshold; an expired match is
/// dropped and the search repeated. Inserting past `max_entries` evicts the least recently used entries, wherever
/// they are. Every operation runs under one lock; a search of 100,000 entries takes well under a millisecond
/// (`bench/semantic-index`, docs/performance.md).
final class SemanticStore: Sendable {
    private struct State {
        var entries = LRUStorage<UInt64, SemanticEntry>()
        var indexes: [String: VectorIndex] = [:]
        var stats = SemanticCacheStats()
    }

    private let state = NIOLockedValueBox(State())
    private let clock: @Sendable () -> ContinuousClock.Instant
    private let wallClock: @Sendable () -> Int64

    /// - Parameters:
    ///   - clock: the clock the LRU's expiry is measured on; `wallClock` the milliseconds since 1970 entries carry.
    init(
        clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
        wallClock: @escaping @Sendable () -> Int64 = { UnixTime.nowMicros() / 1000 }
    ) {
        self.clock = clock
        self.wallClock = wallClock
    }

    /// The nearest live entry of `partition` at or above `threshold`, marked most recently used.
    func nearest(partition: String, to vector: [Float], threshold: Double) -> (entry: SemanticEntry, similarity: Double)? {
        let now = clock()
        let nowMillis = wallClock()
        return state.withLockedValue { state in
            guard let index = state.indexes[partition] else {
                state.stats.misses += 1
                return nil
            }
            while let match = index.nearest(to: vector, minimumSimilarity: Float(threshold)) {
                if let entry = state.entries.get(match.id, now: now), entry.expiresAtMillis > nowMillis {
                    state.stats.hits += 1
                    return (entry, Double(match.similarity))
                }
                // Expired (here or, for an entry another gateway shared, by its own clock): dropped, search again.
                _ = state.entries.remove(match.id)
                index.remove(match.id)
                state.stats.expirations += 1
            }
            state.stats.misses += 1
            return nil
        }
    }

    /// Keeps `entry` (replacing one with the same id), then evicts the least recently used beyond `maxEntries`.
    /// - Returns: whether it was kept (a vector of the wrong dimension for its partition, or not finite, is not).
    @discardableResult
    func insert(_ entry: SemanticEntry, maxEntries: Int) -> Bool {
        let now = clock()
        let ttl = Duration.milliseconds(max(0, entry.expiresAtMillis - wallClock()))
        guard ttl > .zero else { return false }
        return state.withLockedValue { state in
            let index = state.indexes[entry.partition]
                ?? VectorIndex(dimensions: entry.vector.count, exactScanLimit: VectorIndex.exactScanLimit(forDimensions: entry.vector.count))
            guard index.dimensions == entry.vector.count, index.insert(entry.id, vector: entry.vector) else { return false }
            state.indexes[entry.partition] = index
            if let replaced = state.entries.remove(entry.id), replaced.partition != entry.partition {
                Self.unindex(replaced, in: &state)
            }
            state.entries.set(entry.id, entry, bytes: 0, expires: now + ttl)
            let before = (state.entries.stats.evictions, state.entries.stats.expirations)
            for dropped in state.entries.evict(maxEntries: max(1, maxEntries), maxBytes: .max, now: now) {
                Self.unindex(dropped.value, in: &state)
            }
            state.stats.evictions += state.entries.stats.evictions - before.0
            state.stats.expirations += state.entries.stats.expirations - before.1
            return true
        }
    }

    /// Removes the entry `id`; returns it when there was one.
    @discardableResult
    func forget(_ id: UInt64) -> SemanticEntry? {
        state.withLockedValue { state in
            guard let entry = state.entries.remove(id) else { return nil }
            Self.unindex(entry, in: &state)
            return entry
        }
    }

    /// Removes every entry; returns how many there were.
    @discardableResult
    func removeAll() -> Int {
        state.withLockedValue { state in
            let count = state.entries.stats.entries
            _ = state.entries.removeAll()
            state.indexes = [:]
            return count
        }
    }

    /// Counts a lookup the embedder could not serve.
    func countEmbedderFailure() {
        state.withLockedValue { $0.stats.embedderFailures += 1 }
    }

    /// The counters now.
    var stats: SemanticCacheStats {
        state.withLockedValue { state in
            var stats = state.stats
            stats.entries = state.entries.stats.entries
            stats.partitions = state.indexes.count
            stats.indexBytesPerEntry = state.indexes.values.first?.bytesPerEntry ?? 0
            return stats
        }
    }

    /// The most recently used entries, at most `limit`.
    func recent(_ limit: Int) -> [SemanticEntry] {
        state.withLockedValue { $0.entries.mostRecent(limit).map(\.value) }
    }

    /// The entry `id`, without marking it used.
    func entry(_ id: UInt64) -> SemanticEntry? {
        state.withLockedValue { $0.entries.peek(id) }
    }

    private static func unindex(_ entry: SemanticEntry, in state: inout State) {
        guard let index = state.indexes[entry.partition] else { return }
        index.remove(entry.id)
        if index.count == 0 { state.indexes[entry.partition] = nil }
    }
}
