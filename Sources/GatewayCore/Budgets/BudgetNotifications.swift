import Foundation
import Logging

extension NotificationEvent {
    /// A budget's event as the outbox delivers it.
    public init(_ event: BudgetEvent) {
        var bucket: [String: String] = [:]
        for value in event.bucket { bucket[value.dimension] = value.value }
        self.init(
            id: event.id, type: event.type, action: event.resolves ? .resolve : .trigger, budget: event.budget, bucket: bucket, threshold: event.threshold,
            spentUSD: BudgetMoney.usd(event.spentNanos), limitUSD: BudgetMoney.usd(event.limitNanos),
            windowStart: Date(timeIntervalSince1970: Double(event.span.startMillis) / 1000),
            windowEnd: Date(timeIntervalSince1970: Double(event.span.endMillis) / 1000),
            occurredAt: Date(timeIntervalSince1970: Double(event.occurredAtMillis) / 1000), channels: event.channels, summary: event.summary)
    }
}

extension NotificationOutbox {
    /// Publishes `event`, trying again while the outbox's database is unreachable (every second at first, at most
    /// a minute apart, for up to a day), so an alert raised during a database outage is delivered after it. An
    /// event for no channel is not stored. Runs off the request path.
    func publishRetrying(_ event: NotificationEvent, logger: Logger) async {
        guard !event.channels.isEmpty else { return }
        var wait = Duration.seconds(1)
        let giveUp = ContinuousClock.now + .seconds(86_400)
        while true {
            do {
                _ = try await publish(event)
                return
            } catch {
                guard ContinuousClock.now < giveUp, !Task.isCancelled else {
                    logger.error("a notification could not be stored and is dropped", metadata: ["event": "\(event.id)", "error": "\(error)"])
                    return
                }
                logger.warning("a notification could not be stored yet; trying again", metadata: ["event": "\(event.id)", "error": "\(error)"])
                try? await Task.sleep(for: wait)
                wait = min(wait * 2, .seconds(60))
            }
        }
    }
}
