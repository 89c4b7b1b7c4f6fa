import Foundation
import ArgumentParser
import GatewayCore
import Logging
import Metrics
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

@main
struct LLMGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm-gateway",
        abstract: "A self-hosted OpenAI-compatible gateway to OpenAI, Anthropic and Gemini.",
        version: GatewayVersion.current,
        subcommands: [Serve.self, Check.self, Ctl.self, Keys.self, Migrate.self, Stats.self],
        defaultSubcommand: nil)

    /// Runs everything with Swift concurrency on NIO's event loops (see `TaskPlacement`).
    static func main() async {
        if CommandLine.arguments.dropFirst().first == "serve" { useGMTUnlessTimeZoneIsSet() }
        await TaskPlacement.run(TaskPlacement.mode(fromEnvironment: ConfigFile.processEnvironment())) {
            do {
                var command = try parseAsRoot()
                if var asynchronous = command as? any AsyncParsableCommand {
                    try await asynchronous.run()
                } else {
                    try command.run()
                }
            } catch {
                exit(withError: error)
            }
        }
    }
}

/// Sets `TZ=GMT` when the environment names no time zone, before any thread starts.
///
/// The daemon shows and stores every time in UTC, and the one use of the local time zone is Hummingbird's `Date`
/// header, which asks Foundation for it at start-up and then formats in GMT. Foundation resolves any zone but GMT
/// through ICU's time zone data, about 2 MiB more resident memory for the daemon's whole life.
func useGMTUnlessTimeZoneIsSet() {
    if getenv("TZ") == nil { setenv("TZ", "GMT", 0) }
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: ./gateway.yaml, then /etc/llm-gateway/gateway.yaml).")
    var config: String?
}

/// Loads the file; prints its errors and exits 1 when it has any.
///
/// Its warnings are printed only with `showingWarnings`: by `serve`, at start. A command that reads the file only
/// to find the request log (`stats`, `migrate`) leaves them out: a provider's unset API key is no concern of its,
/// and the lines would bury its own output.
func loadOrExit(_ path: String, _ loaded: ConfigLoadResult? = nil, showingWarnings: Bool) throws -> GatewayConfig {
    let result = loaded ?? ConfigLoader.load(path: path, environment: ConfigFile.processEnvironment())
    for problem in showingWarnings ? result.problems : result.errors { printError(problem.description) }
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
        let loaded = ConfigLoader.load(path: path, environment: ConfigFile.processEnvironment())
        let config = try loadOrExit(path, loaded, showingWarnings: true)
        let level = LogLevelControl(Logger.Level(rawValue: config.logging.level) ?? .info)
        let logger = Logger(label: "llm-gateway") { level.handler(label: $0) }
        logger.notice("starting", metadata: ["version": "\(GatewayVersion.current)", "config": "\(path)"])
        if !TaskPlacement.onEventLoops {
            logger.notice("Swift concurrency runs on its own thread pool (LLM_GATEWAY_TASKS=thread-pool), not the event loops")
        }
        let log = try await openStoreOrExit(config).map { RequestLog(store: $0, config: config, logger: logger) }
        let gateway = try Gateway(
            config: config, logger: logger, requestLog: log, storedResponses: log.map { StoredResponses(log: $0, fleetWait: StoredResponses.fleetWait(for: config.requestLog)) }, sourceSHA256: loaded.sourceSHA256,
            notifier: SystemdNotifier(environment: ConfigFile.processEnvironment()), logLevel: level)
        // Metrics from libraries (swift-metrics) land in the same registry as the gateway's own.
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: gateway.metrics.registry))
        do {
            try await gateway.run(configPath: path)
        } catch let problem as AdminServer.SocketProblem {
            printError("error: \(problem.description)")
            throw ExitCode(1)
        }
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

