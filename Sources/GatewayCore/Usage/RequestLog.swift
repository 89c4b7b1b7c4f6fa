#if canImport(Glibc)
import Glibc
#endif
import Atomics
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The request log's writer: takes records without waiting and writes them to the store in batches.
///
/// `record(_:)` only appends to an in-memory queue. The service's `run()` migrates the store (retrying with
/// backoff while the database is down), then writes a batch every `flushInterval`, or sooner when
/// `batchSize` records are queued. Nothing is dropped:
/// - a batch the store refuses is appended to the spool file (one JSON object per line, fsync'd);
/// - when the queue holds `maxQueued` records, `record(_:)` moves it to the spool itself;
/// - once the store accepts writes again, the spool is replayed in order and emptied only after all of it is
///   written (rows are idempotent on `requestID`, so a crash mid-replay duplicates nothing);
/// - graceful shutdown writes the queue, or spools it when the store fails;
/// - a new writer on the same spool replays what the last one left;
/// - a row the store refuses for its own values (`RequestLogStore.refusesRows`), not for an outage, is found by
///   splitting its batch until it stands alone, and moved with the store's error to the rejected-rows file
///   (`<spool>.rejected`, one JSON object per line): it never holds back the rows around it, nor the spool.
///
/// ```swift
/// let log = RequestLog(store: store, spoolPath: "/var/lib/llm-gateway/requests.spool", batchSize: 500,
///                      flushInterval: .seconds(1), logger: logger)
/// // run `log` in the ServiceGroup before the HTTP servers that call `log.record(_:)`
/// ```
public final class RequestLog: Service, RequestRecordSink {
    private let store: any RequestLogStore
    /// The database the log writes to (budgets rebuild their spend from it).
    var backingStore: any RequestLogStore { store }
    private let spool: RequestSpool
    private let batchSize: Int
    private let flushInterval: Duration
    private let maxQueued: Int
    private let logger: Logger

    private struct Queue {
        var records: [RequestRecord] = []
        /// After the final flush: late records go straight to the spool.
        var stopped = false
    }

    /// When the store may be tried next; only touched inside `gate`.
    private struct Health {
        var migrated = false
        var failing = false
        var backoff: Duration = .zero
        var nextAttempt = ContinuousClock.now
    }

    private let queue = NIOLockedValueBox(Queue())
    private let health = NIOLockedValueBox(Health())
    private let wake = WakeSignal()
    private let gate = SerialGate()
    private let stopping = ManagedAtomic(false)
    private let outage = OutageLog(name: "request log store")
    private let writtenCount = ManagedAtomic(0)
    private let spooledCount = ManagedAtomic(0)
    private let droppedCount = ManagedAtomic(0)
    private let rejectedCount = ManagedAtomic(0)
    /// Rows the store refused for their own values, each with the store's error.
    private let rejectedRows: RequestSpool
    /// Told of each batch once the store has it (`onWritten`).
    private let writeObservers = NIOLockedValueBox<[@Sendable ([RequestRecord]) -> Void]>([])
    /// When expired stored responses were last purged; only touched inside `gate`.
    private let lastPurge = NIOLockedValueBox<ContinuousClock.Instant?>(nil)

    /// How often expired stored responses (`stored_responses`) are deleted.
    static let purgeInterval: Duration = .seconds(3600)

    static let initialBackoff: Duration = .milliseconds(500)
    static let maximumBackoff: Duration = .seconds(30)

    /// Makes a writer; nothing is written until `run()` (or `flush()`).
    /// - Parameters:
    ///   - store: Where rows go.
    ///   - spoolPath: The spool file (created with its folder when needed).
    ///   - batchSize: Rows per insert, and the queue length that triggers a write before `flushInterval`.
    ///   - flushInterval: The longest a record waits in memory.
    ///   - maxQueued: The queue length at which records go to the spool instead.
    ///   - logger: Where outages and spool problems are reported.
    public init(
        store: any RequestLogStore, spoolPath: String, batchSize: Int, flushInterval: Duration, maxQueued: Int = 100_000,
        logger: Logger
    ) {
        self.store = store
        self.spool = RequestSpool(path: spoolPath)
        self.rejectedRows = RequestSpool(path: spoolPath + ".rejected")
        self.batchSize = max(1, batchSize)
        self.flushInterval = flushInterval
        self.maxQueued = max(1, maxQueued)
        self.logger = logger
    }

