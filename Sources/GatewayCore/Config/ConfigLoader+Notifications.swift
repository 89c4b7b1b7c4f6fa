import Yams

// MARK: - notifications

extension ConfigLoader {
    static let notificationChannelTypes = ["webhook", "slack", "pagerduty", "email"]

    /// `notifications:`; warns when the request log is off, as the outbox then lives in memory only.
    static func readNotifications(_ top: Section, requestLog: RequestLogSettings, _ reader: ConfigReader) -> NotificationSettings {
        var settings = NotificationSettings()
        guard let section = reader.section(top["notifications"], path: "notifications", known: ["channels", "give_up_after"]) else {
            return settings
        }
        if let node = section["give_up_after"], let duration = reader.duration(node, path: section.path("give_up_after")) {
            if duration < .seconds(60) {
                reader.error("must be at least 1m (a receiver needs time to come back)", at: node, path: section.path("give_up_after"))
            } else {
                settings.giveUpAfter = duration
            }
        }
        guard let channels = reader.section(section["channels"], path: section.path("channels"), known: nil) else { return settings }
        for name in channels.order {
            let path = channels.path(name)
            guard let entry = channels.entries[name] else { continue }
            if !isChannelName(name) {
                reader.error("invalid channel name \"\(name)\" (use letters, digits, \"-\", \"_\" and \".\")", at: entry.key, path: path)
                continue
            }
            if let channel = readChannel(name: name, node: entry.value, path: path, reader) { settings.channels[name] = channel }
        }
        if !settings.channels.isEmpty, requestLog.backend == .off {
            reader.warning(
                "request_log.backend is off: the notification outbox is kept in memory, so events not yet delivered are lost at a restart",
                at: top.entries["notifications"]?.key, path: "notifications")
        }
        return settings
    }

    private static func isChannelName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
    }

    private static func readChannel(name: String, node: Node, path: String, _ reader: ConfigReader) -> NotificationChannel? {
        guard case .mapping(let mapping) = node else {
            reader.error("expected a mapping with a type (\(Suggestion.list(notificationChannelTypes))), got \(node.kindDescription)", at: node, path: path)
            return nil
        }
        let typeEntry = mapping.first { $0.key.scalar?.string == "type" }
        guard let typeNode = typeEntry?.value else {
            reader.error("missing type (\(Suggestion.list(notificationChannelTypes)))", at: node, path: path)
            return nil
        }
        guard let type = reader.choice(typeNode, path: Section.join(path, "type"), among: notificationChannelTypes) else { return nil }
        let known: [String] = switch type {
        case "webhook": ["type", "url", "secret"]
        case "slack": ["type", "url"]
        case "pagerduty": ["type", "routing_key", "url"]
        default: ["type", "smtp", "from", "to", "starttls"]
        }
        guard let section = reader.section(node, path: path, known: known) else { return nil }
        let kind: NotificationChannel.Kind?
        switch type {
        case "webhook":
            let secret = section["secret"].flatMap { reader.string($0, path: section.path("secret"), allowEmpty: false) }
            kind = requiredURL(section, "url", reader).map { .webhook(url: $0, secret: secret) }
        case "slack":
            kind = requiredURL(section, "url", reader).map { .slack(url: $0) }
        case "pagerduty":
            let routingKey = required(section, "routing_key", reader)
            let url = section["url"] == nil ? NotificationChannel.pagerDutyURL : requiredURL(section, "url", reader)
            kind = routingKey.flatMap { key in url.map { .pagerduty(routingKey: key, url: $0) } }
        default:
            kind = readEmail(section, node: node, reader).map { .email($0) }
        }
        return kind.map { NotificationChannel(name: name, kind: $0) }
    }

    private static func readEmail(_ section: Section, node: Node, _ reader: ConfigReader) -> EmailSettings? {
        var smtp: String?
        if let value = required(section, "smtp", reader), let smtpNode = section["smtp"] {
            do {
                _ = try SMTPURLError.parse(value)
                smtp = value
            } catch {
                reader.error("invalid SMTP URL \"\(URLCredentials.redacting(value))\": \(error.description)", at: smtpNode, path: section.path("smtp"))
            }
        }
        var from = required(section, "from", reader)
        if let address = from, let fromNode = section["from"], !isMailAddress(address) {
            reader.error("invalid mail address \"\(address)\" (expected name@domain)", at: fromNode, path: section.path("from"))
            from = nil
        }
        var to: [String]?
        if let toNode = section["to"] {
            let path = section.path("to")
            let items: [Node] = if case .scalar = toNode { [toNode] } else { reader.sequence(toNode, path: path, of: "mail addresses") ?? [] }
            var addresses: [String] = []
            for (index, item) in items.enumerated() {
                guard let address = reader.string(item, path: "\(path)[\(index)]", allowEmpty: false) else { continue }
                if isMailAddress(address) {
                    addresses.append(address)
                } else {
                    reader.error("invalid mail address \"\(address)\" (expected name@domain)", at: item, path: "\(path)[\(index)]")
                }
            }
            if items.isEmpty { reader.error("needs at least one address", at: toNode, path: path) }
            to = addresses.count == items.count && !addresses.isEmpty ? addresses : nil
        } else {
            reader.error("missing to (the recipients' addresses)", at: node, path: section.path("to"))
        }
        var startTLS = EmailSettings.StartTLS.auto
        if let tlsNode = section["starttls"] {
            guard let value = reader.choice(tlsNode, path: section.path("starttls"), of: EmailSettings.StartTLS.allCases) else { return nil }
            startTLS = value
        }
        guard let smtp, let from, let to else { return nil }
        return try? EmailSettings(smtp: smtp, from: from, to: to, startTLS: startTLS)
    }

    /// The value of `key`, reported missing (at the channel) when absent.
    private static func required(_ section: Section, _ key: String, _ reader: ConfigReader) -> String? {
        guard let node = section[key] else {
            let mark = section.entries["type"]?.key
            reader.error("missing \(key)", at: mark, path: section.path(key))
            return nil
        }
        return reader.string(node, path: section.path(key), allowEmpty: false)
    }

    /// An http(s) URL at `key`, reported when absent or of another scheme.
    private static func requiredURL(_ section: Section, _ key: String, _ reader: ConfigReader) -> String? {
        guard let url = required(section, key, reader), let node = section[key] else { return nil }
        // Not `checkURL`: its message shows the URL's path, which is the secret of a Slack URL.
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, ["https", "http"].contains(parts[0].lowercased()), !parts[1].isEmpty, !url.contains(" ") else {
            reader.error("invalid URL \"\(NotificationChannel.originOnly(url))\" (must start with https:// or http://)", at: node, path: section.path(key))
            return nil
        }
        return url
    }

    /// `local@domain` with no spaces, angle brackets or line breaks (they would break the SMTP envelope or headers).
    static func isMailAddress(_ text: String) -> Bool {
        guard let at = text.lastIndex(of: "@"), at != text.startIndex, text.index(after: at) != text.endIndex else { return false }
        return !text.contains { $0.isWhitespace || $0.isNewline || "<>\",;".contains($0) } && text.utf8.count <= 254
    }
}
