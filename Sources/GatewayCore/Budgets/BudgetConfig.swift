import Foundation

/// `budgets[]`: a spending limit over a window, for the requests a filter selects, one counter per partition.
public struct BudgetConfig: Sendable, Equatable {
    /// Unique, `[a-z0-9_-]`.
    public var name: String
    /// The partition: one counter per distinct value of these dimensions; empty means one counter.
    public var per: [BudgetDimension] = []
    /// Which requests count: every dimension must match its glob.
    public var filter: [BudgetFilter] = []
    /// The limit, in USD.
    public var limitUSD: Double
    /// The window spend is counted over.
    public var window: BudgetWindow = .calendar(.day)
    /// The time zone calendar windows follow.
    public var timeZone: TimeZone = TimeZone(identifier: "UTC")!
    /// `hard` refuses a request the budget cannot afford; `soft` only alerts.
    public var mode: BudgetMode = .hard
    /// Percent thresholds that raise `budget.threshold`.
    public var alerts: [Int] = [70, 85, 100]
    /// Notification channel names.
    public var notify: [String] = []

    public init(name: String, limitUSD: Double) {
        self.name = name
        self.limitUSD = limitUSD
    }

    /// The limit in nano-USD, the unit every counter keeps.
    public var limitNanos: Int64 { BudgetMoney.nanos(limitUSD) }
}

/// `hard` or `soft`.
public enum BudgetMode: String, Sendable, CaseIterable {
    case hard, soft
}

/// A dimension a budget partitions or filters by.
public enum BudgetDimension: Sendable, Hashable, CustomStringConvertible {
    /// The gateway key's name.
    case key
    /// `X-Customer-Id`, else OpenAI's `user`.
    case customer
    /// `X-Feature`.
    case feature
    /// The model as requested.
    case model
    /// The provider as served (before the call: the model's first provider).
    case provider
    /// `metadata.<name>`: the request's `metadata` object or an `X-Metadata-<name>` header.
    case metadata(String)

    /// Parses `key`, `customer`, `feature`, `model`, `provider` or `metadata.<name>`.
    public init?(_ text: String) {
        switch text {
        case "key": self = .key
        case "customer": self = .customer
        case "feature": self = .feature
        case "model": self = .model
        case "provider": self = .provider
        default:
            guard text.hasPrefix("metadata."), text.count > 9 else { return nil }
            self = .metadata(String(text.dropFirst(9)).lowercased())
        }
    }

    public var description: String {
        switch self {
        case .key: "key"
        case .customer: "customer"
        case .feature: "feature"
        case .model: "model"
        case .provider: "provider"
        case .metadata(let name): "metadata.\(name)"
        }
    }
}

/// One `where` entry: a dimension and the glob its value must match.
public struct BudgetFilter: Sendable, Equatable {
    public var dimension: BudgetDimension
    public var pattern: Glob
    public init(_ dimension: BudgetDimension, _ pattern: String) {
        self.dimension = dimension
        self.pattern = Glob(pattern)
    }
}

/// What a budget's spend is counted over.
public enum BudgetWindow: Sendable, Equatable, CustomStringConvertible {
    /// Calendar units in the budget's time zone: this hour, today, this week (from Monday), this month.
    case calendar(CalendarUnit)
    /// The last `duration`, counted in 24 slots of `duration / 24` each (spend leaves the window a slot at a time).
    case rolling(Duration)

    public enum CalendarUnit: String, Sendable, CaseIterable {
        case hour, day, week, month
    }

    /// Slots a rolling window keeps.
    public static let rollingSlots = 24

    /// Parses `hour`, `day`, `week`, `month` or a duration such as `24h`.
    public static func parse(_ text: String) -> BudgetWindow? {
        if let unit = CalendarUnit(rawValue: text) { return .calendar(unit) }
        guard let duration = try? Units.parseDuration(text), duration >= .seconds(Int64(rollingSlots)) else { return nil }
        return .rolling(duration)
    }

    public var description: String {
        switch self {
        case .calendar(let unit): unit.rawValue
        case .rolling(let duration): Units.format(duration)
        }
    }
}

/// Top-level budget settings.
public struct BudgetSettings: Sendable, Equatable {
    /// What a request meets when the budget store (Redis) cannot be reached.
    public enum OnBackendError: String, Sendable { case allow, deny }
    /// `budgets_on_backend_error`.
    public var onBackendError: OnBackendError = .allow
    public init() {}
}

/// Money as the budget counters keep it: whole nano-USD (10⁻⁹ USD), so sums are exact integers everywhere (Redis
/// `HINCRBY` included) and a cost of a few tokens is never rounded to zero.
public enum BudgetMoney {
    /// Nano-USD per USD.
    public static let perUSD = 1_000_000_000.0

    /// `usd` in nano-USD, rounded to the nearest, clamped to 0…10¹⁵ ($1,000,000; far beyond any budget, and
    /// exact in a Lua number).
    public static func nanos(_ usd: Double) -> Int64 {
        guard usd.isFinite, usd > 0 else { return 0 }
        return Int64(min(usd * perUSD, 1e15).rounded())
    }

    /// Nano-USD in USD.
    public static func usd(_ nanos: Int64) -> Double { Double(nanos) / perUSD }

    /// `12.345678`: USD with six decimals, as `X-Budget-Remaining-USD` shows it (never negative).
    public static func sixDecimals(_ nanos: Int64) -> String {
        let micros = max(0, nanos) / 1000
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000).\(String(repeating: "0", count: 6 - fraction.count))\(fraction)"
    }
}
