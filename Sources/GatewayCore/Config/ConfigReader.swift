import Yams

/// Walks the YAML tree of one file, reads typed values and collects every problem on the way.
///
/// Every accessor reports what is wrong at the node's position and returns nil, so the caller keeps
/// its default and carries on: one pass finds every problem in the file.
final class ConfigReader {
    let file: String
    let environment: [String: String]
    private(set) var problems: [ConfigProblem] = []
    /// While reading a provider, unset `${VAR}`s are collected here (the provider is disabled)
    /// instead of being errors (as they are everywhere else).
    private var unsetInProvider: [String]?
    /// True when the last `text(_:path:)` named an unset variable inside a provider, so its value is incomplete.
    private(set) var lastTextWasIncomplete = false

    init(file: String, environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    // MARK: - Problems

    func error(_ message: String, at node: Node?, path: String) {
        report(.error, message, at: node?.mark, path: path)
    }

    func warning(_ message: String, at node: Node?, path: String) {
        report(.warning, message, at: node?.mark, path: path)
    }

    /// Reports at `mark`; without one (a setting that is missing altogether), at the top of the file, so that every
    /// problem in a file that could be read has a position.
    func report(_ severity: ConfigProblem.Severity, _ message: String, at mark: Mark?, path: String) {
        report(severity, message, line: mark?.line ?? 1, column: mark?.column ?? 1, path: path)
    }

    func report(_ severity: ConfigProblem.Severity, _ message: String, line: Int, column: Int, path: String) {
        problems.append(
            ConfigProblem(severity: severity, file: file, line: line, column: column, path: path, message: message))
    }

    // MARK: - Mappings and sequences

    /// The entries of the mapping at `node`, after reporting any key not in `known` (nil: names chosen by the operator).
    ///
    /// A missing or null node is an empty section; anything else than a mapping is a type error.
    func section(_ node: Node?, path: String, known: [String]?) -> Section? {
        guard let node, !node.isNull else { return Section(path: path, entries: [:], order: []) }
        guard case .mapping(let mapping) = node else {
            error("expected a mapping of settings, got \(node.kindDescription)", at: node, path: path)
            return nil
        }
        var entries: [String: Section.Entry] = [:]
        var order: [String] = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                error("expected a plain key, got \(keyNode.kindDescription)", at: keyNode, path: path)
                continue
            }
            if let known, !known.contains(key) {
                let suggestion = Suggestion.closest(to: key, in: known).map { " (did you mean \"\($0)\"?)" } ?? ""
                error("unknown key \"\(key)\"\(suggestion)", at: keyNode, path: Section.join(path, key))
                continue
            }
            entries[key] = Section.Entry(key: keyNode, value: value)
            order.append(key)
        }
        return Section(path: path, entries: entries, order: order)
    }

    /// The items of the sequence at `node`; nil (after an error) for anything else but null.
    func sequence(_ node: Node, path: String, of what: String) -> [Node]? {
        if node.isNull { return [] }
        guard case .sequence(let sequence) = node else {
            error("expected a list of \(what), got \(node.kindDescription)", at: node, path: path)
            return nil
        }
        return Array(sequence)
    }

    // MARK: - Scalars

    /// The text of a scalar after `${VAR}` substitution; nil after reporting a problem.
    ///
    /// Inside a provider an unset variable is recorded (and substituted by nothing) rather than reported here.
    func text(_ node: Node, path: String, what: String = "a string") -> String? {
        lastTextWasIncomplete = false
        guard case .scalar(let scalar) = node else {
            error("expected \(what), got \(node.kindDescription)", at: node, path: path)
            return nil
        }
        guard scalar.string.contains("$") else { return scalar.string }
        switch EnvironmentSubstitution.substitute(scalar.string, environment: environment) {
        case .success(let result):
            guard !result.unset.isEmpty else { return result.text }
            if unsetInProvider != nil {
                for name in result.unset where !unsetInProvider!.contains(name) {
                    unsetInProvider!.append(name)
                }
                for name in result.unset {
                    warning(
                        "environment variable \(name) is not set; the provider is disabled until it is (its models answer 503)",
                        at: node, path: path)
                }
                lastTextWasIncomplete = true
                return result.text
            }
            let names = result.unset.joined(separator: ", ")
            error("environment variable \(names) is not set", at: node, path: path)
            return nil
        case .failure(let failure):
            error(failure.message, at: node, path: path)
            return nil
        }
    }

    /// Reads `body` treating unset variables as the provider's, and returns those names.
    func collectingUnsetVariables(_ body: () -> Void) -> [String] {
        let outer = unsetInProvider
        unsetInProvider = []
        body()
        let unset = unsetInProvider ?? []
        unsetInProvider = outer
        return unset
    }

    /// Like `text`, but nil without a further report when an unset variable left the value incomplete:
    /// a number or duration cannot be checked then, and the disabled provider keeps its default.
    private func complete(_ node: Node, path: String, what: String) -> String? {
        guard let text = text(node, path: path, what: what), !lastTextWasIncomplete else { return nil }
        return text
    }

    func string(_ node: Node, path: String, allowEmpty: Bool = true) -> String? {
        guard let text = text(node, path: path) else { return nil }
        if !allowEmpty && text.isEmpty && !lastTextWasIncomplete {
            error("must not be empty", at: node, path: path)
            return nil
        }
        return text
    }

    func int(_ node: Node, path: String, minimum: Int = 0) -> Int? {
        guard let text = complete(node, path: path, what: "an integer") else { return nil }
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")) else {
            if let value = Double(text), value < Double(minimum) {
                error("must be \(minimumPhrase(minimum)), got \(text)", at: node, path: path)
            } else {
                error("expected an integer, got \"\(text)\"", at: node, path: path)
            }
            return nil
        }
        guard value >= minimum else {
            error("must be \(minimumPhrase(minimum)), got \(value)", at: node, path: path)
            return nil
        }
        return value
    }

    func double(_ node: Node, path: String) -> Double? {
        guard let text = complete(node, path: path, what: "a number") else { return nil }
        guard let value = Double(text.replacingOccurrences(of: "_", with: "")), value.isFinite else {
            error("expected a number, got \"\(text)\"", at: node, path: path)
            return nil
        }
        guard value >= 0 else {
            error("must not be negative, got \(text)", at: node, path: path)
            return nil
        }
        return value
    }

    func bool(_ node: Node, path: String) -> Bool? {
        guard let text = complete(node, path: path, what: "true or false") else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error("expected true or false, got \"\(text)\"", at: node, path: path)
            return nil
        }
    }

    func duration(_ node: Node, path: String) -> Duration? {
        guard let text = complete(node, path: path, what: "a duration") else { return nil }
        do {
            return try Units.parseDuration(text)
        } catch {
            self.error(error.message, at: node, path: path)
            return nil
        }
    }

    func size(_ node: Node, path: String) -> Int? {
        guard let text = complete(node, path: path, what: "a size") else { return nil }
        do {
            return try Units.parseSize(text)
        } catch {
            self.error(error.message, at: node, path: path)
            return nil
        }
    }

    /// One of `cases`, by raw value.
    func choice<Value: RawRepresentable>(_ node: Node, path: String, of cases: [Value]) -> Value?
    where Value.RawValue == String {
        guard let name = choice(node, path: path, among: cases.map(\.rawValue)) else { return nil }
        return cases.first { $0.rawValue == name }
    }

    /// One of `names`.
    func choice(_ node: Node, path: String, among names: [String]) -> String? {
        guard let text = complete(node, path: path, what: "a string") else { return nil }
        if names.contains(text) { return text }
        let suggestion = Suggestion.closest(to: text, in: names).map { "did you mean \"\($0)\"? " } ?? ""
        error("invalid value \"\(text)\" (\(suggestion)use \(Suggestion.list(names)))", at: node, path: path)
        return nil
    }

    private func minimumPhrase(_ minimum: Int) -> String {
        switch minimum {
        case 0: "zero or more"
        case 1: "at least 1"
        default: "at least \(minimum)"
        }
    }
}

/// The known entries of one mapping, with the dotted path that names it.
struct Section {
    struct Entry {
        var key: Node
        var value: Node
    }

    let path: String
    let entries: [String: Entry]
    /// Keys in file order.
    let order: [String]

    /// The value of `key`, unless absent or null (both mean "keep the default").
    subscript(key: String) -> Node? {
        guard let value = entries[key]?.value, !value.isNull else { return nil }
        return value
    }

    /// The path of `key` inside this section.
    func path(_ key: String) -> String { Section.join(path, key) }

    static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }
}

extension Node {
    /// True for an empty or `null` scalar written without quotes.
    var isNull: Bool {
        guard case .scalar(let scalar) = self else { return false }
        return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// "a mapping", "a list", "a string" or "null", for type errors.
    var kindDescription: String {
        switch self {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        case .scalar(let scalar): isNull ? "null" : "\"\(scalar.string)\""
        }
    }
}
