/// The parts of a Redis URL (see `RedisConfiguration` for the accepted forms).
///
/// Error messages name the part that is wrong, never the text given for it, so a mistyped URL cannot leak its password.
struct RedisURL: Equatable {
    var endpoint: RedisConfiguration.Endpoint
    var database = 0
    var username: String?
    var password: String?

    init(parsing url: String) throws(RedisError) {
        guard let schemeEnd = url.range(of: "://") else {
            throw RedisError(.configuration, "invalid Redis URL: expected redis://host:port/db or unix:///path/to/socket")
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        var rest = Substring(url[schemeEnd.upperBound...])
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        switch scheme {
        case "redis":
            self = try Self.parseTCP(rest)
        case "unix":
            self = try Self.parseUnix(rest)
        case "rediss":
            throw RedisError(.configuration, "TLS not supported (rediss://): use redis:// on a trusted network, or unix://")
        default:
            throw RedisError(.configuration, "unsupported Redis URL scheme (expected redis:// or unix://)")
        }
    }

    private init(endpoint: RedisConfiguration.Endpoint) { self.endpoint = endpoint }

    // MARK: - redis://

    private static func parseTCP(_ text: Substring) throws(RedisError) -> RedisURL {
        var rest = text
        if rest.contains("?") {
            throw RedisError(.configuration, "redis:// URLs take no query parameters: put the database in the path (redis://host:port/db)")
        }
        // The last "@" ends the credentials, so an unencoded "@" or "/" in a password still parses.
        var credentials: (String?, String?) = (nil, nil)
        let split = URLCredentials.split(rest)
        rest = split.rest
        if let given = split.credentials { credentials = try parseCredentials(given) }
        let hostPort: Substring
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let path = rest[rest.index(after: slash)...]
            if !path.isEmpty { database = try parseDatabase(path) }
        } else {
            hostPort = rest
        }
        let (host, port) = try parseHostPort(hostPort)
        var url = RedisURL(endpoint: .tcp(host: host, port: port))
        (url.username, url.password) = credentials
        url.database = database
        return url
    }

    private static func parseHostPort(_ text: Substring) throws(RedisError) -> (String, Int) {
        let host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw RedisError(.configuration, "invalid IPv6 host in Redis URL: missing ]") }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw RedisError(.configuration, "invalid Redis URL: unexpected text after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = text
        }
        guard !host.isEmpty else { throw RedisError(.configuration, "Redis URL has no host") }
        guard host.allSatisfy({ $0.isLetter || $0.isNumber || ".-_:%".contains($0) }) else {
            throw RedisError(.configuration, "invalid host in Redis URL")
        }
        var port = 6379
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw RedisError(.configuration, "Redis URL port must be a number from 1 to 65535")
            }
            port = value
        }
        return (String(host), port)
    }

    // MARK: - unix://

    private static func parseUnix(_ text: Substring) throws(RedisError) -> RedisURL {
        var rest = text
        var query: Substring = ""
        if let question = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }
        var credentials: (String?, String?) = (nil, nil)
        if !rest.hasPrefix("/") {
            // unix://user:password@/path: the credentials end at the first "@/".
            guard let at = rest.range(of: "@/") else {
                throw RedisError(.configuration, "unix:// Redis URL needs an absolute socket path: unix:///path/to/redis.sock")
            }
            credentials = try parseCredentials(rest[..<at.lowerBound])
            rest = rest[rest.index(before: at.upperBound)...]
        }
        let path = try percentDecoded(rest, part: "socket path")
        guard path.count > 1 else { throw RedisError(.configuration, "unix:// Redis URL has no socket path") }
        var url = RedisURL(endpoint: .unixSocket(path: path))
        (url.username, url.password) = credentials
        for parameter in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0])
            let value = pair.count == 2 ? pair[1] : ""
            switch name {
            case "db":
                url.database = try parseDatabase(value)
            case "password":
                guard url.password == nil else { throw RedisError(.configuration, "Redis URL gives the password twice") }
                url.password = try percentDecoded(value, part: "password")
            case "username":
                guard url.username == nil else { throw RedisError(.configuration, "Redis URL gives the username twice") }
                url.username = try percentDecoded(value, part: "username")
            default:
                throw RedisError(.configuration, "unknown query parameter in unix:// Redis URL (known: db, password, username)")
            }
        }
        if url.username != nil && url.password == nil {
            throw RedisError(.configuration, "Redis URL gives a username without a password")
        }
        return url
    }

    // MARK: - Parts

    /// `user:password` or `:password`; a lone word is refused rather than guessed at.
    private static func parseCredentials(_ text: Substring) throws(RedisError) -> (String?, String?) {
        guard let colon = text.firstIndex(of: ":") else {
            throw RedisError(.configuration, "Redis URL credentials must be user:password@ or :password@")
        }
        let user = try percentDecoded(text[..<colon], part: "username")
        let password = try percentDecoded(text[text.index(after: colon)...], part: "password")
        guard !password.isEmpty else { throw RedisError(.configuration, "Redis URL has an empty password") }
        return (user.isEmpty ? nil : user, password)
    }

    private static func parseDatabase(_ text: Substring) throws(RedisError) -> Int {
        guard let value = Int(text), value >= 0, value <= Int(Int32.max) else {
            throw RedisError(.configuration, "Redis database must be a number, 0 or more")
        }
        return value
    }

    private static func percentDecoded(_ text: Substring, part: String) throws(RedisError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw RedisError(.configuration, "invalid percent-encoding in the Redis URL's \(part)")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw RedisError(.configuration, "the Redis URL's \(part) is not valid UTF-8")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