    // MARK: - Counters

    /// Rows the store accepted (replayed rows included).
    public var written: Int { writtenCount.load(ordering: .relaxed) }
    /// Rows appended to the spool.
    public var spooled: Int { spooledCount.load(ordering: .relaxed) }
    /// Rows waiting in memory.
    public var queued: Int { queue.withLockedValue { $0.records.count } }
    /// Rows lost because neither the store nor the spool file would take them.
    public var dropped: Int { droppedCount.load(ordering: .relaxed) }
    /// Rows the store refused for their own values, moved to the rejected-rows file.
    public var rejected: Int { rejectedCount.load(ordering: .relaxed) }
    /// The rejected-rows file: `<spool>.rejected`.
    public var rejectedRowsPath: String { rejectedRows.path }

    // MARK: - Recording

    /// Queues `record` for the next batch; never waits for the database.
    public func record(_ record: RequestRecord) {
        enum Action { case none, wake, spill([RequestRecord]) }
        let action: Action = queue.withLockedValue { queue in
            if queue.stopped { return .spill([record]) }
            queue.records.append(record)
            if queue.records.count >= maxQueued {
                defer { queue.records = [] }
                return .spill(queue.records)
            }
            return queue.records.count == batchSize ? .wake : .none
        }
        switch action {
        case .none: break
        case .wake: wake.notify()
        case .spill(let records):
            // The caller is on an event loop: the spool's write and fsync go to the thread pool.
            Task(executorPreference: TaskPlacement.preferredExecutor) { await self.spoolOffLoop(records) }
        }
    }

    /// Calls `observer` with each batch of records once the store has written it (the spool's replay included).
    public func onWritten(_ observer: @escaping @Sendable ([RequestRecord]) -> Void) {
        writeObservers.withLockedValue { $0.append(observer) }
    }

    // MARK: - Service

