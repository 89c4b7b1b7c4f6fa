/// Shares semantic cache entries between gateways (`RedisSemanticSharing`): what one stores, the others find.
protocol SemanticSharing: Sendable {
    /// Stores `entry` for every gateway, and evicts the fleet's least recently used beyond `maxEntries`.
    func publish(_ entry: SemanticEntry, maxEntries: Int) async
    /// Marks `entry` used (for the fleet's least-recently-used order), without waiting.
    func touched(_ entry: SemanticEntry)
    /// Removes the entry `id` from every gateway; returns whether the fleet had it.
    func forget(_ id: UInt64) async -> Bool
    /// Starts following the fleet's entries, if not yet (a reload may have added `cache.semantic`).
    func startFollowing()
    /// Stops following (at shutdown).
    func stop()
}
