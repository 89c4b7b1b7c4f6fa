import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Delivers the outbox's rows: each channel's in the order they were stored, each until delivered or given up.
///
/// Every `pollInterval` it claims the head of each configured channel (with a lease of `lease`, so a fleet on one
/// PostgreSQL delivers each row once, and a gateway killed mid-delivery leaves the row to whoever claims it after the
/// lease), sends it, and records the outcome. A failed attempt is retried after an exponential backoff with jitter,
/// at most a minute, until `notifications.give_up_after` has passed since its first attempt; the channel's next
/// row waits for it. A refusal of the event itself (see `DeliveryResult.refused`) fails it at once.
///
/// It runs in the gateway's `ServiceGroup` before the API server, so at shutdown it stops after the server has
/// drained, finishing the attempts under way.
public final class NotificationDelivery: Service, Sendable {
    let outbox: NotificationOutbox
    let metrics: GatewayMetrics?
    /// This process in leases (`lease_owner`).
    public let owner: String
    let pollInterval: Duration
    let lease: Duration
    let attemptTimeout: Duration
    /// How long delivered and failed rows are kept (as long as Redis remembers an id).
    static let retention = NotificationOutbox.redisClaimLifetime
    static let maximumBackoff: Duration = .seconds(60)

    /// - Parameters:
    ///   - metrics: counts deliveries, retries and failures per channel, and pending rows.
    ///   - pollInterval: how often each channel's head is looked at when there is nothing to send.
    ///   - lease: how long a claimed row is this gateway's; longer than `attemptTimeout`.
    ///   - attemptTimeout: bound on one attempt.
    public init(
        outbox: NotificationOutbox, metrics: GatewayMetrics? = nil, owner: String = RandomID.timeOrdered(prefix: "gw-"),
        pollInterval: Duration = .seconds(1), lease: Duration = .seconds(30), attemptTimeout: Duration = .seconds(15)
    ) {
        self.outbox = outbox
        self.metrics = metrics
        self.owner = owner
        self.pollInterval = pollInterval
        self.lease = max(lease, attemptTimeout + .seconds(5))
        self.attemptTimeout = attemptTimeout
    }

