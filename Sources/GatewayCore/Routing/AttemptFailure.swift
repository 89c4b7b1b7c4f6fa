/// Why one attempt at one provider failed, and what the chain should do about it.
public struct AttemptFailure: Error, Sendable {
    /// What the client would see if this were the last attempt.
    public var error: GatewayError
    /// True for failures that move on down the chain: 429, 5xx, connection failures, connect and first-byte timeouts.
    /// False for client errors (400, 401, 403, 404, 413, 422…), which are answered at once.
    public var triggersFailover: Bool
    /// True when a retry on the same provider may help (false e.g. for a provider whose key is unset).
    public var retryable: Bool
    /// The provider's `Retry-After`, when it sent one.
    public var retryAfter: Duration?
    /// True when the provider did not answer in time.
    public var timedOut: Bool
    /// True when the request never left the gateway (the provider cannot express it).
    public var rejectedBeforeSending = false

    public init(_ error: GatewayError, triggersFailover: Bool, retryable: Bool = true, retryAfter: Duration? = nil, timedOut: Bool = false) {
        self.error = error
        self.triggersFailover = triggersFailover
        self.retryable = retryable && triggersFailover
        self.retryAfter = retryAfter
        self.timedOut = timedOut
    }

    /// A failure the client caused; never failed over.
    public static func final(_ error: GatewayError) -> AttemptFailure {
        AttemptFailure(error, triggersFailover: false)
    }

    /// The longest `Retry-After` read (a day); the chain waits at most the provider's `retry_after_max` anyway.
    static let longestRetryAfter = Duration.seconds(86_400)

    /// Reads `Retry-After` (seconds) or OpenAI's `retry-after-ms`, as numbers of any size (`1e19` is a day).
    public static func retryAfter(seconds: String?, milliseconds: String?) -> Duration? {
        let longestMilliseconds = Double(longestRetryAfter.components.seconds * 1000)
        if let milliseconds, let value = Double(milliseconds.trimmingWhitespace()), value >= 0, value.isFinite {
            return .milliseconds(Int64(min(value, longestMilliseconds)))
        }
        if let seconds, let value = Double(seconds.trimmingWhitespace()), value >= 0, value.isFinite {
            return .milliseconds(Int64(min(value * 1000, longestMilliseconds)))
        }
        return nil
    }
}

extension String {
    func trimmingWhitespace() -> String { self[...].trimmingWhitespace() }
}
