import Foundation

/// A notification as a plain-text mail (RFC 5322): the same headers, Message-ID included, on every retry.
struct MailMessage: Sendable, Equatable {
    var from: String
    var recipients: [String]
    /// Headers and body with CRLF line ends, before dot-stuffing.
    var text: String

    init(event: NotificationEvent, settings: EmailSettings) {
        from = settings.from
        recipients = settings.to
        let domain = settings.from.split(separator: "@").last.map(String.init) ?? "llm-gateway"
        let headers = [
            "From: \(settings.from)",
            "To: \(settings.to.joined(separator: ", "))",
            "Subject: \(Self.encodedHeader(event.summary.isEmpty ? event.type : event.summary))",
            "Date: \(Self.rfc5322Date(event.occurredAt))",
            "Message-ID: <notification.\(KeyHash.sha256Hex(event.id).prefix(40))@\(domain)>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "X-Gateway-Event-Id: \(NotificationSender.headerSafe(event.id).prefix(900))",
        ]
        text = (headers + [""] + Self.bodyLines(event)).joined(separator: "\r\n") + "\r\n"
    }

    /// The body: the summary, then one fact a line.
    static func bodyLines(_ event: NotificationEvent) -> [String] {
        var lines = [event.summary, ""]
        lines.append("Event:     \(event.type) (\(event.action.rawValue))")
        if let budget = event.budget { lines.append("Budget:    \(budget)") }
        for (dimension, value) in event.bucket.sorted(by: { $0.key < $1.key }) { lines.append("Bucket:    \(dimension) = \(value)") }
        if let threshold = event.threshold { lines.append("Threshold: \(threshold) %") }
        lines.append("Spent:     $" + String(format: "%.6f", event.spentUSD))
        if let limit = event.limitUSD { lines.append("Limit:     $" + String(format: "%.6f", limit)) }
        lines.append("Window:    \(NotificationEvent.iso8601(event.windowStart)) to \(NotificationEvent.iso8601(event.windowEnd))")
        lines.append("Occurred:  \(NotificationEvent.iso8601(event.occurredAt))")
        lines.append("Event id:  \(event.id)")
        lines.append("")
        lines.append("-- llm-gateway")
        // No bare CR or LF inside a line, and no line past SMTP's 998 octets.
        let split: [Substring] = lines.flatMap { $0.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) }
        return split.map { line -> String in line.utf8.count > 900 ? String(line.prefix(300)) + "…" : String(line) }
    }

    /// The DATA section as sent: each line that starts with `.` doubled (RFC 5321 4.5.2), ended by `.` alone.
    var dotStuffed: String {
        var lines = text.components(separatedBy: "\r\n")
        if lines.last == "" { lines.removeLast() }
        return lines.map { $0.hasPrefix(".") ? "." + $0 : $0 }.joined(separator: "\r\n") + "\r\n.\r\n"
    }

    /// A header value in ASCII on one line: as is when it is printable ASCII, else RFC 2047 encoded words of at most
    /// 45 bytes of UTF-8 each (whole characters), folded.
    static func encodedHeader(_ value: String) -> String {
        let line = String(value.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) }.prefix(200))
        guard !line.unicodeScalars.allSatisfy({ $0.isASCII }) else { return line }
        var words: [String] = []
        var chunk = ""
        for character in line {
            if chunk.utf8.count + String(character).utf8.count > 45 {
                words.append(chunk)
                chunk = ""
            }
            chunk.append(character)
        }
        if !chunk.isEmpty { words.append(chunk) }
        return words.map { "=?UTF-8?B?" + Data($0.utf8).base64EncodedString() + "?=" }.joined(separator: "\r\n ")
    }

    /// `Mon, 07 Dec 2026 10:00:00 +0000`, in UTC, without Foundation's formatters.
    static func rfc5322Date(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }
}
