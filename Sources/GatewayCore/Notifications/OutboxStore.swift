import Foundation
import NIOConcurrencyHelpers

/// Where the outbox's rows live: the request log's database (SQLite or PostgreSQL), or memory when the log is off.
///
/// One row per event and channel. A channel's rows go out in order of `seq`: only its oldest pending row (its head)
/// can be claimed, and a claim is a lease (`owner`, `leaseUntil`), so among gateways sharing the database one
/// delivers it, and a gateway that dies mid-delivery leaves it to the next claim after the lease.
/// Every time is microseconds since 1970 by the caller's clock.
public protocol NotificationOutboxStore: Sendable {
    /// `sqlite`, `postgres` or `memory`.
    var backend: String { get }
    /// Stores a pending row per channel of `channels` for `event`, skipping those stored already.
    /// - Returns: whether any row was new.
    func insert(_ event: NotificationEvent, channels: [String], nowMicros: Int64) async throws -> Bool
    /// Leases `channel`'s head when it is due and not leased by someone else; counts the attempt.
    func claimHead(channel: String, owner: String, nowMicros: Int64, leaseUntilMicros: Int64) async throws -> OutboxRow?
    /// Records the outcome of the attempt on `seq` that `owner` holds the lease for.
    func finish(seq: Int64, owner: String, outcome: OutboxOutcome, nowMicros: Int64) async throws
    /// Counts per channel and the oldest pending rows.
    func report(oldest: Int) async throws -> OutboxReport
    /// Removes delivered and failed rows finished before `beforeMicros`.
    func prune(beforeMicros: Int64) async throws
    func close() async
}

/// One pending row handed to a deliverer.
public struct OutboxRow: Sendable, Equatable {
    public var seq: Int64
    public var channel: String
    public var event: NotificationEvent
    /// Attempts so far, this one included.
    public var attempts: Int
    public var createdAtMicros: Int64
    /// When the first attempt was made (this one, on the first).
    public var firstAttemptAtMicros: Int64
}

/// What became of one attempt.
public enum OutboxOutcome: Sendable, Equatable {
    case delivered
    /// Try again at `atMicros`; `error` is sanitised (no secret).
    case retry(atMicros: Int64, error: String)
    /// Given up: a permanent refusal, or `give_up_after` passed.
    case failed(error: String)
}

/// `GET /notifications`: the outbox per channel, and its oldest pending rows.
public struct OutboxReport: Sendable, Equatable {
    public struct Channel: Sendable, Equatable {
        public var name: String
        public var pending = 0
        public var delivered = 0
        /// Pending rows that failed at least once and are waiting to be tried again.
        public var failing = 0
        /// Rows given up.
        public var failed = 0
        public var lastError: String?
        public var lastErrorAtMicros: Int64?
        public var lastDeliveredAtMicros: Int64?

        public init(name: String) {
            self.name = name
        }
    }

    public struct Pending: Sendable, Equatable {
        public var eventID: String
        public var type: String
        public var channel: String
        public var createdAtMicros: Int64
        public var attempts: Int
        public var nextAttemptAtMicros: Int64
        public var lastError: String?
    }

    /// By name.
    public var channels: [String: Channel] = [:]
    /// Oldest first.
    public var oldestPending: [Pending] = []

    public init() {}
}

extension NotificationEvent {
    /// The event as stored in the outbox's `event` column.
    func storedJSON() throws -> String {
        String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
    }

    static func fromStored(_ text: String) throws -> NotificationEvent {
        try JSONDecoder().decode(NotificationEvent.self, from: Data(text.utf8))
    }
}

// MARK: - Memory

/// The outbox of a gateway without a request log: rows live as long as the process.
public final class MemoryOutboxStore: NotificationOutboxStore {
    private struct Row {
        var seq: Int64
        var channel: String
        var event: NotificationEvent
        var createdAt: Int64
        var state = "pending"
        var attempts = 0
        var nextAttemptAt: Int64
        var firstAttemptAt: Int64?
        var lastAttemptAt: Int64?
        var lastError: String?
        var leaseOwner: String?
        var leaseUntil: Int64?
        var doneAt: Int64?
    }

