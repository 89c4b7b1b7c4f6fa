import ArgumentParser
import GatewayCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

@main
struct LLMGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm-gateway",
        abstract: "A self-hosted OpenAI-compatible gateway to OpenAI, Anthropic and Gemini.",
        version: GatewayVersion.current,
        subcommands: [Serve.self, Check.self, Keys.self, Migrate.self, Stats.self],
        defaultSubcommand: nil)
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: ./gateway.yaml, then /etc/llm-gateway/gateway.yaml).")
    var config: String?
}

/// Prints the problems and exits 1 when the file has errors.
func loadOrExit(_ path: String) throws -> GatewayConfig {
    let result = ConfigLoader.load(path: path, environment: ConfigFile.processEnvironment())
    for problem in result.problems { printError(problem.description) }
    guard let config = result.config, result.errors.isEmpty else {
        printError("\(path): \(result.errors.count) error(s); configuration not loaded")
        throw ExitCode(1)
    }
    return config
}

func printError(_ line: String) {
    var stderr = StandardError()
    print(line, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let path = ConfigFile.locate(explicit: options.config)
        let config = try loadOrExit(path)
        var logger = Logger(label: "llm-gateway")
        logger.logLevel = Logger.Level(rawValue: config.logging.level) ?? .info
        logger.notice("starting", metadata: ["version": "\(GatewayVersion.current)", "config": "\(path)"])
        let log = try await openStoreOrExit(config).map { RequestLog(store: $0, config: config, logger: logger) }
        let gateway = try Gateway(config: config, logger: logger, requestLog: log)
        try await gateway.run(configPath: path)
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration file: exit 0 when valid, else print every problem and exit 1.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let path = ConfigFile.locate(explicit: options.config)
        let result = ConfigLoader.load(path: path, environment: ConfigFile.processEnvironment())
        for problem in result.problems { printError(problem.description) }
        if !result.errors.isEmpty {
            printError("\(path): \(result.errors.count) error(s), \(result.warnings.count) warning(s)")
            throw ExitCode(1)
        }
        print("\(path): configuration is valid (\(result.warnings.count) warning(s))")
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the request log's schema, then exit.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try loadOrExit(ConfigFile.locate(explicit: options.config))
        guard let store = try await openStoreOrExit(config) else {
            print("request_log.backend is off: nothing to migrate")
            return
        }
        do {
            try await store.migrate()
        } catch {
            await store.close()
            printError("error: migrating the request log failed: \(error)")
            throw ExitCode(1)
        }
        await store.close()
        print("request log (\(config.requestLog.backend.rawValue)): schema is up to date")
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print requests, errors, tokens, spend and latency from the request log.")
    @OptionGroup var options: ConfigOption
    @Option(help: "How far back to look: 30m, 24h, 7d, 1d12h.") var since = "7d"
    @Option(help: "Group by model, key, provider, customer or feature.") var by = "model"
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() async throws {
        guard let dimension = StatsDimension(rawValue: by) else {
            printError("error: --by must be one of \(StatsDimension.allCases.map(\.rawValue).joined(separator: ", "))")
            throw ExitCode(1)
        }
        let window: Duration
        do {
            window = try StatsReport.parseSince(since)
        } catch {
            printError("error: --since: \(error.message)")
            throw ExitCode(1)
        }
        let config = try loadOrExit(ConfigFile.locate(explicit: options.config))
        guard let store = try await openStoreOrExit(config) else {
            printError("error: request_log.backend is off: there is no request log to read")
            throw ExitCode(1)
        }
        let rows: [StatsRow]
        do {
            rows = try await store.stats(sinceMicros: StatsReport.sinceMicros(window), by: dimension)
        } catch {
            await store.close()
            printError("error: reading the request log failed: \(error)")
            throw ExitCode(1)
        }
        await store.close()
        print(json ? StatsReport.json(rows) : StatsReport.table(rows), terminator: "")
    }
}

/// The configured request-log store; prints the problem and exits 1 when it cannot be opened.
func openStoreOrExit(_ config: GatewayConfig) async throws -> (any RequestLogStore)? {
    var logger = Logger(label: "llm-gateway")
    logger.logLevel = .warning
    do {
        return try await RequestLogStores.open(config: config, logger: logger)
    } catch {
        printError("error: cannot open the request log (\(config.requestLog.backend.rawValue)): \(error)")
        throw ExitCode(1)
    }
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make and hash gateway keys.", subcommands: [Generate.self, Hash.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a new random gateway key and its keys: entry.")
        @Option(help: "Name of the key, as it appears in logs.") var name = "my-app"

        func run() throws {
            let key = GatewayKeys.generate()
            print(key)
            print("")
            print("# Add this to gateway.yaml; the key itself is shown only once and is never stored:")
            print(GatewayKeys.yamlSnippet(name: name, key: key))
        }
    }

    struct Hash: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read a key on standard input and print its sha256.")

        func run() throws {
            guard let line = readLine(strippingNewline: true) else {
                printError("error: no key on standard input")
                throw ExitCode(1)
            }
            let key = line.trimmingCharacters(in: " \t\r")
            guard !key.isEmpty else {
                printError("error: empty key on standard input")
                throw ExitCode(1)
            }
            print(KeyHash.sha256Hex(key))
        }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        return String(self.drop(while: { characters.contains($0) }).reversed().drop(while: { characters.contains($0) }).reversed())
    }
}
