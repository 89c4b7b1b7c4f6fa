import Foundation
import Logging

/// The time the outbox and its delivery go by: the system's, or a test's that runs ten minutes in a second.
public protocol NotificationClock: Sendable {
    /// The current time.
    func now() -> Date
    /// Waits `duration` (a test's clock may move itself forward instead); throws when cancelled.
    func sleep(for duration: Duration) async throws
}

extension NotificationClock {
    /// `now()` in microseconds since 1970, the outbox's unit.
    func nowMicros() -> Int64 { Int64((now().timeIntervalSince1970 * 1_000_000).rounded()) }
}

/// The wall clock and `Task.sleep`.
public struct SystemNotificationClock: NotificationClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

/// The durable queue of notifications: `publish` stores an event once per channel; `NotificationDelivery` sends them.
///
/// Rows live in the request log's database (see `NotificationOutboxStores`), opened at the first use; with Redis, an
/// event's id is claimed there first (`SET NX`, 40 days), so a fleet whose gateways each keep their own SQLite file
/// still stores (and delivers) each event once. Never call `publish` on a request's path: it waits for the database.
///
/// ```swift
/// Task { _ = try? await gateway.notifications.publish(event) }   // off the request path
/// ```
public final class NotificationOutbox: Sendable {
    /// How long a claimed id is remembered in Redis: longer than any budget window an event is keyed on.
    public static let redisClaimLifetime: Duration = .seconds(40 * 24 * 3600)

    /// The time publishing and delivery go by.
    public let clock: any NotificationClock
    let logger: Logger
    /// The notification settings in force (they reload): which channel names exist.
    let settings: @Sendable () -> NotificationSettings
    private let opener: StoreOpener
    private let redis: RedisClient?
    private let redisPrefix: String
    let redisOutage = OutageLog(name: "redis notification claims")

    /// An outbox over `store` (tests, or a store opened by the caller).
    /// - Parameters:
    ///   - redis: claims each event id fleet-wide before storing; nil relies on the store alone.
    ///   - redisPrefix: `redis.prefix`.
    ///   - settings: the channels in force, read at each publish and delivery.
    public convenience init(
        store: any NotificationOutboxStore, redis: RedisClient? = nil, redisPrefix: String = "llm-gateway:",
        settings: @escaping @Sendable () -> NotificationSettings, clock: any NotificationClock = SystemNotificationClock(),
        logger: Logger
    ) {
        self.init(opener: StoreOpener { store }, redis: redis, redisPrefix: redisPrefix, settings: settings, clock: clock, logger: logger)
    }

    /// The gateway's outbox: its store (`request_log`'s database, or memory) opened and migrated at its first use.
    public convenience init(
        config: GatewayConfig, redis: RedisClient?, settings: @escaping @Sendable () -> NotificationSettings,
        clock: any NotificationClock = SystemNotificationClock(), logger: Logger
    ) {
        self.init(
            opener: StoreOpener { try await NotificationOutboxStores.open(config: config, logger: logger) }, redis: redis,
            redisPrefix: config.redis.prefix, settings: settings, clock: clock, logger: logger)
    }

    private init(
        opener: StoreOpener, redis: RedisClient?, redisPrefix: String, settings: @escaping @Sendable () -> NotificationSettings,
        clock: any NotificationClock, logger: Logger
    ) {
        self.opener = opener
        self.redis = redis
        self.redisPrefix = redisPrefix
        self.settings = settings
        self.clock = clock
        self.logger = logger
    }

    /// Stores `event` for each of its channels, once per id whoever publishes it (another gateway, a restarted one).
    ///
    /// Channels not configured are skipped (and logged). Stored events are delivered by `NotificationDelivery`.
    /// Publish an event once with all its channels: with Redis, a later publish of the same id stores nothing,
    /// whatever channels it names.
    /// - Returns: true when the event was new here: at least one row was stored.
    /// - Throws: when the store cannot be opened or written; publishing again later is safe.
    public func publish(_ event: NotificationEvent) async throws -> Bool {
        let known = settings().channelNames
        var channels: [String] = []
        for channel in event.channels where !channels.contains(channel) {
            if known.contains(channel) {
                channels.append(channel)
            } else {
                logger.warning("notification for an unknown channel skipped", metadata: ["channel": "\(channel)", "event": "\(event.id)"])
            }
        }
        guard !channels.isEmpty else { return false }
        let claimKey = redisPrefix + "notification:" + KeyHash.sha256Hex(event.id)
        if let redis {
            do {
                let reply = try await redis.send(
                    "SET", claimKey, "1", "NX", "EX", String(Self.redisClaimLifetime.components.seconds))
                redisOutage.succeeded(logger: logger)
                if reply == .null { return false }
            } catch {
                // Without the claim, the store's own dedup still holds for this gateway's database.
                redisOutage.failed(error, logger: logger, consequence: "notifications are deduplicated by the outbox's database only")
            }
        }
        do {
            return try await store().insert(event, channels: channels, nowMicros: clock.nowMicros())
        } catch {
            // Let a later publish of the same event store it: the claim is ours and nothing was stored.
            _ = try? await redis?.send("DEL", claimKey)
            throw error
        }
    }

    /// Counts per channel and the `oldest` oldest pending rows.
    public func report(oldest: Int = 20) async throws -> OutboxReport {
        try await store().report(oldest: oldest)
    }

    /// The store, opened (and its schema migrated) at the first call; a failed open is tried again at the next.
    public func store() async throws -> any NotificationOutboxStore {
        try await opener.store()
    }

    /// `sqlite`, `postgres` or `memory` once opened; nil before.
    public var backend: String? {
        get async { await opener.opened?.backend }
    }

    /// Closes the store's connections, when it was opened.
    public func close() async {
        await opener.close()
    }
}

/// Opens a store once, on first use, retrying after a failure.
private actor StoreOpener {
    private let open: @Sendable () async throws -> any NotificationOutboxStore
    private var opening: Task<any NotificationOutboxStore, any Error>?
    private(set) var opened: (any NotificationOutboxStore)?

    init(_ open: @escaping @Sendable () async throws -> any NotificationOutboxStore) {
        self.open = open
    }

    struct Closed: Error, CustomStringConvertible {
        var description: String { "the notification outbox is closed" }
    }

    private var closed = false

    func store() async throws -> any NotificationOutboxStore {
        if let opened { return opened }
        guard !closed else { throw Closed() }
        let task = opening ?? Task(executorPreference: TaskPlacement.preferredExecutor) { [open] in try await open() }
        opening = task
        do {
            let store = try await task.value
            opened = store
            return store
        } catch {
            opening = nil
            throw error
        }
    }

    /// Closes the store, waiting for an open under way; later calls of `store()` throw.
    func close() async {
        closed = true
        var store = opened
        if store == nil, let opening { store = try? await opening.value }
        opened = nil
        opening = nil
        await store?.close()
    }
}
