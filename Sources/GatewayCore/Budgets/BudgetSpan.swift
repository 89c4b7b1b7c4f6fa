import Foundation

/// One window of a budget, at one instant: when it started, when it resets, and the counter slots that are in it.
public struct BudgetSpan: Sendable, Equatable {
    /// Milliseconds since 1970 at the window's start (inclusive) and end (exclusive).
    public var startMillis: Int64
    public var endMillis: Int64
    /// The slot spend goes to now, and the oldest slot that still counts. A calendar window has one slot (0) in a
    /// counter of its own; a rolling window keeps `BudgetWindow.rollingSlots` slots numbered by time.
    public var currentSlot: Int64
    public var oldestSlot: Int64
    /// Names the window in storage keys: a calendar window's start in seconds; "rolling" for a rolling one, whose
    /// counter lives on.
    public var storageID: String

    /// Whole seconds from `nowMillis` to the reset, rounded up, at least 1.
    public func secondsToReset(fromMillis nowMillis: Int64) -> Int {
        Int(max(1, (endMillis - nowMillis + 999) / 1000))
    }
}

extension BudgetWindow {
    /// The span in force at `millis` (since 1970) in `timeZone`.
    public func span(atMillis millis: Int64, in timeZone: TimeZone) -> BudgetSpan {
        switch self {
        case .rolling(let duration):
            let slotMillis = max(1, Int64(duration.components.seconds) * 1000 / Int64(Self.rollingSlots))
            let current = millis / slotMillis
            let oldest = current - Int64(Self.rollingSlots) + 1
            return BudgetSpan(
                startMillis: oldest * slotMillis, endMillis: (current + 1) * slotMillis, currentSlot: current, oldestSlot: oldest,
                storageID: "rolling")
        case .calendar(let unit):
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = timeZone
            calendar.firstWeekday = 2  // ISO weeks start on Monday
            let date = Date(timeIntervalSince1970: Double(millis) / 1000)
            let component: Calendar.Component = switch unit {
            case .hour: .hour
            case .day: .day
            case .week: .weekOfYear
            case .month: .month
            }
            let interval = calendar.dateInterval(of: component, for: date)
                ?? DateInterval(start: date, duration: 3600)
            let start = Int64((interval.start.timeIntervalSince1970 * 1000).rounded())
            let end = Int64((interval.end.timeIntervalSince1970 * 1000).rounded())
            return BudgetSpan(startMillis: start, endMillis: end, currentSlot: 0, oldestSlot: 0, storageID: String(start / 1000))
        }
    }
}
