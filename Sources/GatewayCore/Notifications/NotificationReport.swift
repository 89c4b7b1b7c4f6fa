import Foundation

extension NotificationOutbox {
    /// `GET /notifications` on the admin socket: every configured channel (its target redacted) with its counts and
    /// last error, and the oldest pending events. No secret appears: targets show a URL's scheme and host only,
    /// and errors were sanitised when they were stored.
    ///
    /// ```json
    /// {"backend": "sqlite", "give_up_after": "24h",
    ///  "channels": [{"name": "ops-slack", "type": "slack", "target": "https://hooks.slack.com/[redacted]",
    ///                "pending": 1, "delivered": 12, "failing": 1, "failed": 0, "last_error": "HTTP 503", ...}],
    ///  "oldest_pending": [{"id": "...", "type": "budget.threshold", "channel": "ops-slack", "attempts": 3, ...}]}
    /// ```
    public func adminJSON(oldest: Int = 20) async throws -> JSON {
        let settings = self.settings()
        // Nothing configured: the store is not opened just to say so.
        let report = settings.channels.isEmpty ? OutboxReport() : try await report(oldest: oldest)
        let names = Set(settings.channels.keys).union(report.channels.keys).sorted()
        let channels: [JSON] = names.map { name in
            let counts = report.channels[name] ?? OutboxReport.Channel(name: name)
            let channel = settings.channels[name]
            return [
                "name": .string(name),
                "type": channel.map { .string($0.type) } ?? "(not configured)",
                "target": channel.map { .string($0.redactedTarget) } ?? .null,
                "pending": .int(Int64(counts.pending)),
                "delivered": .int(Int64(counts.delivered)),
                "failing": .int(Int64(counts.failing)),
                "failed": .int(Int64(counts.failed)),
                "last_error": counts.lastError.map(JSON.string) ?? .null,
                "last_error_at": Self.time(counts.lastErrorAtMicros),
                "last_delivered_at": Self.time(counts.lastDeliveredAtMicros),
            ]
        }
        let pending: [JSON] = report.oldestPending.map { row in
            [
                "id": .string(row.eventID),
                "type": .string(row.type),
                "channel": .string(row.channel),
                "created_at": Self.time(row.createdAtMicros),
                "attempts": .int(Int64(row.attempts)),
                "next_attempt_at": Self.time(row.nextAttemptAtMicros),
                "last_error": row.lastError.map(JSON.string) ?? .null,
            ]
        }
        return [
            "backend": await backend.map(JSON.string) ?? .null,
            "give_up_after": .string(Units.format(settings.giveUpAfter)),
            "channels": .array(channels),
            "oldest_pending": .array(pending),
        ]
    }

    private static func time(_ micros: Int64?) -> JSON {
        micros.map { .string(UnixTime.iso8601(micros: $0)) } ?? .null
    }
}

extension AdminReport {
    /// `GET /notifications`: one line per channel, then the oldest pending events.
    public static func notifications(_ json: JSON) -> String {
        let channels = (json["channels"]?.arrayValue ?? []).map { channel in
            [
                text(channel["name"]), text(channel["type"]), text(channel["pending"]), text(channel["delivered"]),
                text(channel["failing"]), text(channel["failed"]), text(channel["last_delivered_at"]), text(channel["last_error"]),
            ]
        }
        var output = TextTable.render(
            header: ["CHANNEL", "TYPE", "PENDING", "DELIVERED", "FAILING", "FAILED", "LAST DELIVERED", "LAST ERROR"], rows: channels,
            leftAligned: [0, 1, 6, 7])
        if channels.isEmpty { output += "(no channels configured)\n" }
        let pending = (json["oldest_pending"]?.arrayValue ?? []).map { row in
            [text(row["id"]), text(row["type"]), text(row["channel"]), text(row["created_at"]), text(row["attempts"]), text(row["next_attempt_at"])]
        }
        if !pending.isEmpty {
            output += "\n" + TextTable.render(
                header: ["OLDEST PENDING", "TYPE", "CHANNEL", "CREATED", "ATTEMPTS", "NEXT ATTEMPT"], rows: pending, leftAligned: [0, 1, 2, 3, 5])
        }
        output += "backend \(text(json["backend"])), give up after \(text(json["give_up_after"]))\n"
        return output
    }
}
