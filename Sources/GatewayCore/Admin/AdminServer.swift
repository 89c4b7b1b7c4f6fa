#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging

/// The admin socket: HTTP/1.1 over a Unix socket (`admin.socket`), for operators and `llm-gateway ctl`.
public enum AdminServer {
    /// Why the socket cannot be used.
    public struct SocketProblem: Error, CustomStringConvertible {
        public var description: String
    }

    /// Makes `path` ready to bind: creates its directory (mode 0750) when missing, refuses a world-writable
    /// directory or a path held by something else, and removes a stale socket left by a daemon that died.
    static func prepare(path: String) throws(SocketProblem) {
        let directory = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        var info = stat()
        if stat(directory, &info) != 0 {
            guard mkdir(directory, 0o750) == 0 || errno == EEXIST, stat(directory, &info) == 0 else {
                throw SocketProblem(
                    description: "admin.socket: cannot create the directory \(directory): \(String(cString: strerror(errno)))"
                        + " (run as root or under the systemd unit, or set admin.socket to a path you may create, e.g. /tmp/llm-gateway-$USER/admin.sock)")
            }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw SocketProblem(description: "admin.socket: \(directory) is not a directory")
        }
        if info.st_mode & 0o002 != 0 {
            throw SocketProblem(
                description: "admin.socket: the directory \(directory) is world-writable; put the socket in a private directory such as /run/llm-gateway")
        }
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw SocketProblem(description: "admin.socket: \(path) exists and is not a socket; refusing to replace it")
        }
        if isListening(path) {
            throw SocketProblem(description: "admin.socket: another process is listening on \(path) (is another llm-gateway running?)")
        }
        unlink(path)
    }

    /// Whether something accepts connections on the Unix socket at `path`.
    static func isListening(_ path: String) -> Bool {
        connectProblem(path) == nil
    }

    /// Why connecting to the Unix socket at `path` fails (`strerror`), or nil when it succeeds.
    static func connectProblem(_ path: String) -> String? {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return String(cString: strerror(errno)) }
        defer { close(descriptor) }
        guard let result = UnixSocketAddress.with(path, { connect(descriptor, $0, $1) }) else {
            return "the path is too long for a Unix socket"
        }
        return result == 0 ? nil : String(cString: strerror(errno))
    }

    /// The admin application on `admin.socket`; sets the socket's mode once bound and reports it to readiness.
    static func application(gateway: Gateway, reloader: ConfigReloader?) -> some ApplicationProtocol {
        let settings = gateway.store.snapshot.config.admin
        let router = Router()
        AdminRoutes(gateway: gateway, reloader: reloader, socketPath: settings.socket).add(to: router)
        let logger = gateway.logger
        let readiness = gateway.readiness
        return Application(
            router: router,
            configuration: .init(address: .unixDomainSocket(path: settings.socket), serverName: "llm-gateway-admin"),
            onServerRunning: { _ in
                if chmod(settings.socket, mode_t(settings.mode)) != 0 {
                    logger.error("admin.socket: cannot set the socket's mode", metadata: ["path": "\(settings.socket)"])
                }
                readiness.bound("admin", address: settings.socket)
                logger.notice("admin socket listening", metadata: ["path": "\(settings.socket)"])
            },
            logger: logger)
    }
}