    /// Migrates, then writes batches until graceful shutdown; then writes (or spools) what is left.
    /// Writes batches until graceful shutdown, then flushes (or spools) what is queued.
    public func run() async throws {
        await withGracefulShutdownHandler {
            while !stopping.load(ordering: .relaxed), !Task.isCancelled {
                await gate.run { await cycle(force: false) }
                await wake.wait(timeout: flushInterval)
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.wake.notify()
        }
        await gate.run { await finalFlush() }
    }

    /// Closes the store once the writer has stopped (the daemon calls it after its services ended).
    public func closeStore() async {
        await store.close()
    }

    /// Writes everything queued now (retrying the store at once even during a backoff) and replays the spool.
    public func flush() async {
        await gate.run { await cycle(force: true) }
    }

    // MARK: - Writing

    /// One pass: make sure the schema exists, write what is queued batch by batch, replay the spool.
    ///
    /// A pass writes whole batches of what is queued when it starts; a partial batch only when it is all there is
    /// (the flush interval passed) or when `force`d. Records that arrive meanwhile wait for the next pass: chasing
    /// them would, under steady load, write a few rows per transaction, each rewriting the same index pages.
    private func cycle(force: Bool) async {
        guard await storeUsable(force: force) else {
            await spoolOffLoop(takeAll())
            return
        }
        var remaining = queue.withLockedValue { $0.records.count }
        if !force, remaining >= batchSize { remaining -= remaining % batchSize }
        while remaining > 0 {
            let batch = take(min(batchSize, remaining))
            if batch.isEmpty { break }
            remaining -= batch.count
            do {
                try await insertSettingAsideRefusedRows(batch)
                storeSucceeded()
            } catch {
                storeFailed(error)
                await spoolOffLoop(batch + takeAll())
                return
            }
        }
        await replaySpool()
        await purgeExpiredResponses()
    }

    /// Deletes the stored responses past their TTL, once per `purgeInterval` (lookups skip them before that).
    private func purgeExpiredResponses() async {
        let now = ContinuousClock.now
        if let last = lastPurge.withLockedValue({ $0 }), now - last < Self.purgeInterval { return }
        lastPurge.withLockedValue { $0 = now }
        do {
            let purged = try await store.purgeStoredResponses(expiredBeforeMicros: UnixTime.nowMicros())
            if purged > 0 { logger.info("purged expired stored responses", metadata: ["responses": "\(purged)"]) }
        } catch {
            logger.warning("purging expired stored responses failed", metadata: ["error": "\(error)"])
        }
    }

    /// Whether to try the store now; migrates first when needed.
    private func storeUsable(force: Bool) async -> Bool {
        let health = self.health.withLockedValue { $0 }
        if health.failing, !force, ContinuousClock.now < health.nextAttempt { return false }
        if health.migrated { return true }
        do {
            try await store.migrate()
            self.health.withLockedValue { $0.migrated = true }
            storeSucceeded()
            return true
        } catch {
            storeFailed(error)
            return false
        }
    }

    /// Writes the spool back in order, batch by batch; empties it only when all of it is written.
    private func replaySpool() async {
        let end: Int
        do {
            end = try await onThreadPool { [spool] in try spool.size() }
        } catch {
            logger.error("cannot read the request log spool", metadata: ["path": "\(spool.path)", "error": "\(error)"])
            return
        }
        guard end > 0 else { return }
        var offset = 0
        var replayed = 0
        while offset < end {
            let chunk: RequestSpool.Chunk
            do {
                chunk = try await onThreadPool { [spool, batchSize, offset] in try spool.read(from: offset, upTo: end, limit: batchSize) }
            } catch {
                logger.error("cannot read the request log spool", metadata: ["path": "\(spool.path)", "error": "\(error)"])
                return
            }
            if chunk.malformed > 0 {
                logger.error("skipped unreadable lines in the request log spool", metadata: ["lines": "\(chunk.malformed)"])
            }
            if !chunk.records.isEmpty {
                do {
                    try await insertSettingAsideRefusedRows(chunk.records)
                } catch {
                    storeFailed(error)
                    return
                }
                replayed += chunk.records.count
            }
            offset = chunk.end
        }
        storeSucceeded()
        do {
            try await onThreadPool { [spool] in try spool.discard(prefix: end) }
            logger.notice("replayed the request log spool", metadata: ["rows": "\(replayed)"])
        } catch {
            logger.error("cannot empty the request log spool", metadata: ["path": "\(spool.path)", "error": "\(error)"])
        }
    }

    /// After shutdown: write the queue once, or spool it; later records go to the spool directly.
    private func finalFlush() async {
        let batch = queue.withLockedValue { queue in
            queue.stopped = true
            defer { queue.records = [] }
            return queue.records
        }
        guard !batch.isEmpty else { return }
        var usable = self.health.withLockedValue { $0.migrated }
        if !usable { usable = (try? await store.migrate()) != nil }
        guard usable else {
            await spoolOffLoop(batch)
            return
        }
        for start in stride(from: 0, to: batch.count, by: batchSize) {
            let slice = Array(batch[start..<min(start + batchSize, batch.count)])
            do {
                try await insertSettingAsideRefusedRows(slice)
            } catch {
                storeFailed(error)
                await spoolOffLoop(Array(batch[start...]))
                return
            }
        }
    }

    /// Writes `batch`. When the store refuses it for a row's values, writes its halves in turn, down to single rows:
    /// a row refused alone goes to the rejected-rows file with the store's error, and the others are written.
    /// - Throws: the store's error when it is unavailable (the caller spools the batch; rows are idempotent).
    private func insertSettingAsideRefusedRows(_ batch: [RequestRecord]) async throws {
        do {
            try await store.insert(batch)
            writtenCount.wrappingIncrement(by: batch.count, ordering: .relaxed)
            for observer in writeObservers.withLockedValue({ $0 }) { observer(batch) }
        } catch where store.refusesRows(error) {
            guard batch.count > 1 else {
                await setAside(batch[0], error: error)
                return
            }
            let middle = batch.count / 2
            try await insertSettingAsideRefusedRows(Array(batch[..<middle]))
            try await insertSettingAsideRefusedRows(Array(batch[middle...]))
        }
    }

    /// Moves a refused row to the rejected-rows file (on the thread pool), with the store's error.
    private func setAside(_ record: RequestRecord, error: any Error) async {
        rejectedCount.wrappingIncrement(ordering: .relaxed)
        logger.error(
            "the request log refused a row; it is kept in the rejected-rows file",
            metadata: ["request_id": "\(record.requestID)", "path": "\(rejectedRows.path)", "error": "\(error)"])
        var line = record.spoolJSON
        line["rejected_because"] = .string("\(error)")
        do {
            try await onThreadPool { [rejectedRows, line] in try rejectedRows.append(lines: [line]) }
        } catch {
            droppedCount.wrappingIncrement(ordering: .relaxed)
            logger.critical("request log row lost: the rejected-rows file cannot be written", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Helpers

    private func take(_ count: Int) -> [RequestRecord] {
        queue.withLockedValue { queue in
            let batch = Array(queue.records.prefix(count))
            queue.records.removeFirst(batch.count)
            return batch
        }
    }

    private func takeAll() -> [RequestRecord] {
        queue.withLockedValue { queue in
            defer { queue.records = [] }
            return queue.records
        }
    }

    /// Appends to the spool (which fsyncs) on the thread pool: the writer's task runs on an event loop.
    private func spoolOffLoop(_ records: [RequestRecord]) async {
        guard !records.isEmpty else { return }
        _ = try? await onThreadPool { self.spoolRecords(records) }
    }

    /// Appends to the spool here and now; `record(_:)` calls it only when the queue is full or closed.
    private func spoolRecords(_ records: [RequestRecord]) {
        guard !records.isEmpty else { return }
        do {
            try spool.append(records)
            spooledCount.wrappingIncrement(by: records.count, ordering: .relaxed)
        } catch {
            droppedCount.wrappingIncrement(by: records.count, ordering: .relaxed)
            logger.critical(
                "request log rows lost: the spool cannot be written",
                metadata: ["path": "\(spool.path)", "rows": "\(records.count)", "error": "\(error)"])
        }
    }

    private func storeSucceeded() {
        health.withLockedValue { health in
            health.failing = false
            health.backoff = .zero
        }
        outage.succeeded(logger: logger)
    }

    private func storeFailed(_ error: any Error) {
        health.withLockedValue { health in
            health.failing = true
            health.backoff = health.backoff == .zero ? Self.initialBackoff : min(health.backoff * 2, Self.maximumBackoff)
            health.nextAttempt = ContinuousClock.now + health.backoff
        }
        outage.failed(error, logger: logger, consequence: "request log rows go to the spool \(spool.path)")
    }
}

// MARK: - Spool file

/// An append-only file of records, one JSON object per line.
///
/// Every append is fsync'd before it returns. All access is under one lock, so appends from `record(_:)`
/// and a replay in progress never interleave.
final class RequestSpool: Sendable {
    let path: String
    private let lock = NIOLock()

    init(path: String) {
        self.path = path
    }

    struct Chunk {
        var records: [RequestRecord]
        /// Offset just after the last line read.
        var end: Int
        var malformed: Int
    }

    /// Bytes in the file (0 when it does not exist).
    func size() throws -> Int {
        try lock.withLock { try unlockedSize() }
    }

    /// Appends `records` and fsyncs.
    func append(_ records: [RequestRecord]) throws {
        try append(lines: records.map(\.spoolJSON))
    }

    /// Appends one line per object, fsync'd.
    func append(lines: [JSON]) throws {
        var text = ""
        for line in lines {
            line.write(to: &text, sortedKeys: true)
            text += "\n"
        }
        try lock.withLock { () throws in
            try makeFolder()
            let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SpoolError(operation: "open", path: path, code: errno) }
            defer { close(fd) }
            // A line cut short by a crash must not swallow the next record.
            let size = lseek(fd, 0, SEEK_END)
            if size > 0 {
                var last: UInt8 = 0
                if pread(fd, &last, 1, size - 1) == 1, last != UInt8(ascii: "\n") { text = "\n" + text }
            }
            try writeAll(fd, Array(text.utf8))
            guard fsync(fd) == 0 else { throw SpoolError(operation: "fsync", path: path, code: errno) }
        }
    }

    /// Reads up to `limit` records from the lines between `offset` and `end`.
    func read(from offset: Int, upTo end: Int, limit: Int) throws -> Chunk {
        try lock.withLock { () throws -> Chunk in
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SpoolError(operation: "open", path: path, code: errno) }
            defer { close(fd) }
            var chunk = Chunk(records: [], end: offset, malformed: 0)
            var pending: [UInt8] = []
            var position = offset
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while chunk.records.count + chunk.malformed < limit, position < end {
                let wanted = min(buffer.count, end - position)
                let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t(position)) }
                guard count > 0 else {
                    if count < 0 { throw SpoolError(operation: "read", path: path, code: errno) }
                    break
                }
                position += count
                pending.append(contentsOf: buffer[0..<count])
                var lineStart = 0
                while chunk.records.count + chunk.malformed < limit,
                    let newline = pending[lineStart...].firstIndex(of: UInt8(ascii: "\n"))
                {
                    let line = pending[lineStart..<newline]
                    chunk.end += line.count + 1
                    lineStart = newline + 1
                    if line.isEmpty { continue }
                    if let record = try? JSON.parse(line), let decoded = RequestRecord(spoolJSON: record) {
                        chunk.records.append(decoded)
                    } else {
                        chunk.malformed += 1
                    }
                }
                pending.removeFirst(lineStart)
            }
            // A last line without its newline (cut short by a crash) is unreadable; skip it.
            if position >= end, !pending.isEmpty, chunk.records.count + chunk.malformed < limit {
                chunk.end += pending.count
                if let record = try? JSON.parse(pending), let decoded = RequestRecord(spoolJSON: record) {
                    chunk.records.append(decoded)
                } else {
                    chunk.malformed += 1
                }
            }
            return chunk
        }
    }

