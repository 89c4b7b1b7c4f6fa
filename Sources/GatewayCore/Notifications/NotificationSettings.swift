/// `notifications:`: where events go (`channels`) and how long delivery keeps trying.
///
/// ```yaml
/// notifications:
///   give_up_after: 24h
///   channels:
///     ops-slack: {type: slack, url: "${SLACK_WEBHOOK_URL}"}
/// ```
public struct NotificationSettings: Sendable, Equatable {
    /// Channels by name.
    public var channels: [String: NotificationChannel] = [:]
    /// How long an event is retried after its first attempt before it is marked failed.
    public var giveUpAfter: Duration = .seconds(24 * 3600)

    public init(channels: [String: NotificationChannel] = [:], giveUpAfter: Duration = .seconds(24 * 3600)) {
        self.channels = channels
        self.giveUpAfter = giveUpAfter
    }

    /// The configured channels' names, for checking the names a budget's `notify` lists.
    public var channelNames: Set<String> { Set(channels.keys) }
}

/// `notifications.channels.<name>`: one receiver.
public struct NotificationChannel: Sendable, Equatable {
    /// A receiver and what it needs; secrets are in here, so never print one whole (see `redactedTarget`).
    public enum Kind: Sendable, Equatable {
        /// `POST url` with the event's JSON, signed with `secret` when set.
        case webhook(url: String, secret: String?)
        /// A Slack incoming webhook (its URL is the secret).
        case slack(url: String)
        /// PagerDuty Events API v2.
        case pagerduty(routingKey: String, url: String)
        /// A plain-text mail through an SMTP relay.
        case email(EmailSettings)
    }

    /// The name events refer to.
    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// PagerDuty's endpoint when `url` is not set.
    public static let pagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

    /// `webhook`, `slack`, `pagerduty` or `email`.
    public var type: String {
        switch kind {
        case .webhook: "webhook"
        case .slack: "slack"
        case .pagerduty: "pagerduty"
        case .email: "email"
        }
    }

    /// Where it delivers, fit to show: a URL's scheme and host only (a Slack URL's path is its secret, and any
    /// URL's path or query may carry a token), an SMTP URL without its password, and the mail's recipients.
    public var redactedTarget: String {
        switch kind {
        case .webhook(let url, _), .slack(let url), .pagerduty(_, let url):
            return Self.originOnly(url)
        case .email(let settings):
            return URLCredentials.redacting(settings.smtp) + " to " + settings.to.joined(separator: ",")
        }
    }

    /// The secrets this channel holds: the whole URL of an HTTP channel, the webhook secret, the routing key, the SMTP password.
    var secrets: [String] {
        switch kind {
        case .webhook(let url, let secret): [url, Self.pathAndQuery(url)] + (secret.map { [$0] } ?? [])
        case .slack(let url): [url, Self.pathAndQuery(url)]
        case .pagerduty(let routingKey, let url): [routingKey, url]
        case .email(let settings): [settings.smtp] + (settings.password.map { [$0] } ?? [])
        }
    }

    /// `text` (an error, a receiver's answer) with every secret of the channel replaced by `[redacted]`.
    func redactingSecrets(_ text: String) -> String {
        var text = text
        for secret in secrets.sorted(by: { $0.count > $1.count }) where secret.count >= 4 {
            text = text.replacingAll(secret, with: "[redacted]")
        }
        return text
    }

    /// `https://hooks.slack.com/[redacted]`: scheme and host, the rest hidden.
    static func originOnly(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return "[redacted]" }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let host = URLCredentials.split(authority).rest
        let hidden = authority.count < rest.count || host.count < authority.count
        return url[..<schemeEnd.upperBound] + host + (hidden ? "/[redacted]" : "")
    }

    /// The path and query of `url` (what follows its host), for redacting it where the host is printed apart.
    static func pathAndQuery(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "" }
        return String(rest[slash...])
    }
}

/// `type: email`: the relay, the addresses and how to secure the connection.
public struct EmailSettings: Sendable, Equatable {
    /// `never` sends in the clear, `auto` uses STARTTLS when the relay offers it, `always` refuses a relay without it.
    public enum StartTLS: String, Sendable, Equatable, CaseIterable {
        case auto, always, never
    }

    /// `smtp://[user:password@]host[:port]` (port 25) or `smtps://…` (TLS from the start, port 465), as written.
    public var smtp: String
    public var from: String
    public var to: [String]
    public var startTLS: StartTLS = .auto
    /// Parsed from `smtp`.
    public var host: String
    public var port: Int
    /// `smtps://`: TLS from the first byte.
    public var implicitTLS: Bool
    public var username: String?
    public var password: String?

    public init(smtp: String, from: String, to: [String], startTLS: StartTLS = .auto) throws(SMTPURLError) {
        self.smtp = smtp
        self.from = from
        self.to = to
        self.startTLS = startTLS
        let parsed = try SMTPURLError.parse(smtp)
        host = parsed.host
        port = parsed.port
        implicitTLS = parsed.implicitTLS
        username = parsed.username
        password = parsed.password
    }
}

/// An `smtp://` URL that cannot be used; the message never repeats the URL (it may hold a password).
public struct SMTPURLError: Error, Sendable, CustomStringConvertible {
    public var description: String

    /// Host, port, TLS and credentials of `smtp://[user[:password]@]host[:port]` or `smtps://…`.
    static func parse(_ url: String) throws(SMTPURLError) -> (host: String, port: Int, implicitTLS: Bool, username: String?, password: String?) {
        guard let schemeEnd = url.range(of: "://") else { throw SMTPURLError(description: "expected smtp://host[:port] or smtps://host[:port]") }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "smtp" || scheme == "smtps" else {
            throw SMTPURLError(description: "the scheme must be smtp:// or smtps://")
        }
        var rest = url[schemeEnd.upperBound...]
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            guard rest[end...].allSatisfy({ $0 == "/" }) else { throw SMTPURLError(description: "an SMTP URL has no path or query") }
            rest = rest[..<end]
        }
        let split = URLCredentials.split(rest)
        var username: String?, password: String?
        if let credentials = split.credentials {
            let user = credentials.firstIndex(of: ":").map { credentials[..<$0] } ?? credentials
            username = String(user).removingPercentEncoding
            if let colon = credentials.firstIndex(of: ":") {
                password = String(credentials[credentials.index(after: colon)...]).removingPercentEncoding
            }
            guard username != nil, password != nil || !credentials.contains(":") else {
                throw SMTPURLError(description: "bad percent-encoding in the credentials")
            }
        }
        var host = split.rest
        var port = scheme == "smtps" ? 465 : 25
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()), (1...65535).contains(value) else { throw SMTPURLError(description: "port must be 1-65535") }
                port = value
            }
            host = host[host.index(after: host.startIndex)..<close]
        } else if let colon = host.lastIndex(of: ":") {
            guard let value = Int(host[host.index(after: colon)...]), (1...65535).contains(value) else {
                throw SMTPURLError(description: "port must be 1-65535")
            }
            port = value
            host = host[..<colon]
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "@" }) else { throw SMTPURLError(description: "no host") }
        return (String(host), port, scheme == "smtps", username, password)
    }
}
