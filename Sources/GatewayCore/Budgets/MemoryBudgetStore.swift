import NIOConcurrencyHelpers

/// Budget counters in this process, under one lock: for a single gateway. Spend survives a restart because the
/// gateway rebuilds it from the request log at start (`BudgetBook.rebuild`).
public final class MemoryBudgetStore: BudgetStore {
    private struct Counter {
        var budget: String
        var bucket: [BudgetBucketValue]
        var spanID: String
        /// Spend per slot.
        var slots: [Int64: Int64] = [:]
        /// Reservations: amount and expiry.
        var reservations: [String: (amount: Int64, expiresAt: Int64)] = [:]
        var seeded = false
        /// When the counter can be forgotten: its span's end (a rolling window's: one window after its last spend).
        var forgetAt: Int64

        /// The level now, forgetting slots out of the window and expired reservations (a new dictionary only when
        /// there is one to forget: this runs twice per request).
        mutating func level(oldestSlot: Int64, nowMillis: Int64) -> BudgetLevel {
            var level = BudgetLevel()
            var stale = false
            for (slot, amount) in slots {
                if slot < oldestSlot { stale = true } else { level.spentNanos = level.spentNanos.addingSaturated(amount) }
            }
            if stale { slots = slots.filter { $0.key >= oldestSlot } }
            var expired = false
            for reservation in reservations.values {
                if reservation.expiresAt <= nowMillis {
                    expired = true
                } else {
                    level.reservedNanos = level.reservedNanos.addingSaturated(reservation.amount)
                }
            }
            if expired { reservations = reservations.filter { $0.value.expiresAt > nowMillis } }
            return level
        }
    }

    private struct State {
        var counters: [String: Counter] = [:]
        var operations = 0

        /// Runs `body` on the stored counter in place (a copy would copy its dictionaries at the first change).
        mutating func update<Result>(_ counter: BudgetCounter, _ body: (inout Counter) -> Result) -> Result {
            if counters[counter.storageKey] == nil {
                counters[counter.storageKey] = Counter(
                    budget: counter.budget, bucket: counter.bucket, spanID: counter.span.storageID, forgetAt: counter.span.endMillis)
            }
            return body(&counters[counter.storageKey]!)
        }

        /// Forgets counters whose span is over, every 4096 operations.
        mutating func sweep(nowMillis: Int64) {
            operations &+= 1
            guard operations % 4096 == 0 else { return }
            counters = counters.filter { $0.value.forgetAt > nowMillis }
        }
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    public func reserve(_ counters: [BudgetCounter], amount: Int64, id: String, expiresAtMillis: Int64, nowMillis: Int64) async throws
        -> BudgetReservation
    {
        reserveNow(counters, amount: amount, id: id, expiresAtMillis: expiresAtMillis, nowMillis: nowMillis)
    }

    public func settle(_ counters: [BudgetCounter], id: String?, amount: Int64, nowMillis: Int64) async throws -> [BudgetLevel] {
        settleNow(counters, id: id, amount: amount, nowMillis: nowMillis)
    }

    /// `reserve`, without a suspension point: the budget step calls it directly, as it does `settleNow`.
    func reserveNow(_ counters: [BudgetCounter], amount: Int64, id: String, expiresAtMillis: Int64, nowMillis: Int64) -> BudgetReservation {
        state.withLockedValue { state in
            state.sweep(nowMillis: nowMillis)
            var levels: [BudgetLevel] = []
            levels.reserveCapacity(counters.count)
            for (index, counter) in counters.enumerated() {
                let level = state.update(counter) { $0.level(oldestSlot: counter.span.oldestSlot, nowMillis: nowMillis) }
                if counter.hard, level.totalNanos.addingSaturated(amount) > counter.limitNanos {
                    return .refused(index: index, level: level)
                }
                levels.append(BudgetLevel(spentNanos: level.spentNanos, reservedNanos: level.reservedNanos.addingSaturated(amount)))
            }
            for counter in counters { state.update(counter) { $0.reservations[id] = (amount, expiresAtMillis) } }
            return .held(levels)
        }
    }

    func settleNow(_ counters: [BudgetCounter], id: String?, amount: Int64, nowMillis: Int64) -> [BudgetLevel] {
        state.withLockedValue { state in
            counters.map { counter in
                state.update(counter) { stored in
                    if let id { stored.reservations[id] = nil }
                    if amount > 0 {
                        stored.slots[counter.span.currentSlot, default: 0] = stored.slots[counter.span.currentSlot, default: 0].addingSaturated(amount)
                        stored.forgetAt = max(stored.forgetAt, counter.span.endMillis + (counter.span.endMillis - counter.span.startMillis))
                    }
                    return stored.level(oldestSlot: counter.span.oldestSlot, nowMillis: nowMillis)
                }
            }
        }
    }

    public func seed(_ counter: BudgetCounter, amount: Int64, nowMillis: Int64) async throws {
        state.withLockedValue { state in
            state.update(counter) { stored in
                guard !stored.seeded else { return }
                stored.seeded = true
                if amount > 0 {
                    stored.slots[counter.span.currentSlot] = stored.slots[counter.span.currentSlot, default: 0].addingSaturated(amount)
                }
            }
        }
    }

    public func counters(of budget: String, span: BudgetSpan, nowMillis: Int64) async throws -> [BudgetCounterState] {
        state.withLockedValue { state in
            state.counters.compactMap { key, counter -> BudgetCounterState? in
                guard counter.budget == budget, counter.spanID == span.storageID else { return nil }
                var counter = counter
                let level = counter.level(oldestSlot: span.oldestSlot, nowMillis: nowMillis)
                state.counters[key] = counter
                return BudgetCounterState(budget: budget, bucket: counter.bucket, storageKey: key, level: level)
            }.sorted { $0.storageKey < $1.storageKey }
        }
    }

    public func reset(_ budget: String, span: BudgetSpan, bucketDigest: String?, nowMillis: Int64) async throws -> Int {
        state.withLockedValue { state in
            let doomed = state.counters.filter { key, counter in
                counter.budget == budget && counter.spanID == span.storageID && (bucketDigest.map { key.hasSuffix(":" + $0) } ?? true)
            }
            for key in doomed.keys {
                state.counters[key]?.slots = [:]
                state.counters[key]?.reservations = [:]
                state.counters[key]?.seeded = true
            }
            return doomed.count
        }
    }
}