    /// Removes the first `length` bytes (all replayed), keeping whatever was appended since.
    func discard(prefix length: Int) throws {
        try lock.withLock { () throws in
            let size = try unlockedSize()
            if size <= length {
                guard truncate(path, 0) == 0 else { throw SpoolError(operation: "truncate", path: path, code: errno) }
                return
            }
            let source = open(path, O_RDONLY | O_CLOEXEC)
            guard source >= 0 else { throw SpoolError(operation: "open", path: path, code: errno) }
            defer { close(source) }
            let temporary = path + ".tmp"
            let target = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard target >= 0 else { throw SpoolError(operation: "open", path: temporary, code: errno) }
            defer { close(target) }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            var position = length
            while position < size {
                let count = buffer.withUnsafeMutableBytes { pread(source, $0.baseAddress, $0.count, off_t(position)) }
                guard count > 0 else {
                    if count < 0 { throw SpoolError(operation: "read", path: path, code: errno) }
                    break
                }
                try writeAll(target, Array(buffer[0..<count]))
                position += count
            }
            guard fsync(target) == 0 else { throw SpoolError(operation: "fsync", path: temporary, code: errno) }
            guard rename(temporary, path) == 0 else { throw SpoolError(operation: "rename", path: temporary, code: errno) }
        }
    }