struct Ctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the running daemon through its admin socket.",
        discussion: """
            status     version, uptime, configuration generation, last reload, listeners
            config     the configuration in force, secrets redacted (JSON)
            providers  circuit state, in flight, requests, errors, latency per provider
            keys       limits and usage per key
            cache      cache backend and statistics, exact and semantic (hit rates, recent entries)
            cache forget ID
                       remove a semantic cache entry that answered wrongly (the request log's cache_entry)
            flush      empty the response cache
            reload     re-read the configuration file (as SIGHUP does); exits 1 when it is refused
            metrics    Prometheus metrics (text)
            notifications  the notification outbox: pending, delivered, failing per channel, oldest pending
            budgets    every budget and bucket: window, spent, held, limit, percent, forecast, last event
            budgets reset NAME [--bucket DIMENSION=VALUE ...]
                       forget the spend of a budget's current window (one bucket, or all); logged
            """)

    enum Action: String, ExpressibleByArgument, CaseIterable {
        case status, config, providers, keys, cache, flush, reload, metrics, notifications, budgets
    }

    @Argument(help: "status | config | providers | keys | cache | flush | reload | metrics | notifications | budgets") var action: Action
    @Argument(help: "For budgets: reset NAME. For cache: forget ID.") var arguments: [String] = []
    @Option(help: "With budgets reset: the bucket to reset, one DIMENSION=VALUE per dimension of the budget's per.") var bucket: [String] = []
    @Option(help: "The admin socket (default: admin.socket of --config's file, else /run/llm-gateway/admin.sock).") var socket: String?
    @Option(help: "Configuration file to read admin.socket from.") var config: String?
    @Flag(help: "Print the daemon's JSON answer instead of a table.") var json = false

    func run() async throws {
        let client = AdminClient(socketPath: socketPath())
        let (method, path): (AdminClient.Method, String) = switch action {
        case .status: (.get, "/status")
        case .config: (.get, "/config")
        case .providers: (.get, "/providers")
        case .keys: (.get, "/keys")
        case .cache: try cacheCall()
        case .flush: (.post, "/cache/flush")
        case .reload: (.post, "/reload")
        case .metrics: (.get, "/metrics")
        case .budgets: try budgetsCall()
        case .notifications: (.get, "/notifications")
        }
        let answer: (status: Int, body: String)
        do {
            answer = try await client.call(method, path)
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        if action == .metrics {
            print(answer.body, terminator: "")
            return
        }
        guard let body = try? JSON.parse(answer.body) else {
            printError("error: the daemon answered \(answer.status) with something that is not JSON")
            throw ExitCode(2)
        }
        if json || action == .config {
            print(body.serialized(sortedKeys: true))
        } else {
            switch action {
            case .status: print(AdminReport.status(body), terminator: "")
            case .providers: print(AdminReport.providers(body), terminator: "")
            case .keys: print(AdminReport.keys(body), terminator: "")
            case .cache, .flush: if answer.status < 400 { print(AdminReport.cache(body), terminator: "") }
            case .reload: print(AdminReport.reload(body), terminator: "")
            case .budgets:
                if arguments.isEmpty {
                    print(AdminReport.budgets(body), terminator: "")
                } else if answer.status < 400 {
                    print(AdminReport.budgetReset(body))
                }
            case .notifications: print(AdminReport.notifications(body), terminator: "")
            case .config, .metrics: break
            }
        }
        if answer.status >= 400 {
            if let message = body["error"]?["message"]?.stringValue { printError("error: \(message)") }
            throw ExitCode(1)
        }
    }

    /// `GET /cache`, or `POST /cache/semantic/forget?id=…` for `cache forget ID`.
    func cacheCall() throws -> (AdminClient.Method, String) {
        if arguments.isEmpty { return (.get, "/cache") }
        guard arguments.count == 2, arguments[0] == "forget", arguments[1].count == 16, UInt64(arguments[1], radix: 16) != nil else {
            printError("usage: llm-gateway ctl cache [forget ID]   (ID: 16 hex digits, the request log's cache_entry)")
            throw ExitCode(2)
        }
        return (.post, "/cache/semantic/forget?id=" + arguments[1])
    }

    /// `GET /budgets`, or `POST /budgets/reset?budget=…&bucket=…` for `budgets reset NAME`.
    func budgetsCall() throws -> (AdminClient.Method, String) {
        if arguments.isEmpty { return (.get, "/budgets") }
        guard arguments.count == 2, arguments[0] == "reset" else {
            printError("usage: llm-gateway ctl budgets [reset NAME [--bucket DIMENSION=VALUE ...]]")
            throw ExitCode(2)
        }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_.~"))
        func encoded(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: allowed) ?? "" }
        let query = (["budget=" + encoded(arguments[1])] + bucket.map { "bucket=" + encoded($0) }).joined(separator: "&")
        return (.post, "/budgets/reset?" + query)
    }

    /// `--socket`, else `admin.socket` from the configuration file, else the default. The file's problems are
    /// not printed: they are `check`'s to tell.
    func socketPath() -> String {
        if let socket { return socket }
        let path = ConfigFile.locate(explicit: config)
        if let loaded = ConfigLoader.load(path: path, environment: ConfigFile.processEnvironment()).config {
            return loaded.admin.socket
        }
        return AdminSettings().socket
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the request log's schema, then exit.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try loadOrExit(ConfigFile.locate(explicit: options.config), showingWarnings: false)
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
    @Option(help: "Group by model, key, provider, customer or feature; or budget: each budget's current window against its limit.") var by = "model"
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() async throws {
        if by == "budget" { return try await budgets() }
        guard let dimension = StatsDimension(rawValue: by) else {
            printError("error: --by must be one of \((StatsDimension.allCases.map(\.rawValue) + ["budget"]).joined(separator: ", "))")
            throw ExitCode(1)
        }
        let window: Duration
        do {
            window = try StatsReport.parseSince(since)
        } catch {
            printError("error: --since: \(error.message)")
            throw ExitCode(1)
        }
        let config = try loadOrExit(ConfigFile.locate(explicit: options.config), showingWarnings: false)
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

    /// `--by budget`: `--since` does not apply; each budget's own window does.
    func budgets() async throws {
        let config = try loadOrExit(ConfigFile.locate(explicit: options.config), showingWarnings: false)
        guard let store = try await openStoreOrExit(config) else {
            printError("error: request_log.backend is off: there is no request log to read")
            throw ExitCode(1)
        }
        let budgets = config.allBudgets
        let now = UnixTime.nowMicros() / 1000
        let spend: [SpendRow]
        do {
            spend = try await store.spend(sinceMicros: BudgetStatsReport.earliestStartMillis(budgets, nowMillis: now) * 1000)
        } catch {
            await store.close()
            printError("error: reading the request log failed: \(error)")
            throw ExitCode(1)
        }
        await store.close()
        let rows = BudgetStatsReport.rows(budgets, spend: spend, nowMillis: now)
        print(json ? BudgetStatsReport.json(rows) : BudgetStatsReport.table(rows), terminator: "")
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