    /// Runs until graceful shutdown (or cancellation): one HTTP client for every channel, shut down at the end.
    public func run() async throws {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(5), read: TimeAmount(attemptTimeout)),
            decompression: .disabled)
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 8
        let http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        let sender = NotificationSender(http: http, timeout: attemptTimeout)
        await runLoop(sender: sender)
        try? await http.shutdown()
    }

    /// The loop, until graceful shutdown or cancellation; `sender` delivers.
    func runLoop(sender: NotificationSender) async {
        let logger = outbox.logger
        var storeProblemLogged = false
        var nextReport = Int64.min
        var nextPrune = Int64.min
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let settings = outbox.settings()
            var worked = false
            if !settings.channels.isEmpty {
                do {
                    let store = try await outbox.store()
                    storeProblemLogged = false
                    worked = await deliverHeads(settings, store: store, sender: sender)
                    let now = outbox.clock.nowMicros()
                    if now >= nextReport, let metrics {
                        nextReport = now + 5_000_000
                        let report = try await store.report(oldest: 0)
                        metrics.notificationsPending(settings.channels.keys.map { ($0, report.channels[$0]?.pending ?? 0) })
                    }
                    if now >= nextPrune {
                        nextPrune = now + 3_600_000_000
                        try await store.prune(beforeMicros: now - Int64(Self.retention.components.seconds) * 1_000_000)
                    }
                } catch {
                    if !storeProblemLogged { logger.error("notification outbox unavailable; delivery waits", metadata: ["error": "\(error)"]) }
                    storeProblemLogged = true
                }
            }
            if !worked {
                try? await cancelWhenGracefulShutdown { [clock = outbox.clock, pollInterval] in try await clock.sleep(for: pollInterval) }
            }
        }
    }

    /// One attempt on the head of each channel that has one due; true when any was attempted.
    func deliverHeads(_ settings: NotificationSettings, store: any NotificationOutboxStore, sender: NotificationSender) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            for channel in settings.channels.values {
                group.addTask { await self.deliverHead(of: channel, settings: settings, store: store, sender: sender) }
            }
            return await group.reduce(false) { $0 || $1 }
        }
    }

    private func deliverHead(
        of channel: NotificationChannel, settings: NotificationSettings, store: any NotificationOutboxStore, sender: NotificationSender
    ) async -> Bool {
        let clock = outbox.clock, logger = outbox.logger
        let now = clock.nowMicros()
        let row: OutboxRow
        do {
            guard let claimed = try await store.claimHead(
                channel: channel.name, owner: owner, nowMicros: now, leaseUntilMicros: now + Self.micros(lease))
            else { return false }
            row = claimed
        } catch {
            logger.warning("claiming a notification failed", metadata: ["channel": "\(channel.name)", "error": "\(error)"])
            return false
        }
        var result = await sender.send(row.event, via: channel)
        if Task.isCancelled, result != .delivered {
            // Stopped mid-attempt (graceful shutdown lets attempts finish; this is a cancellation): try again soon.
            result = .retry("the attempt was cancelled: the gateway stopped")
        }
        let after = clock.nowMicros()
        var metadata: Logger.Metadata = [
            "channel": "\(channel.name)", "type": "\(channel.type)", "event": "\(row.event.id)", "attempt": "\(row.attempts)",
        ]
        let outcome: OutboxOutcome
        switch result {
        case .delivered:
            outcome = .delivered
            metrics?.notificationDelivery(channel: channel.name, outcome: "delivered")
            logger.info("notification delivered", metadata: metadata)
        case .refused(let error):
            outcome = .failed(error: error)
            metadata["error"] = "\(error)"
            metrics?.notificationDelivery(channel: channel.name, outcome: "failed")
            logger.error("notification refused by its receiver; not retried", metadata: metadata)
        case .retry(let error):
            metadata["error"] = "\(error)"
            if after - row.firstAttemptAtMicros >= Self.micros(settings.giveUpAfter) {
                outcome = .failed(error: error)
                metrics?.notificationDelivery(channel: channel.name, outcome: "failed")
                logger.error("notification given up after \(Units.format(settings.giveUpAfter)) of retries", metadata: metadata)
            } else {
                let delay = Self.backoff(attempt: row.attempts)
                outcome = .retry(atMicros: after + Self.micros(delay), error: error)
                metrics?.notificationDelivery(channel: channel.name, outcome: "retried")
                // The first attempts, then one line an hour or so: a receiver down for a day is no flood.
                if row.attempts <= 3 || row.attempts % 60 == 0 { logger.warning("notification not delivered; retrying", metadata: metadata) }
            }
        }
        do {
            // Recorded even when this task is being cancelled: the attempt was made (the stores refuse work in a
            // cancelled task, and the row would wait for its lease to run out and go out again).
            let owner = self.owner
            try await Task(executorPreference: TaskPlacement.preferredExecutor) {
                try await store.finish(seq: row.seq, owner: owner, outcome: outcome, nowMicros: after)
            }.value
        } catch {
            // The lease runs out and the row is claimed again: a receiver may see it twice, with the same id.
            logger.warning("recording a notification's outcome failed", metadata: ["channel": "\(channel.name)", "error": "\(error)"])
        }
        return true
    }

    /// The wait after failed attempt number `attempt` (1, 2, …): 1 s doubling up to a minute, the last half random.
    static func backoff(attempt: Int) -> Duration {
        let ceiling = min(Double(maximumBackoff.components.seconds), pow(2, Double(min(max(attempt, 1), 16) - 1)))
        return .milliseconds(Int64((ceiling / 2 + Double.random(in: 0...(ceiling / 2))) * 1000))
    }

    static func micros(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
