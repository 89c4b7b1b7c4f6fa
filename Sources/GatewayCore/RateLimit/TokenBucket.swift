/// A token bucket holding up to `capacity` units, refilled continuously at `capacity` per minute.
///
/// The balance can go below zero when a spend is corrected upwards afterwards (`adjust`): the debt is paid back
/// by the refill before anything else passes. Time is passed in, so the bucket is a plain value.
///
/// ```swift
/// var bucket = TokenBucket(capacity: 60, now: .now)   // 60 per minute, 1 per second, burst of 60
/// bucket.take(1, now: .now)                            // true while the balance lasts
/// ```
public struct TokenBucket: Sendable, Equatable {
    /// Most units held: the per-minute figure, which is also the burst.
    public private(set) var capacity: Double
    /// Units available at `updated` (negative while an over-spend is paid back).
    public private(set) var balance: Double
    /// When `balance` was last brought up to date.
    public private(set) var updated: ContinuousClock.Instant

    /// A full bucket.
    public init(capacity: Int, now: ContinuousClock.Instant) {
        self.capacity = Double(max(0, capacity))
        self.balance = self.capacity
        self.updated = now
    }

    /// Units added per second.
    public var refillPerSecond: Double { capacity / 60 }

    /// The balance at `now`, refill included.
    public func available(at now: ContinuousClock.Instant) -> Double {
        guard now > updated else { return balance }
        return min(capacity, balance + Self.seconds(now - updated) * refillPerSecond)
    }

    /// Brings the balance up to `now`.
    public mutating func refill(now: ContinuousClock.Instant) {
        balance = available(at: now)
        if now > updated { updated = now }
    }

    /// What a spend of `amount` must find in the bucket: all of it, or a full bucket when it exceeds the capacity
    /// (so a request bigger than the per-minute budget still passes now and then, and is paid back afterwards).
    public func required(for amount: Double) -> Double {
        min(amount, capacity)
    }

    /// Whether `amount` may be taken at `now`.
    public func allows(_ amount: Double, now: ContinuousClock.Instant) -> Bool {
        available(at: now) + Self.tolerance >= required(for: amount)
    }

    /// Takes `amount` when `allows` says so; returns whether it did.
    @discardableResult
    public mutating func take(_ amount: Double, now: ContinuousClock.Instant) -> Bool {
        refill(now: now)
        guard balance + Self.tolerance >= required(for: amount) else { return false }
        balance -= amount
        return true
    }

    /// Takes `delta` more (positive) or gives `-delta` back (negative, up to the capacity), without checking.
    public mutating func adjust(by delta: Double, now: ContinuousClock.Instant) {
        refill(now: now)
        balance = min(capacity, balance - delta)
    }

    /// Changes the capacity (a reloaded limit), keeping the balance within it.
    public mutating func resize(to capacity: Int, now: ContinuousClock.Instant) {
        refill(now: now)
        self.capacity = Double(max(0, capacity))
        balance = min(balance, self.capacity)
    }

    /// Seconds until `amount` may be taken (0 when it may now).
    public func secondsUntilAllowed(_ amount: Double, now: ContinuousClock.Instant) -> Double {
        secondsUntil(balance: required(for: amount), now: now)
    }

    /// Seconds until the bucket is full again.
    public func secondsUntilFull(now: ContinuousClock.Instant) -> Double {
        secondsUntil(balance: capacity, now: now)
    }

    private func secondsUntil(balance target: Double, now: ContinuousClock.Instant) -> Double {
        let missing = target - available(at: now)
        guard missing > Self.tolerance else { return 0 }
        guard refillPerSecond > 0 else { return .infinity }
        return missing / refillPerSecond
    }

    /// Rounding slack of the continuous refill, so six seconds at 1/6 per second make a whole unit.
    static let tolerance = 1e-9

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