    private let rows = NIOLockedValueBox<[Row]>([])
    public let backend = "memory"

    public init() {}

    public func insert(_ event: NotificationEvent, channels: [String], nowMicros: Int64) async throws -> Bool {
        rows.withLockedValue { rows in
            var added = false
            for channel in channels where !rows.contains(where: { $0.event.id == event.id && $0.channel == channel }) {
                rows.append(Row(seq: (rows.last?.seq ?? 0) + 1, channel: channel, event: event, createdAt: nowMicros, nextAttemptAt: nowMicros))
                added = true
            }
            return added
        }
    }

    public func claimHead(channel: String, owner: String, nowMicros: Int64, leaseUntilMicros: Int64) async throws -> OutboxRow? {
        rows.withLockedValue { rows in
            guard let index = rows.firstIndex(where: { $0.channel == channel && $0.state == "pending" }) else { return nil }
            var row = rows[index]
            guard row.nextAttemptAt <= nowMicros, (row.leaseUntil ?? .min) < nowMicros else { return nil }
            row.leaseOwner = owner
            row.leaseUntil = leaseUntilMicros
            row.attempts += 1
            row.firstAttemptAt = row.firstAttemptAt ?? nowMicros
            row.lastAttemptAt = nowMicros
            rows[index] = row
            return OutboxRow(
                seq: row.seq, channel: channel, event: row.event, attempts: row.attempts, createdAtMicros: row.createdAt,
                firstAttemptAtMicros: row.firstAttemptAt ?? nowMicros)
        }
    }

    public func finish(seq: Int64, owner: String, outcome: OutboxOutcome, nowMicros: Int64) async throws {
        rows.withLockedValue { rows in
            guard let index = rows.firstIndex(where: { $0.seq == seq && $0.leaseOwner == owner }) else { return }
            rows[index].leaseOwner = nil
            rows[index].leaseUntil = nil
            switch outcome {
            case .delivered:
                rows[index].state = "delivered"
                rows[index].doneAt = nowMicros
            case .retry(let at, let error):
                rows[index].nextAttemptAt = at
                rows[index].lastError = error
            case .failed(let error):
                rows[index].state = "failed"
                rows[index].lastError = error
                rows[index].doneAt = nowMicros
            }
        }
    }

    public func report(oldest: Int) async throws -> OutboxReport {
        rows.withLockedValue { rows in
            var report = OutboxReport()
            for row in rows {
                var channel = report.channels[row.channel] ?? OutboxReport.Channel(name: row.channel)
                switch row.state {
                case "pending":
                    channel.pending += 1
                    if row.lastError != nil { channel.failing += 1 }
                case "delivered":
                    channel.delivered += 1
                    channel.lastDeliveredAtMicros = max(channel.lastDeliveredAtMicros ?? .min, row.doneAt ?? .min)
                default:
                    channel.failed += 1
                }
                if let error = row.lastError, let at = row.lastAttemptAt, at >= (channel.lastErrorAtMicros ?? .min) {
                    channel.lastError = error
                    channel.lastErrorAtMicros = at
                }
                report.channels[row.channel] = channel
            }
            report.oldestPending = rows.filter { $0.state == "pending" }.prefix(oldest).map { row in
                OutboxReport.Pending(
                    eventID: row.event.id, type: row.event.type, channel: row.channel, createdAtMicros: row.createdAt,
                    attempts: row.attempts, nextAttemptAtMicros: row.nextAttemptAt, lastError: row.lastError)
            }
            return report
        }
    }

    public func prune(beforeMicros: Int64) async throws {
        rows.withLockedValue { rows in rows.removeAll { $0.state != "pending" && ($0.doneAt ?? .max) < beforeMicros } }
    }

    public func close() async {}
}
