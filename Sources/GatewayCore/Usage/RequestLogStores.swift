import Foundation
import Logging

/// Opens the request-log store the configuration chose.
public enum RequestLogStores {
    /// The store for `request_log.backend`: SQLite at `request_log.path`, PostgreSQL at `postgres.url`, or nil for `off`.
    ///
    /// The schema is not touched; call `migrate()` (the writer does at start).
    /// - Throws: the store's error when the file or URL cannot be used.
    public static func open(config: GatewayConfig, logger: Logger) async throws -> (any RequestLogStore)? {
        switch config.requestLog.backend {
        case .off:
            return nil
        case .sqlite:
            return try await SQLiteRequestLogStore(path: config.requestLog.path, logger: logger)
        case .postgres:
            return try PostgresRequestLogStore(url: config.postgres.url, poolSize: config.postgres.poolSize, logger: logger)
        }
    }
}

/// `llm-gateway stats` output: an aligned table for people, JSON for scripts.
public enum StatsReport {
    /// The rows as an aligned table with a header, and a total line when there are several groups.
    ///
    /// ```
    /// GROUP         REQUESTS  ERRORS  CACHE HIT %  PROMPT TOKENS  COMPLETION TOKENS  SPEND USD  SAVED USD  P50 MS  P95 MS
    /// gpt-4o              12       1         25.0           3400               1200   0.021000   0.004000     850    1900
    /// ```
    public static func table(_ rows: [StatsRow]) -> String {
        let header = [
            "GROUP", "REQUESTS", "ERRORS", "CACHE HIT %", "PROMPT TOKENS", "COMPLETION TOKENS", "SPEND USD", "SAVED USD",
            "P50 MS", "P95 MS",
        ]
        var lines = rows.map(cells)
        if rows.count > 1 {
            let total = StatsRow(
                group: "TOTAL", requests: rows.reduce(0) { $0 + $1.requests }, errors: rows.reduce(0) { $0 + $1.errors },
                cacheHits: rows.reduce(0) { $0 + $1.cacheHits }, promptTokens: rows.reduce(0) { $0 + $1.promptTokens },
                completionTokens: rows.reduce(0) { $0 + $1.completionTokens }, spendUSD: rows.reduce(0) { $0 + $1.spendUSD },
                savedUSD: rows.reduce(0) { $0 + $1.savedUSD }, latencyP50Ms: nil, latencyP95Ms: nil)
            lines.append(cells(total))
        }
        var text = TextTable.render(header: header, rows: lines)
        if rows.isEmpty { text += "(no requests)\n" }
        return text
    }

    /// The rows as a JSON array of objects (snake_case keys; rates in percent; null percentiles when unknown).
    public static func json(_ rows: [StatsRow]) -> String {
        let objects: [JSON] = rows.map { row in
            .object([
                "group": .string(row.group),
                "requests": .int(Int64(row.requests)),
                "errors": .int(Int64(row.errors)),
                "cache_hits": .int(Int64(row.cacheHits)),
                "cache_hit_rate_percent": .double(hitRate(row)),
                "prompt_tokens": .int(Int64(row.promptTokens)),
                "completion_tokens": .int(Int64(row.completionTokens)),
                "spend_usd": .double(row.spendUSD),
                "saved_usd": .double(row.savedUSD),
                "latency_p50_ms": row.latencyP50Ms.map { .double($0) } ?? .null,
                "latency_p95_ms": row.latencyP95Ms.map { .double($0) } ?? .null,
            ])
        }
        return JSON.array(objects).serialized(sortedKeys: true) + "\n"
    }

    /// Parses `--since`: the configuration's durations (`90m`, `24h`) plus days (`7d`, `1d12h`).
    /// - Throws: `UnitParseError` naming what is wrong.
    public static func parseSince(_ text: String) throws(UnitParseError) -> Duration {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        let rest = trimmed.dropFirst(digits.count)
        let invalid = UnitParseError(message: "invalid duration \"\(text)\" (use d, h, m, s or ms, e.g. 7d, 24h, 1d12h)")
        do throws(UnitParseError) {
            guard !digits.isEmpty, rest.first == "d" else { return try Units.parseDuration(trimmed) }
            guard let days = Int64(digits), days <= 365 * 100 else {
                throw UnitParseError(message: "invalid duration \"\(text)\": too large")
            }
            let remainder = rest.dropFirst()
            let extra = remainder.isEmpty ? Duration.zero : try Units.parseDuration(String(remainder))
            return .seconds(days * 86_400) + extra
        } catch {
            throw error.message.contains("too large") ? error : invalid
        }
    }

    /// Microseconds since 1970 at `since` before now.
    public static func sinceMicros(_ since: Duration, now: Date = Date()) -> Int64 {
        let (seconds, attoseconds) = since.components
        let sinceMicros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return Int64(now.timeIntervalSince1970 * 1_000_000) - sinceMicros
    }

    // MARK: - Cells

    private static func cells(_ row: StatsRow) -> [String] {
        [
            row.group, "\(row.requests)", "\(row.errors)", String(format: "%.1f", hitRate(row)), "\(row.promptTokens)",
            "\(row.completionTokens)", String(format: "%.6f", row.spendUSD), String(format: "%.6f", row.savedUSD),
            row.latencyP50Ms.map { String(format: "%.0f", $0) } ?? "-", row.latencyP95Ms.map { String(format: "%.0f", $0) } ?? "-",
        ]
    }

    private static func hitRate(_ row: StatsRow) -> Double {
        row.requests == 0 ? 0 : Double(row.cacheHits) * 100 / Double(row.requests)
    }
}

extension RequestLog {
    /// The writer `config.request_log` asks for, over `store`; the spool defaults to the database path plus
    /// `.spool` (SQLite) or `/var/lib/llm-gateway/requests.spool` (PostgreSQL).
    public convenience init(store: any RequestLogStore, config: GatewayConfig, logger: Logger) {
        let settings = config.requestLog
        let spool = settings.spoolPath
            ?? (settings.backend == .sqlite ? settings.path + ".spool" : "/var/lib/llm-gateway/requests.spool")
        self.init(store: store, spoolPath: spool, batchSize: settings.batchSize, flushInterval: settings.flushInterval, logger: logger)
    }
}
