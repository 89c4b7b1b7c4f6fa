import Foundation
import Yams

// MARK: - budgets, keys[].budget, budgets_on_backend_error

extension ConfigLoader {
    static let budgetKeys = ["name", "per", "where", "limit_usd", "window", "timezone", "mode", "alerts", "notify"]
    static let keyBudgetKeys = ["limit_usd", "window", "mode", "timezone", "alerts", "notify"]

    static func readBudgets(_ top: Section, channels: Set<String>, _ reader: ConfigReader) -> [BudgetConfig] {
        guard let node = top["budgets"], let items = reader.sequence(node, path: "budgets", of: "budgets ({name: …, limit_usd: …})") else {
            return []
        }
        var budgets: [BudgetConfig] = []
        var names: [String: Node] = [:]
        for (index, item) in items.enumerated() {
            let path = "budgets[\(index)]"
            guard let section = reader.section(item, path: path, known: budgetKeys) else { continue }
            var name: String?
            if let node = section["name"], let value = reader.string(node, path: section.path("name"), allowEmpty: false) {
                if !value.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }) || value.utf8.count > 64 {
                    reader.error("budget names use a-z, 0-9, _ and - (at most 64), got \"\(value)\"", at: node, path: section.path("name"))
                } else if let first = names[value] {
                    reader.error("duplicate budget name \"\(value)\" (first used at line \(first.mark?.line ?? 0))", at: node, path: section.path("name"))
                } else {
                    names[value] = node
                    name = value
                }
            } else if section["name"] == nil {
                reader.error("missing name", at: item, path: path)
            }
            guard let limit = readBudgetBody(section, reader, requireLimit: true, channels: channels) else { continue }
            guard let name else { continue }
            var budget = limit
            budget.name = name
            if let node = section["per"], let values = reader.sequence(node, path: section.path("per"), of: "dimensions") {
                budget.per = values.enumerated().compactMap { offset, value in
                    readDimension(value, path: "\(section.path("per"))[\(offset)]", reader)
                }
            }
            if let node = section["where"], let filter = reader.section(node, path: section.path("where"), known: nil) {
                budget.filter = filter.order.compactMap { name in
                    guard let entry = filter.entries[name] else { return nil }
                    guard let dimension = readDimension(entry.key, path: filter.path(name), reader),
                        let pattern = reader.string(entry.value, path: filter.path(name), allowEmpty: false)
                    else { return nil }
                    return BudgetFilter(dimension, pattern)
                }
            }
            budgets.append(budget)
        }
        return budgets
    }

    /// `limit_usd`, `window`, `timezone`, `mode`, `alerts`, `notify` of a budget or a key's shorthand; nil when the
    /// limit is missing or invalid.
    static func readBudgetBody(_ section: Section, _ reader: ConfigReader, requireLimit: Bool, channels: Set<String>) -> BudgetConfig? {
        var budget = BudgetConfig(name: "", limitUSD: 0)
        var valid = true
        if let node = section["limit_usd"] {
            if let value = reader.double(node, path: section.path("limit_usd")) {
                if value <= 0 || value > 1_000_000 {
                    reader.error("must be more than 0 and at most 1000000 USD, got \(value)", at: node, path: section.path("limit_usd"))
                    valid = false
                } else {
                    budget.limitUSD = value
                }
            } else {
                valid = false
            }
        } else if requireLimit {
            reader.error("missing limit_usd", at: nil, path: section.path("limit_usd"))
            valid = false
        }
        if let node = section["window"], let text = reader.string(node, path: section.path("window"), allowEmpty: false) {
            if let window = BudgetWindow.parse(text) {
                budget.window = window
            } else {
                reader.error("invalid window \"\(text)\" (use hour, day, week, month, or a duration of at least 24s such as 24h)", at: node, path: section.path("window"))
            }
        }
        if let node = section["timezone"], let text = reader.string(node, path: section.path("timezone"), allowEmpty: false) {
            if let zone = TimeZone(identifier: text) {
                budget.timeZone = zone
            } else {
                reader.error("unknown time zone \"\(text)\" (use an IANA name such as UTC or Europe/Berlin)", at: node, path: section.path("timezone"))
            }
        }
        if let node = section["mode"], let mode = reader.choice(node, path: section.path("mode"), of: BudgetMode.allCases) { budget.mode = mode }
        if let node = section["alerts"], let values = reader.sequence(node, path: section.path("alerts"), of: "percentages") {
            var alerts: [Int] = []
            for (offset, value) in values.enumerated() {
                let path = "\(section.path("alerts"))[\(offset)]"
                guard let percent = reader.int(value, path: path, minimum: 1) else { continue }
                if percent > 100 {
                    reader.error("a threshold is a percent from 1 to 100, got \(percent)", at: value, path: path)
                } else {
                    alerts.append(percent)
                }
            }
            budget.alerts = Array(Set(alerts)).sorted()
        }
        if let node = section["notify"] { budget.notify = readChannelNames(node, path: section.path("notify"), channels: channels, reader) }
        return valid ? budget : nil
    }

    static func readDimension(_ node: Node, path: String, _ reader: ConfigReader) -> BudgetDimension? {
        guard let text = reader.string(node, path: path, allowEmpty: false) else { return nil }
        if let dimension = BudgetDimension(text) { return dimension }
        let names = ["key", "customer", "feature", "model", "provider", "metadata.<name>"]
        let suggestion = Suggestion.closest(to: text, in: names).map { "did you mean \"\($0)\"? " } ?? ""
        reader.error("unknown dimension \"\(text)\" (\(suggestion)use \(Suggestion.list(names)))", at: node, path: path)
        return nil
    }

    static func readBudgetSettings(_ top: Section, _ reader: ConfigReader) -> BudgetSettings {
        var settings = BudgetSettings()
        if let node = top["budgets_on_backend_error"],
            let value = reader.choice(node, path: "budgets_on_backend_error", of: [BudgetSettings.OnBackendError.allow, .deny])
        {
            settings.onBackendError = value
        }
        return settings
    }

    /// `anomaly: {factor, min_usd, notify}`; nil when the section is absent.
    static func readAnomaly(_ top: Section, channels: Set<String>, _ reader: ConfigReader) -> AnomalySettings? {
        guard top["anomaly"] != nil, let section = reader.section(top["anomaly"], path: "anomaly", known: ["factor", "min_usd", "notify"]) else {
            return nil
        }
        var settings = AnomalySettings()
        if let node = section["factor"], let value = reader.double(node, path: section.path("factor")) {
            if value <= 1 {
                reader.error("must be more than 1 (how many times the usual spend), got \(value)", at: node, path: section.path("factor"))
            } else {
                settings.factor = value
            }
        }
        if let node = section["min_usd"], let value = reader.double(node, path: section.path("min_usd")) { settings.minUSD = value }
        if let node = section["notify"] { settings.notify = readChannelNames(node, path: section.path("notify"), channels: channels, reader) }
        return settings
    }

    /// A `notify` list: each name must be a channel under `notifications.channels`.
    static func readChannelNames(_ node: Node, path: String, channels: Set<String>, _ reader: ConfigReader) -> [String] {
        guard let values = reader.sequence(node, path: path, of: "channel names") else { return [] }
        return values.enumerated().compactMap { offset, value in
            let path = "\(path)[\(offset)]"
            guard let name = reader.string(value, path: path, allowEmpty: false) else { return nil }
            guard channels.contains(name) else {
                let known = channels.isEmpty ? "notifications.channels names none" : "use \(Suggestion.list(channels.sorted()))"
                reader.error("unknown channel \"\(name)\" (\(known))", at: value, path: path)
                return nil
            }
            return name
        }
    }

    /// A key's `budget:` shorthand: a budget named `key-<name>` counting that key's requests.
    static func readKeyBudget(_ node: Node, keyName: String?, path: String, channels: Set<String>, _ reader: ConfigReader) -> BudgetConfig? {
        guard let section = reader.section(node, path: path, known: keyBudgetKeys),
            var budget = readBudgetBody(section, reader, requireLimit: true, channels: channels)
        else { return nil }
        budget.name = "key-\(keyName ?? "")"
        budget.filter = [BudgetFilter(.key, keyName ?? "")]
        return budget
    }

    /// Problems that need the whole file: a budget name a key's shorthand repeats, a hard budget over a model that
    /// has no price (its requests are refused).
    static func checkBudgets(_ top: Section, config: GatewayConfig, _ reader: ConfigReader) {
        let all = config.allBudgets
        var seen: Set<String> = []
        for budget in all where !seen.insert(budget.name).inserted {
            reader.error("budget name \"\(budget.name)\" is used twice (a key's budget: is named key-<key name>)", at: top["budgets"], path: "budgets")
        }
        let table = ModelTable(config: config)
        for budget in all where budget.mode == .hard {
            let modelFilter = budget.filter.first { $0.dimension == .model }?.pattern
            let unpriced = table.all.filter { $0.price == nil && (modelFilter?.matches($0.name) ?? true) }.map(\.name)
            guard !unpriced.isEmpty else { continue }
            reader.warning(
                "hard budget \"\(budget.name)\" covers models without a price (\(unpriced.prefix(5).joined(separator: ", "))): their requests are refused while it applies; give them a price: or use mode: soft",
                at: top["budgets"], path: "budgets")
        }
    }
}
