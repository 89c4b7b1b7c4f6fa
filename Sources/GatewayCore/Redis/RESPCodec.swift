import CHiredis
import NIOCore

/// Formats commands as RESP with hiredis' `redisFormatCommandArgv`.
enum RESPFormatter {
    /// Appends `arguments` as one RESP command (an array of bulk strings) to `buffer`.
    static func write(_ arguments: [[UInt8]], into buffer: inout ByteBuffer) throws(RedisError) {
        guard !arguments.isEmpty else { throw RedisError(.protocol, "a command needs at least one argument") }
        guard arguments.count <= Int(Int32.max) else { throw RedisError(.protocol, "too many arguments") }
        // One contiguous copy of every argument (plus a byte, so the storage is never empty); argv points into it.
        var storage: [UInt8] = []
        storage.reserveCapacity(arguments.reduce(1) { $0 + $1.count })
        var offsets: [Int] = []
        offsets.reserveCapacity(arguments.count)
        for argument in arguments {
            offsets.append(storage.count)
            storage.append(contentsOf: argument)
        }
        storage.append(0)
        let lengths = arguments.map(\.count)
        var command: UnsafeMutablePointer<CChar>?
        let length = storage.withUnsafeBytes { raw -> Int32 in
            let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
            var argv = offsets.map { Optional(UnsafePointer(base + $0)) }
            return argv.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { lengths in
                    redisFormatCommandArgv(&command, Int32(arguments.count), argv.baseAddress, lengths.baseAddress)
                }
            }
        }
        guard length >= 0, let command else { throw RedisError(.protocol, "hiredis could not format the command (out of memory)") }
        defer { redisFreeCommand(command) }
        buffer.writeBytes(UnsafeRawBufferPointer(start: command, count: Int(length)))
    }
}

/// Parses RESP2 replies with hiredis' reader; feed it bytes as they arrive, then take the complete replies.
///
/// Not thread-safe: one per connection, used on its event loop.
final class RESPParser {
    private let reader: UnsafeMutablePointer<redisReader>

    init() {
        guard let reader = redisReaderCreate() else { fatalError("hiredis: redisReaderCreate failed (out of memory)") }
        self.reader = reader
    }

    deinit { redisReaderFree(reader) }

    /// Adds received bytes.
    func feed(_ buffer: ByteBuffer) throws(RedisError) {
        let status = buffer.withUnsafeReadableBytes { bytes in
            bytes.isEmpty ? REDIS_OK : redisReaderFeed(reader, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        if status != REDIS_OK { throw parseError() }
    }

    /// The next complete reply, or nil when more bytes are needed.
    func next() throws(RedisError) -> RedisValue? {
        var reply: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &reply) == REDIS_OK else { throw parseError() }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        return try Self.value(of: reply.assumingMemoryBound(to: redisReply.self))
    }

    private func parseError() -> RedisError {
        let text = withUnsafeBytes(of: reader.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return RedisError(.protocol, "invalid reply from Redis: \(text.isEmpty ? "unparsable data" : text)")
    }

    /// Copies a hiredis reply tree into a `RedisValue` (the caller frees the tree).
    private static func value(of reply: UnsafeMutablePointer<redisReply>) throws(RedisError) -> RedisValue {
        let reply = reply.pointee
        switch reply.type {
        case REDIS_REPLY_STRING:
            return .bulk(bytes(reply.str, reply.len))
        case REDIS_REPLY_STATUS:
            return .simple(String(decoding: bytes(reply.str, reply.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(reply.str, reply.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(reply.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(reply.elements)
            for index in 0..<reply.elements {
                guard let element = reply.element[index] else { throw RedisError(.protocol, "hiredis returned an empty array element") }
                elements.append(try value(of: element))
            }
            return .array(elements)
        default:
            throw RedisError(.protocol, "unknown hiredis reply type \(reply.type)")
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}
