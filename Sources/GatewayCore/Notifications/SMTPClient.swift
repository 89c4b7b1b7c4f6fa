import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A small SMTP client (RFC 5321) on SwiftNIO: one connection per mail, for a relay that forwards it.
///
/// EHLO; STARTTLS as `starttls` says (`smtps://` is TLS from the start); AUTH PLAIN, else LOGIN, when the URL has
/// credentials; MAIL FROM, RCPT TO per recipient, DATA (dot-stuffed), QUIT. The whole conversation is bounded by
/// `timeout`, each reply by its length and line count. TLS checks the relay's certificate against the system's roots.
struct SMTPClient: Sendable {
    let settings: EmailSettings
    let timeout: Duration
    /// TLS for STARTTLS and `smtps://`; nil: the system's trust store (tests bring their own root).
    var tls: NIOSSLContext?

    /// A reply the conversation did not expect, and the command it answered.
    struct UnexpectedReply: Error {
        var command: String
        var reply: Reply
        /// A 5xx to MAIL, RCPT or DATA refuses this mail; anything else (4xx, AUTH, EHLO) may pass or be fixed.
        var refusesMail: Bool { reply.code >= 500 && ["MAIL FROM", "RCPT TO", "DATA", "message"].contains(command) }
    }

    struct ProtocolError: Error, CustomStringConvertible {
        var description: String
    }

    /// One reply: its code and its lines' text.
    struct Reply: Sendable {
        var code: Int
        var lines: [String]
        var text: String { "\(code) " + lines.joined(separator: " / ") }
    }

    /// One TLS context for every mail (making one reads the system's trust store: too dear for each attempt).
    static let tlsContext = Result { try NIOSSLContext(configuration: .makeClientConfiguration()) }

    static let maxLineBytes = 4096
    static let maxReplyLines = 100

    /// Sends `message` through the relay.
    func send(_ message: MailMessage) async -> DeliveryResult {
        do {
            try await withDeadline(.now + timeout) { try await converse(message) }
            return .delivered
        } catch is DeadlineExceeded {
            return .retry("SMTP: no answer from the relay within \(timeout)")
        } catch let error as UnexpectedReply {
            let text = "SMTP \(error.command): \(error.reply.text)"
            return error.refusesMail ? .refused(text) : .retry(text)
        } catch {
            return .retry("SMTP: \(error)")
        }
    }

    private func converse(_ message: MailMessage) async throws {
        let host = settings.host
        let tls = try self.tls ?? Self.tlsContext.get()
        let serverName = Self.isIPAddress(host) ? nil : host
        let implicitTLS = settings.implicitTLS
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(min(timeout, .seconds(10))))
            .connect(host: host, port: settings.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if implicitTLS {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var replies = ReplyReader(inbound.makeAsyncIterator())
            func command(_ line: String, _ name: String, expect codes: Set<Int>) async throws -> Reply {
                try await outbound.write(ByteBuffer(string: line + "\r\n"))
                let reply = try await replies.next()
                guard codes.contains(reply.code) else { throw UnexpectedReply(command: name, reply: reply) }
                return reply
            }
            let greeting = try await replies.next()
            guard greeting.code == 220 else { throw UnexpectedReply(command: "greeting", reply: greeting) }
            let helo = "EHLO " + Self.localName()
            var capabilities = try await command(helo, "EHLO", expect: [250]).lines.dropFirst().map { $0.uppercased() }
            var secured = implicitTLS
            if !implicitTLS {
                let offered = capabilities.contains { $0 == "STARTTLS" }
                if settings.startTLS == .always && !offered {
                    throw ProtocolError(description: "the relay does not offer STARTTLS (starttls: always)")
                }
                if settings.startTLS != .never && offered {
                    _ = try await command("STARTTLS", "STARTTLS", expect: [220])
                    try await channel.channel.eventLoop.submit {
                        try channel.channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: serverName), position: .first)
                    }.get()
                    capabilities = try await command(helo, "EHLO", expect: [250]).lines.dropFirst().map { $0.uppercased() }
                    secured = true
                }
            }
            if let user = settings.username {
                let password = settings.password ?? ""
                let mechanisms = capabilities.first { $0.hasPrefix("AUTH ") || $0.hasPrefix("AUTH=") }?.dropFirst(5).split(separator: " ") ?? []
                if mechanisms.contains("PLAIN") {
                    let token = Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
                    _ = try await command("AUTH PLAIN " + token, "AUTH", expect: [235])
                } else if mechanisms.contains("LOGIN") {
                    _ = try await command("AUTH LOGIN", "AUTH", expect: [334])
                    _ = try await command(Data(user.utf8).base64EncodedString(), "AUTH", expect: [334])
                    _ = try await command(Data(password.utf8).base64EncodedString(), "AUTH", expect: [235])
                } else {
                    let hint = secured ? "" : " (relays often offer AUTH only after STARTTLS)"
                    throw ProtocolError(description: "the relay offers neither AUTH PLAIN nor AUTH LOGIN" + hint)
                }
            }
            _ = try await command("MAIL FROM:<\(message.from)>", "MAIL FROM", expect: [250])
            for recipient in message.recipients {
                _ = try await command("RCPT TO:<\(recipient)>", "RCPT TO", expect: [250, 251])
            }
            _ = try await command("DATA", "DATA", expect: [354])
            try await outbound.write(ByteBuffer(string: message.dotStuffed))
            let accepted = try await replies.next()
            guard accepted.code == 250 else { throw UnexpectedReply(command: "message", reply: accepted) }
            // The mail is the relay's now: a QUIT that fails changes nothing.
            _ = try? await command("QUIT", "QUIT", expect: [221])
        }
    }

    /// Reads replies line by line from the connection, bounded in length and count.
    struct ReplyReader {
        var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        var pending: [UInt8] = []

        init(_ iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) {
            self.iterator = iterator
        }

        mutating func next() async throws -> Reply {
            var lines: [String] = []
            while true {
                let line = try await nextLine()
                guard line.count >= 3, let code = Int(line.prefix(3)), (200..<600).contains(code) else {
                    throw ProtocolError(description: "not an SMTP reply: \(line.prefix(80))")
                }
                lines.append(String(line.dropFirst(4)))
                guard lines.count <= SMTPClient.maxReplyLines else { throw ProtocolError(description: "reply of more than \(SMTPClient.maxReplyLines) lines") }
                if line.count == 3 || line.dropFirst(3).first == " " { return Reply(code: code, lines: lines) }
            }
        }

        private mutating func nextLine() async throws -> String {
            while true {
                if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    var line = Array(pending[..<newline])
                    pending.removeSubrange(...newline)
                    if line.last == UInt8(ascii: "\r") { line.removeLast() }
                    return String(decoding: line, as: UTF8.self)
                }
                guard pending.count <= SMTPClient.maxLineBytes else { throw ProtocolError(description: "reply line longer than \(SMTPClient.maxLineBytes) bytes") }
                guard let buffer = try await iterator.next() else { throw ProtocolError(description: "the relay closed the connection") }
                pending += buffer.readableBytesView
            }
        }
    }

    /// The name EHLO gives: this host's name.
    static func localName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count) == 0 else { return "localhost" }
        let text = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.isEmpty || text.contains(where: { $0 == " " }) ? "localhost" : text
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
