import Testing

@testable import GatewayCore

@Suite struct RateLimiterTests {
    /// `bucket.take`, callable inside `#expect`.
    func take(_ bucket: inout TokenBucket, _ amount: Double, now: ContinuousClock.Instant) -> Bool {
        bucket.take(amount, now: now)
    }

    // MARK: - Token bucket

    @Test func bucketStartsFullAndRefillsContinuously() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(capacity: 60, now: start)
        #expect(bucket.refillPerSecond == 1)
        #expect(bucket.available(at: start) == 60)
        #expect(take(&bucket, 60, now: start))
        #expect(bucket.available(at: start) == 0)
        #expect(!take(&bucket, 1, now: start))
        #expect(bucket.available(at: start + .milliseconds(500)) == 0.5)
        #expect(bucket.available(at: start + .seconds(30)) == 30)
        #expect(bucket.available(at: start + .seconds(600)) == 60)  // never above capacity
        #expect(bucket.secondsUntilFull(now: start) == 60)
        #expect(bucket.secondsUntilAllowed(10, now: start) == 10)
        #expect(take(&bucket, 1, now: start + .seconds(1)))
    }

    @Test func refillRateIsCapacityPerMinute() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(capacity: 10, now: start)
        #expect(take(&bucket, 10, now: start))
        // 10 per minute: one every 6 seconds, even with the rounding of 10/60.
        #expect(!bucket.allows(1, now: start + .seconds(5)))
        #expect(bucket.allows(1, now: start + .seconds(6)))
        #expect(abs(bucket.secondsUntilAllowed(1, now: start) - 6) < 1e-9)
    }

    @Test func burstUpToCapacity() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(capacity: 5, now: start)
        for _ in 0..<5 { #expect(take(&bucket, 1, now: start)) }
        #expect(!take(&bucket, 1, now: start))
    }

    @Test func adjustCanGoNegativeAndIsPaidBack() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(capacity: 60, now: start)
        #expect(take(&bucket, 50, now: start))
        bucket.adjust(by: 40, now: start)  // the answer cost 40 more than estimated
        #expect(bucket.balance == -30)
        #expect(!bucket.allows(1, now: start + .seconds(30)))
        #expect(bucket.secondsUntilAllowed(1, now: start) == 31)
        #expect(bucket.allows(1, now: start + .seconds(31)))
        bucket.adjust(by: -1000, now: start + .seconds(31))  // giving back never goes above capacity
        #expect(bucket.balance == 60)
    }

    @Test func amountAboveCapacityPassesOnlyWithAFullBucket() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(capacity: 100, now: start)
        #expect(take(&bucket, 150, now: start))
        #expect(bucket.balance == -50)
        #expect(!bucket.allows(150, now: start + .seconds(60)))
        #expect(abs(bucket.secondsUntilAllowed(150, now: start) - 90) < 1e-9)
        #expect(bucket.allows(150, now: start + .seconds(90)))
    }

    // MARK: - Memory rate limiter

    @Test func requestLimitRefusesWithRetryAfter() async throws {
        let clock = ManualClock()
        let limiter = MemoryRateLimiter(now: clock.reader)
        let limit = RateLimit(requestsPerMinute: 3)
        for expected in [2, 1, 0] {
            let decision = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 10)
            #expect(decision.allowed)
            #expect(decision.limit == 3)
            #expect(decision.remaining == expected)
            #expect(decision.retryAfterSeconds == 0)
        }
        let refused = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 10)
        #expect(!refused.allowed)
        #expect(refused.remaining == 0)
        #expect(refused.retryAfterSeconds == 20)  // one request refills in 60/3 s
        #expect(refused.resetSeconds == 60)
        clock.advance(.seconds(19))
        let stillRefused = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 10)
        #expect(!stillRefused.allowed)
        #expect(stillRefused.retryAfterSeconds == 1)
        clock.advance(.milliseconds(999))
        let almost = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 10)
        #expect(!almost.allowed)
        #expect(almost.retryAfterSeconds == 1)  // never 0 for a refusal
        clock.advance(.milliseconds(1))
        #expect(try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 10).allowed)
    }

    @Test func tokenLimitAloneFillsTheDecision() async throws {
        let clock = ManualClock()
        let limiter = MemoryRateLimiter(now: clock.reader)
        let limit = RateLimit(tokensPerMinute: 600)
        let first = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 500)
        #expect(first.allowed)
        #expect(first.limit == 600)
        #expect(first.remaining == 100)
        #expect(first.resetSeconds == 50)  // 500 tokens at 10 per second
        let refused = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 200)
        #expect(!refused.allowed)
        #expect(refused.remaining == 100)
        #expect(refused.retryAfterSeconds == 10)
    }

    @Test func bothBucketsMustAllowOrNothingIsTaken() async throws {
        let clock = ManualClock()
        let limiter = MemoryRateLimiter(now: clock.reader)
        let limit = RateLimit(requestsPerMinute: 10, tokensPerMinute: 1000)
        #expect(try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 900).allowed)
        // The token bucket refuses: the request bucket must keep its request.
        for _ in 0..<5 {
            let refused = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 500)
            #expect(!refused.allowed)
            #expect(refused.limit == 10)
            #expect(refused.remaining == 9)
            #expect(refused.retryAfterSeconds == 24)  // 400 tokens at 1000/60 per second
        }
        // A small request still fits both.
        let small = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 100)
        #expect(small.allowed)
        #expect(small.remaining == 8)

        // The request bucket refuses: the token bucket must keep its tokens.
        let tight = RateLimit(requestsPerMinute: 2, tokensPerMinute: 1000)
        #expect(try await limiter.acquire(key: "t", limit: tight, estimatedTokens: 0).allowed)
        #expect(try await limiter.acquire(key: "t", limit: tight, estimatedTokens: 0).allowed)
        #expect(try await !limiter.acquire(key: "t", limit: tight, estimatedTokens: 1000).allowed)
        clock.advance(.seconds(30))  // one request back; had the refusal taken 1000 tokens, only 500 would be
        #expect(try await limiter.acquire(key: "t", limit: tight, estimatedTokens: 1000).allowed)
    }

    @Test func retryAfterIsTheLongerWaitOfTheRefusingBuckets() async throws {
        let clock = ManualClock()
        let limiter = MemoryRateLimiter(now: clock.reader)
        let limit = RateLimit(requestsPerMinute: 1, tokensPerMinute: 60)
        #expect(try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 60).allowed)
        let refused = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 30)
        #expect(!refused.allowed)
        #expect(refused.retryAfterSeconds == 60)  // requests: 60 s; tokens: 30 s
    }

    @Test func settleTakesOrGivesBackTheDifference() async throws {
        let clock = ManualClock()
        let limiter = MemoryRateLimiter(now: clock.reader)
        let limit = RateLimit(tokensPerMinute: 1000)
        #expect(try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 800).allowed)
        // Used less than estimated: 600 back.
        try await limiter.settle(key: "k", limit: limit, estimatedTokens: 800, actualTokens: 200)
        let afterRefund = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 700)
        #expect(afterRefund.allowed)
        #expect(afterRefund.remaining == 100)
        // Used more than estimated: the balance goes negative and is paid back first.
        try await limiter.settle(key: "k", limit: limit, estimatedTokens: 700, actualTokens: 1300)
        let inDebt = try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 1)
        #expect(!inDebt.allowed)
        #expect(inDebt.remaining == 0)
        #expect(inDebt.retryAfterSeconds == 31)  // from -500 to 1 at 1000/60 per second: 30.06 s
        clock.advance(.seconds(30))
        #expect(try await !limiter.acquire(key: "k", limit: limit, estimatedTokens: 1).allowed)
        clock.advance(.seconds(1))
        #expect(try await limiter.acquire(key: "k", limit: limit, estimatedTokens: 1).allowed)
    }

    @Test func keysAreIsolated() async throws {
        let limiter = MemoryRateLimiter(now: ManualClock().reader)
        let limit = RateLimit(requestsPerMinute: 1, tokensPerMinute: 10)
        #expect(try await limiter.acquire(key: "a", limit: limit, estimatedTokens: 5).allowed)
        #expect(try await !limiter.acquire(key: "a", limit: limit, estimatedTokens: 5).allowed)
        try await limiter.settle(key: "a", limit: limit, estimatedTokens: 5, actualTokens: 100)
        let other = try await limiter.acquire(key: "b", limit: limit, estimatedTokens: 10)
        #expect(other.allowed)
        #expect(other.remaining == 0)
        #expect(limiter.trackedKeys == 2)
    }

    @Test func changedLimitResizesTheBucket() async throws {
        let limiter = MemoryRateLimiter(now: ManualClock().reader)
        #expect(try await limiter.acquire(key: "k", limit: RateLimit(requestsPerMinute: 100), estimatedTokens: 0).remaining == 99)
        let smaller = try await limiter.acquire(key: "k", limit: RateLimit(requestsPerMinute: 10), estimatedTokens: 0)
        #expect(smaller.limit == 10)
        #expect(smaller.remaining == 9)
    }

    @Test func idleKeysAreDropped() async throws {
        let clock = ManualClock()
        let limiter = MemoryRateLimiter(sweepInterval: .seconds(60), now: clock.reader)
        let limit = RateLimit(requestsPerMinute: 60, tokensPerMinute: 6000)
        for index in 0..<100 {
            #expect(try await limiter.acquire(key: "k\(index)", limit: limit, estimatedTokens: 100).allowed)
        }
        #expect(limiter.trackedKeys == 100)
        // One key spent a lot and is still refilling when the sweep runs; the others are full again.
        try await limiter.settle(key: "k0", limit: limit, estimatedTokens: 100, actualTokens: 12000)
        clock.advance(.seconds(61))
        #expect(try await limiter.acquire(key: "new", limit: limit, estimatedTokens: 1).allowed)
        #expect(limiter.trackedKeys == 2)
        #expect(try await !limiter.acquire(key: "k0", limit: limit, estimatedTokens: 200).allowed)  // 100 refilled of 6000 owed
    }

    @Test func noLimitsAllowEverything() async throws {
        let limiter = MemoryRateLimiter()
        let decision = try await limiter.acquire(key: "k", limit: RateLimit(), estimatedTokens: 1_000_000)
        #expect(decision.allowed)
        #expect(decision.limit == 0)
    }

    // MARK: - Estimate

    static func request(_ text: String) throws -> ChatRequest {
        try ChatRequest(parsing: Array(text.utf8))
    }

    @Test func estimateCountsPromptCharactersAndOutput() throws {
        // 8 characters -> 2 tokens, 9 -> 3 (rounded up).
        let eight = try Self.request(#"{"model": "m", "messages": [{"role": "user", "content": "12345678"}], "max_tokens": 100}"#)
        #expect(TokenEstimate.estimate(for: eight) == 102)
        let nine = try Self.request(#"{"model": "m", "messages": [{"role": "user", "content": "123456789"}], "max_tokens": 100}"#)
        #expect(TokenEstimate.estimate(for: nine) == 103)
        let parts = try Self.request(
            #"{"model": "m", "messages": [{"role": "system", "content": "abcd"}, {"role": "user", "content": [{"type": "text", "text": "efgh"}, {"type": "image_url", "image_url": {"url": "http://x"}}]}], "max_completion_tokens": 10, "max_tokens": 99}"#)
        #expect(TokenEstimate.estimate(for: parts) == 12)
        let noMaximum = try Self.request(#"{"model": "m", "messages": [{"role": "user", "content": "abcd"}], "n": 2}"#)
        #expect(TokenEstimate.estimate(for: noMaximum) == 1 + 2 * TokenEstimate.defaultOutputTokens)
        let withTools = try Self.request(
            #"{"model": "m", "messages": [{"role": "user", "content": "abcd"}], "max_tokens": 1, "tools": [{"type": "function", "function": {"name": "f"}}]}"#)
        #expect(TokenEstimate.estimate(for: withTools) > 2)
    }
}
