import Foundation
import Glibc
import NIOCore
import NIOPosix

/// A real `redis-server` for one test: a free loopback port (and, if asked, a Unix socket) in its own temporary
/// folder, no persistence, `DEBUG` allowed from local clients. Stopped with SIGTERM; killed and restarted on the
/// same port for outage tests. Nothing here blocks a thread of the cooperative pool.
actor RedisServerProcess {
    struct Missing: Error, CustomStringConvertible {
        var description: String {
            "redis-server is not installed: run `make test`, which installs it (Debian package redis-server)"
        }
    }

    struct StartFailed: Error, CustomStringConvertible {
        var description: String
    }

    let port: Int
    let password: String?
    /// The Unix socket path, when asked for.
    let unixSocketPath: String?
    private let directory: String
    private let executable: String
    private var pid: pid_t?

    /// Starts a server and waits until it accepts connections.
    static func start(password: String? = nil, unixSocket: Bool = false) async throws -> RedisServerProcess {
        guard let executable = findExecutable("redis-server") else { throw Missing() }
        let directory = NSTemporaryDirectory() + "redis-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lastError: any Error = StartFailed(description: "redis-server did not start")
        // A free port can be taken by someone else before redis-server binds it: try a few.
        for _ in 0..<3 {
            let server = RedisServerProcess(
                port: try await freePort(), password: password, unixSocketPath: unixSocket ? directory + "/redis.sock" : nil,
                directory: directory, executable: executable)
            do {
                try await server.launch()
                return server
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private init(port: Int, password: String?, unixSocketPath: String?, directory: String, executable: String) {
        self.port = port
        self.password = password
        self.unixSocketPath = unixSocketPath
        self.directory = directory
        self.executable = executable
    }

    /// `redis://[:password@]127.0.0.1:port/db`.
    nonisolated func url(database: Int = 0) -> String {
        let credentials = password.map { ":\($0)@" } ?? ""
        return "redis://\(credentials)127.0.0.1:\(port)/\(database)"
    }

    /// Stops the server with SIGTERM and removes its folder.
    func stop() async {
        await signal(SIGTERM)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Kills the server with SIGKILL, as a crash would.
    func kill() async {
        await signal(SIGKILL)
    }

    /// Starts the server again on the same port (and socket).
    func restart() async throws {
        var lastError: any Error = StartFailed(description: "redis-server did not restart")
        for _ in 0..<20 {
            do {
                try await launch()
                return
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw lastError
    }

    // MARK: - Process

    private func launch() async throws {
        var arguments = [
            "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
            "--daemonize", "no", "--enable-debug-command", "local", "--loglevel", "warning",
        ]
        if let password { arguments += ["--requirepass", password] }
        if let unixSocketPath { arguments += ["--unixsocket", unixSocketPath, "--unixsocketperm", "700"] }
        let logPath = directory + "/redis.log"
        let pid = try Self.spawn(executable, arguments, output: logPath)
        self.pid = pid

        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if Self.hasExited(pid) {
                self.pid = nil
                let output = String(decoding: FileManager.default.contents(atPath: logPath) ?? Data(), as: UTF8.self)
                throw StartFailed(description: "redis-server exited at start: \(output)")
            }
            if await Self.accepts(port: port, unixSocketPath: unixSocketPath) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        await signal(SIGKILL)
        throw StartFailed(description: "redis-server did not accept connections on port \(port) within 10 s")
    }

    /// Sends `signal` and waits (polling, in a task of its own so a cancelled test still waits) until the server exits.
    private func signal(_ signal: Int32) async {
        guard let pid else { return }
        self.pid = nil
        _ = Glibc.kill(pid, signal)
        await Task.detached {
            while !Self.hasExited(pid) { try? await Task.sleep(for: .milliseconds(5)) }
        }.value
    }

    /// Reaps `pid` if it has exited, without waiting.
    private static func hasExited(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        return result == pid || (result == -1 && errno == ECHILD)
    }

    /// Starts `executable` with an empty signal mask, default signal dispositions and no inherited descriptors.
    /// (Foundation's `Process` passes on the spawning thread's mask, and the cooperative pool's threads block
    /// every signal: a redis-server started from one would never see SIGTERM.)
    private static func spawn(_ executable: String, _ arguments: [String], output: String) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Without this the server would also hold whatever sockets other tests have open at this moment, such as
        // a listener another test is about to hand over, which would then accept in its place.
        guard let closeFrom = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
            throw StartFailed(description: "glibc 2.34 or later is needed (posix_spawn_file_actions_addclosefrom_np)")
        }
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        _ = unsafeBitCast(closeFrom, to: CloseFrom.self)(&actions, 3)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid = pid_t()
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard status == 0 else { throw StartFailed(description: "cannot start \(executable): \(String(cString: strerror(status)))") }
        return pid
    }

    private static func accepts(port: Int, unixSocketPath: String?) async -> Bool {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.milliseconds(500))
        do {
            let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
            try await channel.close()
            if let unixSocketPath {
                let channel = try await bootstrap.connect(unixDomainSocketPath: unixSocketPath).get()
                try await channel.close()
            }
            return true
        } catch {
            return false
        }
    }

    private static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    private static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        return folders.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// Runs `body` with a fresh redis-server, stopping it afterwards whatever happens.
func withRedisServer<Result: Sendable>(
    password: String? = nil, unixSocket: Bool = false, _ body: (RedisServerProcess) async throws -> Result
) async throws -> Result {
    let server = try await RedisServerProcess.start(password: password, unixSocket: unixSocket)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}
