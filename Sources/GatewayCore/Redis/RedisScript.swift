import Crypto

/// A Lua script for `RedisClient.evaluate`, with the SHA-1 that `EVALSHA` names it by.
///
/// ```swift
/// static let increment = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
/// ```
public struct RedisScript: Sendable {
    /// The Lua source.
    public let source: String
    /// The lowercase hex SHA-1 of `source`, as Redis computes it.
    public let sha1: String

    /// Wraps `source` and computes its SHA-1.
    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
