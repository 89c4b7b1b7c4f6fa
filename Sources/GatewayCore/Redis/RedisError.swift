/// Why a Redis call failed. Messages never contain the password.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: String, Sendable, Equatable {
        /// Redis could not be reached, refused the handshake, or the connection broke; also while a client is shut down.
        case connection
        /// No reply (or no connection) in time: `command_timeout` or `connect_timeout`.
        case timeout
        /// Redis answered with an error reply where the call expects a result (`get`, `set`).
        case server
        /// Redis sent something that is not valid RESP2, or a reply of an unexpected shape.
        case `protocol`
        /// The configuration (URL, pool size, timeouts) is invalid.
        case configuration
        /// The calling task was cancelled.
        case cancelled
    }

    /// The kind of failure.
    public var kind: Kind
    /// What went wrong, for an operator.
    public var message: String
    /// The command never left this process (its connection closed first), so sending it again is safe.
    var wasNotSent = false

    /// Makes an error of `kind`; `message` must not contain a password.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "redis \(kind.rawValue) error: \(message)" }
}

extension RedisError {
    static let cancelled = RedisError(.cancelled, "the calling task was cancelled")

    /// A command written to a connection that had already failed or closed.
    static let notSent: RedisError = {
        var error = RedisError(.connection, "connection to Redis closed before the command was sent")
        error.wasNotSent = true
        return error
    }()
}
