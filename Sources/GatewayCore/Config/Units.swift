import Foundation

/// Durations and byte sizes as `gateway.yaml` writes them.
///
/// Durations are whole numbers with a unit, optionally chained from the largest unit down:
/// `250ms`, `30s`, `5m`, `1h`, `1m30s`, `1h15m`. A bare `0` is also accepted.
///
/// Sizes are whole bytes (`1048576`) or a number with a unit. Binary units (`KiB`, `MiB`, `GiB`, `TiB`)
/// are powers of 1024; decimal units (`KB`, `MB`, `GB`, `TB`) are powers of 1000, as on a disk label;
/// `B` is bytes. Units are case-insensitive and may follow a space (`20 MiB`); a fraction is allowed
/// when the result is whole bytes (`1.5KiB`). Bare `K`, `M`, `G` are refused because they are ambiguous.
public enum Units {
    /// The longest duration a setting takes: 100,000 hours (about 11 years), well within what a timer holds.
    static let longestDurationMilliseconds: Int64 = 100_000 * 3_600_000

    /// Parses a duration such as `250ms`, `1h` or `1m30s`.
    /// - Parameter text: The value from the file.
    /// - Returns: The duration.
    /// - Throws: `UnitParseError` naming what is wrong.
    public static func parseDuration(_ text: String) throws(UnitParseError) -> Duration {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let invalid = UnitParseError(message: "invalid duration \"\(text)\" (use ms, s, m or h, e.g. 250ms, 30s, 1m30s)")
        if trimmed == "0" { return .zero }
        guard !trimmed.isEmpty else { throw invalid }

        var milliseconds: Int64 = 0
        var previousRank = Int.max
        var rest = Substring(trimmed)
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let amount = Int64(digits) else {
                if rest.first == "." || rest.first == "-" || rest.first == "+" {
                    throw UnitParseError(message: "invalid duration \"\(text)\" (use a whole, non-negative number with ms, s, m or h, e.g. 1500ms)")
                }
                throw invalid
            }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            guard let scale = durationUnits.first(where: { $0.name == unit }) else {
                if unit.isEmpty {
                    throw UnitParseError(message: "invalid duration \"\(text)\": missing unit after \(digits) (use ms, s, m or h)")
                }
                throw UnitParseError(message: "invalid duration \"\(text)\": unknown unit \"\(unit)\" (use ms, s, m or h)")
            }
            guard scale.rank < previousRank else {
                throw UnitParseError(message: "invalid duration \"\(text)\": write units from largest to smallest, each once (e.g. 1h30m)")
            }
            previousRank = scale.rank
            let (product, overflow1) = amount.multipliedReportingOverflow(by: scale.milliseconds)
            let (sum, overflow2) = milliseconds.addingReportingOverflow(product)
            guard !overflow1, !overflow2 else {
                throw UnitParseError(message: "invalid duration \"\(text)\": too large")
            }
            milliseconds = sum
        }
        // Timers count nanoseconds in an Int64 (NIO's TimeAmount), about 292 years at most: refuse far less than that.
        guard milliseconds <= longestDurationMilliseconds else {
            throw UnitParseError(message: "invalid duration \"\(text)\": too large (at most 100000h)")
        }
        return .milliseconds(milliseconds)
    }

    /// Parses a size such as `20MiB`, `512KB` or `1048576` into bytes.
    /// - Parameter text: The value from the file.
    /// - Returns: The number of bytes.
    /// - Throws: `UnitParseError` naming what is wrong.
    public static func parseSize(_ text: String) throws(UnitParseError) -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let hint = "use bytes, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000)"
        let number = trimmed.prefix { ($0.isASCII && $0.isNumber) || $0 == "." }
        let unit = trimmed.dropFirst(number.count).trimmingCharacters(in: .whitespaces)
        guard !number.isEmpty, number.filter({ $0 == "." }).count <= 1, number.first != ".", number.last != "." else {
            if trimmed.hasPrefix("-") {
                throw UnitParseError(message: "invalid size \"\(text)\": must not be negative")
            }
            throw UnitParseError(message: "invalid size \"\(text)\" (\(hint))")
        }
        guard let multiplier = sizeUnits[unit.lowercased()] else {
            throw UnitParseError(message: "invalid size \"\(text)\": unknown unit \"\(unit)\" (\(hint))")
        }
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        let tooLarge = UnitParseError(message: "invalid size \"\(text)\": too large")
        guard let whole = Int(parts[0]) else { throw tooLarge }
        var (bytes, overflow) = whole.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw tooLarge }
        if parts.count == 2 {
            // The fraction must land on a whole byte: 1.5KiB is 1536 bytes, 1.3B is nonsense.
            let digits = parts[1]
            guard digits.count <= 18, let numerator = Int(digits) else { throw tooLarge }
            var denominator = 1
            for _ in 0..<digits.count { denominator *= 10 }
            let (scaled, overflow2) = numerator.multipliedReportingOverflow(by: multiplier)
            guard !overflow2 else { throw tooLarge }
            guard scaled % denominator == 0 else {
                throw UnitParseError(message: "invalid size \"\(text)\": not a whole number of bytes")
            }
            (bytes, overflow) = bytes.addingReportingOverflow(scaled / denominator)
            guard !overflow else { throw tooLarge }
        }
        return bytes
    }

    /// Formats a duration the way the file writes it, e.g. `1m30s`, `250ms`, `0s`.
    ///
    /// Sub-millisecond parts are dropped. The result parses back with `parseDuration(_:)`.
    public static func format(_ duration: Duration) -> String {
        var milliseconds = duration.wholeMilliseconds
        guard milliseconds > 0 else { return "0s" }
        var text = ""
        for unit in durationUnits where milliseconds >= unit.milliseconds {
            text += "\(milliseconds / unit.milliseconds)\(unit.name)"
            milliseconds %= unit.milliseconds
        }
        return text
    }

    /// Formats a byte count with the largest binary unit that divides it exactly, e.g. `20MiB`, `1536B`.
    ///
    /// The result parses back with `parseSize(_:)`.
    public static func formatSize(_ bytes: Int) -> String {
        for (name, multiplier) in [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where bytes != 0 && bytes % multiplier == 0 {
            return "\(bytes / multiplier)\(name)"
        }
        return "\(bytes)B"
    }

    // MARK: - Tables

    private struct DurationUnit {
        var name: String
        var milliseconds: Int64
        var rank: Int
    }

    private static let durationUnits = [
        DurationUnit(name: "h", milliseconds: 3_600_000, rank: 3),
        DurationUnit(name: "m", milliseconds: 60_000, rank: 2),
        DurationUnit(name: "s", milliseconds: 1000, rank: 1),
        DurationUnit(name: "ms", milliseconds: 1, rank: 0),
    ]

    private static let sizeUnits: [String: Int] = [
        "": 1, "b": 1,
        "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
        "kb": 1_000, "mb": 1_000_000, "gb": 1_000_000_000, "tb": 1_000_000_000_000,
    ]
}

/// Why a duration or size could not be read; the message quotes the value and says what to write instead.
public struct UnitParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Operator-facing explanation.
    public var message: String
    /// Creates an error.
    public init(message: String) { self.message = message }
    public var description: String { message }
}

extension Duration {
    /// Whole milliseconds, rounded down (what latencies are logged and reported in).
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
