import Foundation
import GatewayCore
import Glibc

/// A real SMTP relay for one test: `Tests/smtp/smtp_sink.py` (Python's aiosmtpd) on a free loopback port, writing
/// each accepted message to a folder. Without aiosmtpd the test fails with how to get it (`make test` installs it).
final class SMTPSinkProcess: @unchecked Sendable {
    struct Missing: Error, CustomStringConvertible {
        var description: String { "the SMTP fixture did not start (is aiosmtpd installed? `make test` installs it: pip install aiosmtpd)" }
    }

    /// A message as the relay received it.
    struct Message: Sendable {
        var mailFrom: String
        var recipients: [String]
        /// The login that authenticated, if any.
        var login: String?
        /// Headers and body, dot-stuffing undone.
        var data: String
    }

    let port: Int
    let folder: String
    private let process: Process

    /// Starts the relay; with `user`, it requires AUTH with `password` (PLAIN and LOGIN, or LOGIN alone with `loginOnly`).
    /// With `tls` (certificate and key files), it offers STARTTLS and takes AUTH only after it.
    init(user: String? = nil, password: String? = nil, loginOnly: Bool = false, tls: (certificate: String, key: String)? = nil) async throws {
        folder = NSTemporaryDirectory() + "smtp-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments = ["python3", ProcessRunner.packageRoot.appendingPathComponent("Tests/smtp/smtp_sink.py").path, folder]
        if let user, let password { arguments += ["--user", user, "--password", password] }
        if loginOnly { arguments.append("--exclude-plain") }
        if let tls { arguments += ["--tls", tls.certificate, tls.key] }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: folder + "/port", encoding: .utf8), let port = Int(text) {
                self.port = port
                return
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        kill(process.processIdentifier, SIGKILL)
        throw Missing()
    }

    /// The messages received so far, in order.
    var messages: [Message] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") }
        return names.sorted { Int($0.dropLast(5)) ?? 0 < Int($1.dropLast(5)) ?? 0 }.compactMap { name in
            guard let data = FileManager.default.contents(atPath: folder + "/" + name), let json = try? JSON.parse(Array(data)) else { return nil }
            return Message(
                mailFrom: json["mail_from"]?.stringValue ?? "", recipients: (json["rcpt_tos"]?.arrayValue ?? []).compactMap(\.stringValue),
                login: json["login"]?.stringValue, data: json["data"]?.stringValue ?? "")
        }
    }

    /// Kills the relay (SIGKILL: a process started from a pool thread inherits its blocked signals, SIGTERM included).
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: folder)
    }
}

/// Runs `body` with a fresh SMTP relay, stopping it afterwards whatever happens.
func withSMTPSink<Result: Sendable>(
    user: String? = nil, password: String? = nil, loginOnly: Bool = false, tls: (certificate: String, key: String)? = nil,
    _ body: (SMTPSinkProcess) async throws -> Result
) async throws -> Result {
    let sink = try await SMTPSinkProcess(user: user, password: password, loginOnly: loginOnly, tls: tls)
    defer { sink.stop() }
    return try await body(sink)
}
