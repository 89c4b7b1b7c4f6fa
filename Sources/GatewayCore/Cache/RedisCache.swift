import Logging

/// Cached answers in Redis, shared by every gateway pointed at the same server: `SET key value PX ttl`
/// under `redis.prefix` + `cache:`. When Redis fails, reads are misses and writes are dropped (fail open),
/// and the outage is logged once.
public final class RedisCache: ResponseCacheBackend {
    private let client: RedisClient
    private let prefix: String
    private let logger: Logger
    /// Outage bookkeeping, shared with metrics and the admin socket.
    public let outage = OutageLog(name: "redis cache")

    public init(client: RedisClient, prefix: String, logger: Logger) {
        self.client = client
        self.prefix = prefix + "cache:"
        self.logger = logger
    }

    public func get(_ key: String) async -> CachedAnswer? {
        do {
            let bytes = try await client.get(prefix + key)
            outage.succeeded(logger: logger)
            return bytes.flatMap(CachedAnswer.init(encoded:))
        } catch {
            outage.failed(error, logger: logger, consequence: "serving from the providers without the cache")
            return nil
        }
    }

    public func set(_ key: String, _ answer: CachedAnswer, ttl: Duration) async {
        do {
            try await client.set(prefix + key, answer.encoded(), ttl: ttl)
            outage.succeeded(logger: logger)
        } catch {
            outage.failed(error, logger: logger, consequence: "serving from the providers without the cache")
        }
    }

    public func flush() async -> Int? {
        var cursor = "0"
        var removed = 0
        repeat {
            guard let reply = try? await client.send("SCAN", cursor, "MATCH", prefix + "*", "COUNT", "500"),
                case .array(let parts) = reply, parts.count == 2,
                case .bulk(let next) = parts[0], case .array(let keys) = parts[1]
            else { return nil }
            cursor = String(decoding: next, as: UTF8.self)
            let names = keys.compactMap { value -> [UInt8]? in
                if case .bulk(let name) = value { return name }
                return nil
            }
            if !names.isEmpty, case .integer(let count)? = try? await client.send([Array("UNLINK".utf8)] + names) {
                removed += Int(count)
            }
        } while cursor != "0"
        return removed
    }
}
