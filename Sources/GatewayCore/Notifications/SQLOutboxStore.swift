import Foundation
import Logging

/// A value bound to or read from an outbox statement, in either dialect.
enum OutboxSQLValue: Sendable, Equatable {
    case integer(Int64)
    case text(String)
    case null

    var integer: Int64? { if case .integer(let value) = self { value } else { nil } }
    var text: String? { if case .text(let value) = self { value } else { nil } }
}

/// Runs one statement of the outbox's and returns its rows: the part of the outbox that differs between SQLite and
/// PostgreSQL (the statements themselves are shared: both take numbered parameters, `?1` and `$1`).
protocol OutboxSQLExecutor: Sendable {
    /// `?` for SQLite, `$` for PostgreSQL.
    var parameterPrefix: String { get }
    var backend: String { get }
    func run(_ sql: String, _ binds: [OutboxSQLValue]) async throws -> [[OutboxSQLValue]]
    func close() async
}

/// The outbox in the request log's database (`notification_outbox`, migration 0003), over either dialect.
///
/// A claim is one `UPDATE` of the channel's head (its lowest pending `seq`) that re-checks state, due time and lease:
/// under PostgreSQL's READ COMMITTED two gateways claiming the same head at once queue on the row, and the second
/// finds the lease taken and gets nothing. `FOR UPDATE SKIP LOCKED` is not used on purpose: it would hand the second
/// gateway the row after a locked head, and the channel's order would be lost.
final class SQLOutboxStore: NotificationOutboxStore {
    private let executor: any OutboxSQLExecutor

    init(executor: any OutboxSQLExecutor) {
        self.executor = executor
    }

    var backend: String { executor.backend }

    private func p(_ number: Int) -> String { executor.parameterPrefix + String(number) }

    func insert(_ event: NotificationEvent, channels: [String], nowMicros: Int64) async throws -> Bool {
        guard !channels.isEmpty else { return false }
        let rows = channels.indices.map { index in "(\(p(1)), \(p(index + 4)), \(p(2)), \(p(3)), \(p(3)))" }
        let sql = "INSERT INTO notification_outbox (event_id, channel, event, created_at, next_attempt_at) VALUES "
            + rows.joined(separator: ", ") + " ON CONFLICT (event_id, channel) DO NOTHING RETURNING seq"
        let binds: [OutboxSQLValue] = [.text(event.id), .text(try event.storedJSON()), .integer(nowMicros)] + channels.map { .text($0) }
        return try await !executor.run(sql, binds).isEmpty
    }

    func claimHead(channel: String, owner: String, nowMicros: Int64, leaseUntilMicros: Int64) async throws -> OutboxRow? {
        let sql = """
            UPDATE notification_outbox SET lease_owner = \(p(1)), lease_until = \(p(2)), attempts = attempts + 1,
                first_attempt_at = COALESCE(first_attempt_at, \(p(3))), last_attempt_at = \(p(3))
            WHERE seq = (SELECT min(seq) FROM notification_outbox WHERE channel = \(p(4)) AND state = 'pending')
                AND state = 'pending' AND next_attempt_at <= \(p(3)) AND (lease_until IS NULL OR lease_until < \(p(3)))
            RETURNING seq, event, attempts, created_at, first_attempt_at
            """
        let rows = try await executor.run(sql, [.text(owner), .integer(leaseUntilMicros), .integer(nowMicros), .text(channel)])
        guard let row = rows.first, row.count == 5, let seq = row[0].integer, let stored = row[1].text else { return nil }
        return OutboxRow(
            seq: seq, channel: channel, event: try NotificationEvent.fromStored(stored), attempts: Int(row[2].integer ?? 1),
            createdAtMicros: row[3].integer ?? nowMicros, firstAttemptAtMicros: row[4].integer ?? nowMicros)
    }

    func finish(seq: Int64, owner: String, outcome: OutboxOutcome, nowMicros: Int64) async throws {
        let change: String
        var binds: [OutboxSQLValue] = [.integer(seq), .text(owner)]
        switch outcome {
        case .delivered:
            change = "state = 'delivered', done_at = \(p(3))"
            binds.append(.integer(nowMicros))
        case .retry(let at, let error):
            change = "next_attempt_at = \(p(3)), last_error = \(p(4))"
            binds += [.integer(at), .text(error)]
        case .failed(let error):
            change = "state = 'failed', done_at = \(p(3)), last_error = \(p(4))"
            binds += [.integer(nowMicros), .text(error)]
        }
        let sql = "UPDATE notification_outbox SET \(change), lease_owner = NULL, lease_until = NULL "
            + "WHERE seq = \(p(1)) AND lease_owner = \(p(2)) RETURNING seq"
        _ = try await executor.run(sql, binds)
    }

    func report(oldest: Int) async throws -> OutboxReport {
        var report = OutboxReport()
        let counts = try await executor.run(
            """
            SELECT channel, state, count(*), sum(CASE WHEN last_error IS NOT NULL THEN 1 ELSE 0 END), max(done_at)
            FROM notification_outbox GROUP BY channel, state
            """, [])
        for row in counts where row.count == 5 {
            guard let name = row[0].text, let state = row[1].text else { continue }
            var channel = report.channels[name] ?? OutboxReport.Channel(name: name)
            let count = Int(row[2].integer ?? 0)
            switch state {
            case "pending":
                channel.pending = count
                channel.failing = Int(row[3].integer ?? 0)
            case "delivered":
                channel.delivered = count
                channel.lastDeliveredAtMicros = row[4].integer
            default:
                channel.failed = count
            }
            report.channels[name] = channel
        }
        for name in report.channels.keys {
            let last = try await executor.run(
                """
                SELECT last_error, last_attempt_at FROM notification_outbox
                WHERE channel = \(p(1)) AND last_error IS NOT NULL ORDER BY last_attempt_at DESC LIMIT 1
                """, [.text(name)])
            if let row = last.first, row.count == 2 {
                report.channels[name]?.lastError = row[0].text
                report.channels[name]?.lastErrorAtMicros = row[1].integer
            }
        }
        let pending = try await executor.run(
            """
            SELECT event_id, channel, event, created_at, attempts, next_attempt_at, last_error FROM notification_outbox
            WHERE state = 'pending' ORDER BY seq LIMIT \(p(1))
            """, [.integer(Int64(oldest))])
        report.oldestPending = pending.compactMap { row in
            guard row.count == 7, let id = row[0].text, let channel = row[1].text else { return nil }
            return OutboxReport.Pending(
                eventID: id, type: row[2].text.flatMap { try? NotificationEvent.fromStored($0).type } ?? "-", channel: channel,
                createdAtMicros: row[3].integer ?? 0, attempts: Int(row[4].integer ?? 0), nextAttemptAtMicros: row[5].integer ?? 0,
                lastError: row[6].text)
        }
        return report
    }

    func prune(beforeMicros: Int64) async throws {
        _ = try await executor.run(
            "DELETE FROM notification_outbox WHERE state <> 'pending' AND done_at < \(p(1)) RETURNING seq", [.integer(beforeMicros)])
    }

    func close() async {
        await executor.close()
    }
}
