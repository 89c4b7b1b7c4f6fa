/// Where and how to reach Redis: parsed from a URL, validated once.
///
/// Accepted URLs (credentials percent-encoded):
/// - `redis://[[user]:password@]host[:port][/db]`: TCP; port 6379 and database 0 by default; IPv6 hosts in brackets
///   (`redis://[::1]:6380/2`). `redis://:password@host` authenticates as the default user.
/// - `unix:///path/to/redis.sock[?db=N][&password=P][&username=U]`, or with the credentials before the path
///   (`unix://user:password@/path/to/redis.sock?db=N`): a Unix domain socket. Giving a credential both ways is an error.
/// - `rediss://` is refused: TLS is not supported.
///
/// ```swift
/// let configuration = try RedisConfiguration(url: "redis://:s3cret@127.0.0.1:6379/2", poolSize: 4)
/// ```
public struct RedisConfiguration: Sendable {
    /// Where the server listens.
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unixSocket(path: String)
    }

    /// Where the server listens.
    public var endpoint: Endpoint
    /// The database selected on every connection (`SELECT`), 0 by default.
    public var database: Int
    /// The ACL user for `AUTH user password`; nil authenticates as the default user.
    public var username: String?
    /// The password sent with `AUTH`; nil sends no `AUTH`. Never printed.
    public var password: String?
    /// The most connections the client opens; commands are pipelined over them.
    public var poolSize: Int
    /// How long a connection (TCP or Unix socket connect) may take.
    public var connectTimeout: Duration
    /// How long a command may wait for its reply; the connection is then closed and replaced.
    public var commandTimeout: Duration

    /// Parses `url` and checks the limits.
    /// - Parameters:
    ///   - url: `redis://`, or `unix://` for a Unix socket (see the type's documentation).
    ///   - poolSize: the most connections, at least 1.
    ///   - connectTimeout: bound on establishing a connection, more than zero.
    ///   - commandTimeout: bound on waiting for a reply, more than zero.
    /// - Throws: `RedisError` of kind `.configuration`, whose message never holds the password.
    public init(
        url: String, poolSize: Int = 8, connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(1)
    ) throws(RedisError) {
        let parsed = try RedisURL(parsing: url)
        guard poolSize >= 1 else { throw RedisError(.configuration, "pool size must be at least 1") }
        guard connectTimeout > .zero else { throw RedisError(.configuration, "connect timeout must be more than zero") }
        guard commandTimeout > .zero else { throw RedisError(.configuration, "command timeout must be more than zero") }
        self.endpoint = parsed.endpoint
        self.database = parsed.database
        self.username = parsed.username
        self.password = parsed.password
        self.poolSize = poolSize
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// The endpoint and database as an operator may see them (no credentials), e.g. `127.0.0.1:6379/2`.
    public var redactedTarget: String {
        switch endpoint {
        case .tcp(let host, let port): (host.contains(":") ? "[\(host)]" : host) + ":\(port)/\(database)"
        case .unixSocket(let path): "unix:\(path)?db=\(database)"
        }
    }
}

extension RedisConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The configuration with the password replaced by `***`.
    public var description: String {
        let credentials = password == nil ? "" : "\(username ?? ""):***@"
        let url: String
        switch endpoint {
        case .tcp(let host, let port):
            url = "redis://\(credentials)\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
        case .unixSocket(let path):
            url = "unix://\(credentials)\(path)?db=\(database)"
        }
        return "\(url) pool_size=\(poolSize) connect_timeout=\(connectTimeout) command_timeout=\(commandTimeout)"
    }

    public var debugDescription: String { description }

    /// Keeps `dump()` and the like from printing the password.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "endpoint": endpoint, "database": database, "username": username as Any,
                "password": password == nil ? "nil" : "***", "poolSize": poolSize,
                "connectTimeout": connectTimeout, "commandTimeout": commandTimeout,
            ], displayStyle: .struct)
    }
}