    private func unlockedSize() throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return 0 }
            throw SpoolError(operation: "stat", path: path, code: errno)
        }
        return Int(info.st_size)
    }

    private func makeFolder() throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let folder = String(path[..<slash])
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw SpoolError(operation: "mkdir", path: folder, code: errno)
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SpoolError(operation: "write", path: path, code: errno)
            }
            written += count
        }
    }
}

/// A spool file operation that failed.
struct SpoolError: Error, CustomStringConvertible {
    var operation: String
    var path: String
    var code: Int32
    var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
}

// MARK: - Spool lines

extension RequestRecord {
    /// The record as one spool line (keys named like the `gateway_logs` columns).
    var spoolJSON: JSON {
        var object: [String: JSON] = [
            "request_id": .string(requestID), "created_at": .int(createdAtMicros), "endpoint": .string(endpoint),
            "status_code": .int(Int64(statusCode)), "latency_ms": .int(Int64(latencyMs)), "cache_hit": .bool(cacheHit),
            "failover_used": .bool(failoverUsed), "attempts": .int(Int64(attempts)), "stream": .bool(stream),
            "metadata": .object(metadata.mapValues { .string($0) }), "kind": .string(kind),
        ]
        let texts: [(String, String?)] = [
            ("client_request_id", clientRequestID), ("key_name", keyName), ("model", model), ("served_model", servedModel), ("provider", provider),
            ("original_provider", originalProvider), ("error_message", errorMessage), ("customer", customer), ("feature", feature),
            ("cache_hit_kind", cacheHitKind), ("cache_entry", cacheEntry),
        ]
        for (key, value) in texts { if let value { object[key] = .string(value) } }
        let integers: [(String, Int?)] = [
            ("prompt_tokens", promptTokens), ("completion_tokens", completionTokens), ("total_tokens", totalTokens),
            ("cached_tokens", cachedTokens), ("ttfb_ms", ttfbMs), ("embedder_latency_ms", embedderLatencyMs),
        ]
        for (key, value) in integers { if let value { object[key] = .int(Int64(value)) } }
        if let costUSD { object["cost_usd"] = .double(costUSD) }
        if let savedCostUSD { object["saved_cost_usd"] = .double(savedCostUSD) }
        if let cacheSimilarity { object["cache_similarity"] = .double(cacheSimilarity) }
        if let embedderCostUSD { object["embedder_cost_usd"] = .double(embedderCostUSD) }
        if let storedResponse { object["stored_response"] = storedResponse.spoolJSON }
        return .object(object)
    }

