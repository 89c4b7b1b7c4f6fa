import Foundation
import Yams

/// What loading a configuration file produced: the configuration when it is valid, and every problem found.
public struct ConfigLoadResult: Sendable {
    /// The configuration; nil when any problem is an error.
    public var config: GatewayConfig?
    /// Every error and warning, in file order.
    public var problems: [ConfigProblem]
    /// SHA-256 (hex) of the file's bytes, when it was read from a file: a reload of an unchanged file is a no-op.
    public var sourceSHA256: String?

    /// Creates a result.
    public init(config: GatewayConfig?, problems: [ConfigProblem]) {
        self.config = config
        self.problems = problems
    }

    /// The problems that reject the file.
    public var errors: [ConfigProblem] { problems.filter { $0.severity == .error } }
    /// The problems that do not.
    public var warnings: [ConfigProblem] { problems.filter { $0.severity == .warning } }
}

/// Reads and validates `gateway.yaml`: the engine behind `llm-gateway check`, start-up and reload.
///
/// It reports every problem in the file in one pass, each with its line, column and setting path:
/// ```swift
/// let result = ConfigLoader.load(path: "/etc/llm-gateway/gateway.yaml", environment: ProcessInfo.processInfo.environment)
/// for problem in result.problems { print(problem) }
/// guard let config = result.config else { exit(1) }
/// ```
public enum ConfigLoader {
    /// Reads the file at `path` and validates it.
    /// - Parameters:
    ///   - path: The configuration file; problems name it as given.
    ///   - environment: Variables for `${VAR}` substitution (normally the process environment).
    /// - Returns: The configuration, or nil with at least one error; an unreadable file is a single error.
    public static func load(path: String, environment: [String: String]) -> ConfigLoadResult {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? error.localizedDescription
            return unreadable(path, "cannot read the file: \(reason)")
        }
        guard let yaml = String(data: data, encoding: .utf8) else {
            return unreadable(path, "cannot read the file: it is not UTF-8 text")
        }
        var result = parse(yaml: yaml, file: path, environment: environment)
        result.sourceSHA256 = KeyHash.sha256Hex(bytes: [UInt8](data))
        return result
    }

    /// Validates configuration text.
    /// - Parameters:
    ///   - yaml: The file's contents; empty text (or `{}`) gives the defaults.
    ///   - file: The name problems report, e.g. `gateway.yaml`.
    ///   - environment: Variables for `${VAR}` substitution.
    /// - Returns: The configuration, or nil with at least one error.
    public static func parse(yaml: String, file: String, environment: [String: String]) -> ConfigLoadResult {
        let reader = ConfigReader(file: file, environment: environment)
        let root: Node?
        do {
            // The basic resolver: every value is read from its text by ConfigReader, so Yams need not match each
            // plain scalar against its regular expressions (NSRegularExpression, which loads ICU at start-up).
            root = try Yams.compose(yaml: yaml, .basic)
        } catch {
            var (message, position) = describe(yamlError: error)
            if let line = position?.line, lineText(line, of: yaml).contains("${") {
                // `{api_key: ${KEY}}` is a classic: in flow style the `}` of `${KEY}` closes the mapping.
                message += "; quote values that contain ${VAR} inside { } or [ ], e.g. api_key: \"${KEY}\""
            }
            reader.report(.error, message, line: position?.line ?? 1, column: position?.column ?? 1, path: "")
            return ConfigLoadResult(config: nil, problems: reader.problems)
        }
        let config = readConfig(root, reader)
        let problems = ordered(reader.problems)
        let hasErrors = problems.contains { $0.severity == .error }
        return ConfigLoadResult(config: hasErrors ? nil : config, problems: problems)
    }

    // MARK: - Whole file

    static let sections = [
        "server", "admin", "logging", "providers", "models", "keys",
        "cache", "rate_limits", "redis", "request_log", "postgres", "metrics", "notifications",
        "budgets", "budgets_on_backend_error", "anomaly",
    ]

    private static func readConfig(_ root: Node?, _ reader: ConfigReader) -> GatewayConfig {
        var config = GatewayConfig()
        guard let top = reader.section(root, path: "", known: sections) else { return config }
        config.server = readServer(top, reader)
        config.admin = readAdmin(top, reader)
        config.logging = readLogging(top, reader)
        config.metrics = readMetrics(top, reader)
        config.providers = readProviders(top, reader)
        config.models = readModels(top, providers: config.providers, reader)
        checkFallbacks(top, config: config, reader)
        // Before keys and budgets, whose `notify` names its channels.
        config.requestLog = readRequestLog(top, reader)
        config.notifications = readNotifications(top, requestLog: config.requestLog, reader)
        config.keys = readKeys(top, channels: config.notifications.channelNames, reader)
        config.cache = readCache(top, reader)
        checkSemanticEmbedder(top, config: config, reader)
        config.rateLimits = readRateLimits(top, reader)
        config.redis = readRedis(top, reader)
        config.postgres = readPostgres(top, reader)
        config.redisConfigured = top["redis"] != nil
        config.budgets = readBudgets(top, channels: config.notifications.channelNames, reader)
        config.budgetSettings = readBudgetSettings(top, reader)
        config.anomaly = readAnomaly(top, channels: config.notifications.channelNames, reader)
        checkBudgets(top, config: config, reader)
        return config
    }

    /// Problems in file order; those at the same position in discovery order.
    private static func ordered(_ problems: [ConfigProblem]) -> [ConfigProblem] {
        problems.enumerated().sorted { a, b in
            (a.element.line, a.element.column, a.offset) < (b.element.line, b.element.column, b.offset)
        }.map(\.element)
    }

    private static func unreadable(_ path: String, _ message: String) -> ConfigLoadResult {
        ConfigLoadResult(
            config: nil,
            problems: [ConfigProblem(severity: .error, file: path, line: 0, column: 0, path: "", message: message)])
    }

    /// A one-line message and position for a Yams error (its own description spans several lines).
    private static func describe(yamlError error: Error) -> (String, (line: Int, column: Int)?) {
        guard let yamlError = error as? YamlError else { return ("invalid YAML: \(error)", nil) }
        func context(_ context: YamlError.Context?) -> String {
            guard let context else { return "" }
            return " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
        }
        switch yamlError {
        case let .scanner(ctx, problem, mark, _), let .parser(ctx, problem, mark, _), let .composer(ctx, problem, mark, _):
            return ("invalid YAML: \(problem)\(context(ctx))", (mark.line, mark.column))
        case let .reader(problem, offset, _, yaml):
            return ("invalid YAML: \(problem)", offset.map { position(ofCharacterOffset: $0, in: yaml) })
        case let .duplicatedKeysInMapping(duplicates, ctx):
            let names = duplicates.map { "\"\($0)\"" }.joined(separator: ", ")
            return ("duplicate key \(names) in the same mapping (each key may appear once)", (ctx.mark.line, ctx.mark.column))
        default:
            return ("invalid YAML: \(yamlError)", nil)
        }
    }

    private static func lineText(_ line: Int, of text: String) -> Substring {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return line >= 1 && line <= lines.count ? lines[line - 1] : ""
    }

    private static func position(ofCharacterOffset offset: Int, in text: String) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for (index, character) in text.enumerated() {
            if index == offset { return (line, column) }
            if character == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return (line, column)
    }
}
