/// One RESP2 reply from Redis.
///
/// ```swift
/// let reply = try await redis.send("MGET", "a", "b")   // .array([.bulk(Array("1".utf8)), .null])
/// ```
public enum RedisValue: Sendable, Equatable {
    /// A status reply (`+OK`).
    case simple(String)
    /// An error reply (`-ERR ...`), returned as a value by `RedisClient.send`.
    case error(String)
    /// An integer reply (`:1`).
    case integer(Int64)
    /// A bulk string (`$3\r\nabc`): binary-safe bytes.
    case bulk([UInt8])
    /// A null bulk string or null array (`$-1`, `*-1`).
    case null
    /// An array reply (`*2 ...`), possibly nested.
    case array([RedisValue])
}

extension RedisValue {
    /// The bytes of a bulk or status reply.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): bytes
        case .simple(let text): Array(text.utf8)
        default: nil
        }
    }

    /// The text of a bulk or status reply, decoded as UTF-8 (invalid sequences replaced).
    public var string: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    /// The value of an integer reply, or of a bulk reply holding a decimal integer.
    public var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .bulk(let bytes): Int64(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    /// The elements of an array reply.
    public var array: [RedisValue]? {
        if case .array(let elements) = self { elements } else { nil }
    }

    /// The message of an error reply.
    public var errorMessage: String? {
        if case .error(let message) = self { message } else { nil }
    }
}

extension RedisValue: CustomStringConvertible {
    /// A short form for logs: bulk strings are shown as text when printable, cut after 64 bytes.
    public var description: String {
        switch self {
        case .simple(let text): return "+\(text)"
        case .error(let message): return "-\(message)"
        case .integer(let value): return ":\(value)"
        case .null: return "(nil)"
        case .array(let elements): return "[" + elements.map(\.description).joined(separator: ", ") + "]"
        case .bulk(let bytes):
            let shown = bytes.prefix(64)
            let printable = shown.allSatisfy { (0x20..<0x7f).contains($0) }
            let text = printable ? String(decoding: shown, as: UTF8.self) : "\(bytes.count) bytes"
            return printable && bytes.count > shown.count ? "\"\(text)…\" (\(bytes.count) bytes)" : printable ? "\"\(text)\"" : text
        }
    }
}