    /// Reads a spool line back; nil when required fields are missing.
    init?(spoolJSON json: JSON) {
        guard let requestID = json["request_id"]?.stringValue, let createdAt = json["created_at"]?.intValue,
            let statusCode = json["status_code"]?.intValue
        else { return nil }
        var metadata: [String: String] = [:]
        for (key, value) in json["metadata"]?.objectValue ?? [:] { metadata[key] = value.stringValue }
        self.init(
            requestID: requestID, clientRequestID: json["client_request_id"]?.stringValue, createdAtMicros: Int64(createdAt),
            keyName: json["key_name"]?.stringValue,
            endpoint: json["endpoint"]?.stringValue ?? "/v1/chat/completions", model: json["model"]?.stringValue,
            servedModel: json["served_model"]?.stringValue, provider: json["provider"]?.stringValue,
            originalProvider: json["original_provider"]?.stringValue, statusCode: statusCode,
            errorMessage: json["error_message"]?.stringValue, promptTokens: json["prompt_tokens"]?.intValue,
            completionTokens: json["completion_tokens"]?.intValue, totalTokens: json["total_tokens"]?.intValue,
            cachedTokens: json["cached_tokens"]?.intValue, costUSD: json["cost_usd"]?.doubleValue,
            savedCostUSD: json["saved_cost_usd"]?.doubleValue, latencyMs: json["latency_ms"]?.intValue ?? 0,
            ttfbMs: json["ttfb_ms"]?.intValue, cacheHit: json["cache_hit"]?.boolValue ?? false,
            failoverUsed: json["failover_used"]?.boolValue ?? false, attempts: json["attempts"]?.intValue ?? 0,
            stream: json["stream"]?.boolValue ?? false, customer: json["customer"]?.stringValue,
            feature: json["feature"]?.stringValue, metadata: metadata,
            kind: json["kind"]?.stringValue ?? "chat", cacheHitKind: json["cache_hit_kind"]?.stringValue,
            cacheSimilarity: json["cache_similarity"]?.doubleValue, cacheEntry: json["cache_entry"]?.stringValue,
            embedderCostUSD: json["embedder_cost_usd"]?.doubleValue, embedderLatencyMs: json["embedder_latency_ms"]?.intValue,
            storedResponse: json["stored_response"].flatMap(StoredResponse.init(spoolJSON:)))
    }
}

// MARK: - Concurrency helpers

/// Runs async bodies one at a time, in arrival order.
final class SerialGate: Sendable {
    private struct State {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    func run<T>(_ body: () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLockedValue { state in
                if state.busy {
                    state.waiters.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if granted { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// Wakes one waiter, or the next one to wait; a wait also ends after its timeout or on cancellation.
final class WakeSignal: Sendable {
    private enum State {
        case idle
        case pending
        case waiting(CheckedContinuation<Void, Never>)
    }

    private let state = NIOLockedValueBox(State.idle)

    func notify() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            if case .waiting(let continuation) = state {
                state = .idle
                return continuation
            }
            state = .pending
            return nil
        }
        waiter?.resume()
    }

    /// Returns at the next `notify()` (at once when one came since the last wait), after `timeout`, or on cancellation.
    func wait(timeout: Duration) async {
        let timer = LoopTimer.schedule(in: timeout) { [weak self] in self?.notify() }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLockedValue { state -> Bool in
                    if case .pending = state {
                        state = .idle
                        return true
                    }
                    state = .waiting(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            notify()
        }
    }
}
