import Foundation
import Glibc
import NIOCore
import NIOPosix

/// A throwaway PostgreSQL 15 cluster for one test: `initdb` into its own temporary folder, a free loopback port and a
/// Unix socket in that folder, trust authentication, a `gateway` role owning a `gateway` database, durability off.
/// PostgreSQL refuses to run as root, so when the tests run as root its programs run as the `postgres` user
/// (`runuser`) and the folder belongs to that user. Every program runs through `ProcessRunner`, which never blocks a
/// thread of the cooperative pool.
actor PostgresServerProcess {
    struct Missing: Error, CustomStringConvertible {
        var description: String {
            "PostgreSQL 15 is not installed (\(PostgresServerProcess.binaries)): run `make test`, which installs it (Debian package postgresql)"
        }
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var description: String
    }

    static let binaries = "/usr/lib/postgresql/15/bin"

    let port: Int
    /// The folder holding the cluster (`data/`), its log and its Unix socket.
    let directory: String
    private var running = false

    /// Creates and starts a cluster, and waits until it accepts connections.
    static func start() async throws -> PostgresServerProcess {
        guard FileManager.default.isExecutableFile(atPath: binaries + "/initdb") else { throw Missing() }
        let directory = NSTemporaryDirectory() + "pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try handOver(directory)
        try await runChecked("initdb", ["-D", directory + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        var lastError: any Error = CommandFailed(description: "PostgreSQL did not start")
        // A free port can be taken by someone else before PostgreSQL binds it: try a few.
        for _ in 0..<3 {
            let server = PostgresServerProcess(port: try await freePort(), directory: directory)
            do {
                try await server.launch()
                try await server.runChecked("createuser", ["-h", directory, "-p", "\(server.port)", "-U", "postgres", "gateway"])
                try await server.runChecked("createdb", ["-h", directory, "-p", "\(server.port)", "-U", "postgres", "-O", "gateway", "gateway"])
                return server
            } catch {
                lastError = error
                await server.kill()
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
        throw lastError
    }

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
    }

    /// `postgres://gateway@127.0.0.1:<port>/gateway?sslmode=disable`.
    nonisolated var url: String { "postgres://gateway@127.0.0.1:\(port)/gateway?sslmode=disable" }

    /// The same database through the Unix socket in `directory`.
    nonisolated var unixSocketURL: String { "postgres://gateway@:\(port)/gateway?host=\(directory)" }

    /// Runs `sql` with psql as `gateway` and returns its unaligned output (`|` between columns, one row a line).
    func psql(_ sql: String) async throws -> String {
        try await Self.runChecked("psql", ["-h", directory, "-p", "\(port)", "-U", "gateway", "-d", "gateway", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
    }

    /// Shuts the server down cleanly (`pg_ctl stop -m fast`): clients are disconnected.
    func stop() async throws {
        guard running else { return }
        try await runChecked("pg_ctl", ["-D", directory + "/data", "-m", "fast", "-w", "stop"])
        running = false
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, recovery at the next start).
    func kill() async {
        guard running else { return }
        _ = try? await runChecked("pg_ctl", ["-D", directory + "/data", "-m", "immediate", "-w", "stop"])
        running = false
    }

    /// Starts the server again on the same port and socket.
    func restart() async throws {
        try await launch()
    }

    /// Stops the server and removes its folder.
    func destroy() async {
        await kill()
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: - Programs

    private func launch() async throws {
        let options = "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        try await runChecked(
            "pg_ctl", ["-D", directory + "/data", "-l", directory + "/postgres.log", "-o", options, "-w", "-t", "30", "start"],
            closingInheritedDescriptors: true)
        running = true
    }

    private func runChecked(_ program: String, _ arguments: [String], closingInheritedDescriptors: Bool = false) async throws {
        _ = try await Self.runChecked(program, arguments, closingInheritedDescriptors: closingInheritedDescriptors)
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when we are root) and throws with its output if it fails.
    ///
    /// `closingInheritedDescriptors` is for `pg_ctl start`, whose server outlives it: Foundation's `Process` learns
    /// that a child exited when the last holder of a socket it passes down closes it, and the server would otherwise
    /// inherit that socket and hold it (and any listener another test has open) for its whole life.
    @discardableResult
    private static func runChecked(_ program: String, _ arguments: [String], closingInheritedDescriptors: Bool = false) async throws -> String {
        var command = [binaries + "/" + program] + arguments
        if getuid() == 0 { command = ["/usr/sbin/runuser", "-u", "postgres", "--"] + command }
        if closingInheritedDescriptors {
            let closeAllButStandard = #"for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [ "$fd" -gt 2 ] && [ -e "/proc/$$/fd/$fd" ]; then eval "exec $fd>&-"; fi; done; exec "$@""#
            command = ["/bin/bash", "-c", closeAllButStandard, "bash"] + command
        }
        let result = try await ProcessRunner.run(command[0], Array(command.dropFirst()))
        guard result.status == 0 else {
            throw CommandFailed(description: "\(program) exited with \(result.status): \(result.stderr)\(result.stdout)")
        }
        return result.stdout
    }

    /// Gives `directory` to the `postgres` user when we are root (PostgreSQL will not run as root).
    private static func handOver(_ directory: String) throws {
        guard getuid() == 0 else { return }
        guard let user = getpwnam("postgres") else {
            throw CommandFailed(description: "no postgres user: run `make test`, which installs the postgresql package")
        }
        guard chown(directory, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
            throw CommandFailed(description: "cannot chown \(directory): \(String(cString: strerror(errno)))")
        }
    }

    private static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }
}

/// Runs `body` with a fresh PostgreSQL cluster, removing it afterwards whatever happens.
func withPostgresServer<Result: Sendable>(_ body: (PostgresServerProcess) async throws -> Result) async throws -> Result {
    let server = try await PostgresServerProcess.start()
    do {
        let result = try await body(server)
        await server.destroy()
        return result
    } catch {
        await server.destroy()
        throw error
    }
}
