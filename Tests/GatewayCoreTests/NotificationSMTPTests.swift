import Foundation
import NIOSSL
import Testing
@testable import GatewayCore

/// The email channel against a real SMTP relay (aiosmtpd): AUTH, STARTTLS refused where it is not offered,
/// headers, dot-stuffing, refused recipients.
@Suite("Notification email", .timeLimit(.minutes(2)))
struct NotificationSMTPTests {
    typealias Delivery = NotificationDeliveryTests

    static func channel(_ sink: SMTPSinkProcess, credentials: String = "", to: [String] = ["ops@example.com", "finance@example.com"],
                        startTLS: EmailSettings.StartTLS = .never) throws -> NotificationChannel {
        NotificationChannel(
            name: "mail",
            kind: .email(try EmailSettings(smtp: "smtp://\(credentials)127.0.0.1:\(sink.port)", from: "gateway@example.com", to: to, startTLS: startTLS)))
    }

    static let sender = NotificationSender(http: .shared, timeout: .seconds(10))

    @Test(arguments: [false, true])
    func aMailGoesOutWithAuthAndItsHeaders(loginOnly: Bool) async throws {
        try await withSMTPSink(user: "gw", password: "p@ss:w0rd/x", loginOnly: loginOnly) { sink in
            let channel = try Self.channel(sink, credentials: "gw:p%40ss%3Aw0rd%2Fx@")
            let event = Delivery.event(85, channels: ["mail"], summary: ".a summary that starts with a dot, and ünïcode")
            #expect(await Self.sender.send(event, via: channel) == .delivered)
            let message = try #require(sink.messages.first)
            #expect(message.login == "gw", loginOnly ? "AUTH LOGIN" : "AUTH PLAIN")
            #expect(message.mailFrom == "gateway@example.com")
            #expect(message.recipients == ["ops@example.com", "finance@example.com"])
            let lines = message.data.components(separatedBy: "\r\n")
            #expect(lines.contains("From: gateway@example.com"))
            #expect(lines.contains("To: ops@example.com, finance@example.com"))
            #expect(lines.contains("Date: Mon, 30 Nov 2026 01:53:20 +0000"))
            #expect(lines.contains("Content-Type: text/plain; charset=utf-8"))
            #expect(lines.contains { $0.hasPrefix("Subject: =?UTF-8?B?") })
            let messageID = try #require(lines.first { $0.hasPrefix("Message-ID: <notification.") })
            #expect(messageID.hasSuffix("@example.com>"))
            #expect(lines.contains(".a summary that starts with a dot, and ünïcode"), "dot-stuffed on the wire, undone by the relay")
            #expect(lines.contains("Event id:  \(event.id)"))
            #expect(lines.contains("Bucket:    customer = acme"))

            // A retry is the same mail: the same Message-ID.
            #expect(await Self.sender.send(event, via: channel) == .delivered)
            #expect(sink.messages.last?.data.components(separatedBy: "\r\n").contains(messageID) == true)
        }
    }

    @Test func aWrongPasswordIsRetriedAndNeverShown() async throws {
        try await withSMTPSink(user: "gw", password: "right-password") { sink in
            let channel = try Self.channel(sink, credentials: "gw:wrong-password-42@")
            let result = await Self.sender.send(Delivery.event(1, channels: ["mail"]), via: channel)
            guard case .retry(let error) = result else {
                Issue.record("expected a retry, got \(result)")
                return
            }
            #expect(error.hasPrefix("SMTP AUTH: 535"), "\(error)")
            #expect(!error.contains("wrong-password-42"))
            #expect(sink.messages.isEmpty)
        }
    }

    @Test func startTLSAlwaysRefusesARelayWithoutIt() async throws {
        try await withSMTPSink { sink in
            let event = Delivery.event(1, channels: ["mail"])
            let always = try Self.channel(sink, startTLS: .always), auto = try Self.channel(sink, startTLS: .auto)
            #expect(await Self.sender.send(event, via: always) == .retry("SMTP: the relay does not offer STARTTLS (starttls: always)"))
            #expect(sink.messages.isEmpty)
            // `auto` goes on in the clear when the relay does not offer it.
            #expect(await Self.sender.send(event, via: auto) == .delivered)
            #expect(sink.messages.count == 1)
        }
    }

    /// STARTTLS on a relay that takes AUTH only over TLS (its certificate made here, trusted by the test's client).
    @Test func startTLSUpgradesTheConnectionBeforeAuth() async throws {
        let folder = NSTemporaryDirectory() + "smtp-tls-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let made = try await ProcessRunner.run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", folder + "/key.pem", "-out", folder + "/cert.pem", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        #expect(made.status == 0, "\(made.stderr)")
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file(folder + "/cert.pem")
        let tls = try NIOSSLContext(configuration: configuration)
        try await withSMTPSink(user: "gw", password: "pw", tls: (folder + "/cert.pem", folder + "/key.pem")) { sink in
            var settings = try EmailSettings(smtp: "smtp://gw:pw@127.0.0.1:\(sink.port)", from: "gateway@example.com", to: ["ops@example.com"], startTLS: .always)
            let message = MailMessage(event: Delivery.event(1, channels: ["mail"]), settings: settings)
            #expect(await SMTPClient(settings: settings, timeout: .seconds(10), tls: tls).send(message) == .delivered)
            #expect(sink.messages.first?.login == "gw")
            // Without STARTTLS the relay refuses AUTH: retried, never sent in the clear.
            settings.startTLS = .never
            let clear = await SMTPClient(settings: settings, timeout: .seconds(10), tls: tls).send(message)
            #expect(clear == .retry("SMTP: the relay offers neither AUTH PLAIN nor AUTH LOGIN (relays often offer AUTH only after STARTTLS)"))
            #expect(sink.messages.count == 1)
            // And a relay whose certificate is not trusted is not talked to.
            settings.startTLS = .auto
            let untrusted = await SMTPClient(settings: settings, timeout: .seconds(10)).send(message)
            guard case .retry = untrusted else {
                Issue.record("an untrusted certificate gave \(untrusted)")
                return
            }
            #expect(sink.messages.count == 1)
        }
    }

    @Test func aRefusedRecipientRefusesTheMail() async throws {
        try await withSMTPSink { sink in
            let channel = try Self.channel(sink, to: ["ops@example.com", "nobody@example.com"])
            let result = await Self.sender.send(Delivery.event(1, channels: ["mail"]), via: channel)
            #expect(result == .refused("SMTP RCPT TO: 550 5.1.1 no such mailbox"))
            #expect(sink.messages.isEmpty)
        }
    }
}
