import AsyncHTTPClient
import Foundation
import NIOCore

/// `llm-gateway ctl`'s side of the admin socket: one HTTP request over the Unix socket, the answer as JSON.
public struct AdminClient: Sendable {
    /// Why a call failed.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The admin socket's path.
    public let socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// The two methods the admin socket answers.
    public enum Method: Sendable { case get, post }

    /// Sends `method path` and returns the status and the JSON (or text, for `/metrics`) answer.
    public func call(_ method: Method, _ path: String, timeout: TimeAmount = .seconds(30)) async throws -> (status: Int, body: String) {
        guard let encoded = socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics) else {
            throw Failure(description: "cannot use the socket path \(socketPath)")
        }
        // The HTTP client retries a refused connection until its deadline: find out at once instead.
        if let problem = AdminServer.connectProblem(socketPath) {
            throw Failure(description: "cannot reach the admin socket \(socketPath): \(problem) (is llm-gateway running, and may you open the socket?)")
        }
        var request = HTTPClientRequest(url: "http+unix://\(encoded)\(path)")
        request.method = method == .get ? .GET : .POST
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: timeout)
        } catch {
            throw Failure(description: "cannot reach the admin socket \(socketPath): \(error) (is llm-gateway running, and may you open the socket?)")
        }
        let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return (Int(response.status.code), String(buffer: body))
    }
}

/// What `llm-gateway ctl` prints for each answer of the admin socket, as aligned tables.
public enum AdminReport {
    /// `GET /status`.
    public static func status(_ json: JSON) -> String {
        var rows: [[String]] = [
            ["version", text(json["version"])],
            ["pid", text(json["pid"])],
            ["uptime", json["uptime_seconds"]?.intValue.map { Units.format(.seconds($0)) } ?? "-"],
            ["started", text(json["started_at"])],
            ["ready", text(json["ready"])],
            ["tasks", text(json["tasks"])],
            ["task jobs queued", text(json["task_jobs_queued"])],
            ["config", text(json["config"]?["path"])],
            ["generation", text(json["config"]?["generation"])],
            ["sha256", text(json["config"]?["sha256"])],
        ]
        for (name, address) in (json["listeners"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            rows.append(["listener \(name)", text(address)])
        }
        if let reload = json["last_reload"], !reload.isNull {
            rows.append(["last reload", "\(text(reload["time"])) \(text(reload["result"]))"])
            for error in reload["errors"]?.arrayValue ?? [] { rows.append(["  error", text(error)]) }
            for setting in reload["restart_required"]?.arrayValue ?? [] { rows.append(["  needs restart", text(setting)]) }
        } else {
            rows.append(["last reload", "never"])
        }
        return TextTable.render(header: ["STATUS", ""], rows: rows, leftAligned: [0, 1])
    }

    /// `GET /providers`.
    public static func providers(_ json: JSON) -> String {
        let rows = (json["providers"]?.arrayValue ?? []).map { provider in
            [
                text(provider["name"]), text(provider["type"]), provider["enabled"]?.boolValue == false ? "disabled" : text(provider["circuit"]),
                text(provider["in_flight"]), text(provider["connections"]?["open"]), text(provider["requests"]), text(provider["errors"]),
                text(provider["p50_ms"]), text(provider["p99_ms"]),
            ]
        }
        return TextTable.render(
            header: ["PROVIDER", "TYPE", "CIRCUIT", "IN FLIGHT", "CONNECTIONS", "REQUESTS", "ERRORS", "P50 MS", "P99 MS"], rows: rows,
            leftAligned: [0, 1, 2])
    }

    /// `GET /keys`.
    public static func keys(_ json: JSON) -> String {
        let rows = (json["keys"]?.arrayValue ?? []).map { key in
            let limit = key["rate_limit"]
            let remaining = key["remaining"]
            return [
                text(key["name"]), text(key["prefix"]),
                (key["models"]?.arrayValue ?? []).map { text($0) }.joined(separator: ","),
                text(limit?["requests_per_minute"]), text(remaining?["requests"]),
                text(limit?["tokens_per_minute"]), text(remaining?["tokens"]),
                text(key["usage"]?["requests"]), text(key["usage"]?["errors"]),
                String((key["usage"]?["prompt_tokens"]?.intValue ?? 0) + (key["usage"]?["completion_tokens"]?.intValue ?? 0)),
                CostFormat.usd(key["usage"]?["cost_usd"]?.doubleValue ?? 0),
            ]
        }
        return TextTable.render(
            header: ["KEY", "PREFIX", "MODELS", "RPM", "LEFT", "TPM", "LEFT", "REQUESTS", "ERRORS", "TOKENS", "SPEND USD"], rows: rows,
            leftAligned: [0, 1, 2])
    }

    /// `GET /cache` and `POST /cache/flush`.
    public static func cache(_ json: JSON) -> String {
        let order = [
            "backend", "flushed", "semantic_flushed", "forgot", "entries", "bytes", "max_entries", "max_bytes", "ttl", "scope", "hits", "misses",
            "hit_rate", "evictions", "expirations", "prefix", "available", "errors",
        ]
        let object = json.objectValue ?? [:]
        let rows = order.compactMap { name in object[name].map { [name, text($0)] } }
        var report = TextTable.render(header: ["CACHE", "exact"], rows: rows, leftAligned: [0, 1])
        if let semantic = object["semantic"]?.objectValue {
            let order = [
                "embedder", "threshold", "entries", "max_entries", "partitions", "hits", "misses", "hit_rate", "evictions", "expirations",
                "embedder_failures", "index_bytes_per_entry", "shared",
            ]
            report += "\n" + TextTable.render(header: ["CACHE", "semantic"], rows: order.compactMap { name in semantic[name].map { [name, text($0)] } }, leftAligned: [0, 1])
            let entries = semantic["recent"]?.arrayValue ?? []
            if !entries.isEmpty {
                let rows = entries.map { [text($0["id"]), text($0["provider"]), text($0["model"]), text($0["expires_at"])] }
                report += "\n" + TextTable.render(header: ["ENTRY", "PROVIDER", "MODEL", "EXPIRES"], rows: rows, leftAligned: [0, 1, 2, 3])
            }
        }
        return report
    }

    /// `POST /reload`.
    public static func reload(_ json: JSON) -> String {
        var lines = "reload \(text(json["result"])): configuration generation \(text(json["generation"]))\n"
        for error in json["errors"]?.arrayValue ?? [] { lines += "\(text(error))\n" }
        for warning in json["warnings"]?.arrayValue ?? [] { lines += "\(text(warning))\n" }
        for setting in json["restart_required"]?.arrayValue ?? [] { lines += "\(text(setting)) changed: takes effect after a restart\n" }
        return lines
    }

    /// A JSON value as a table cell: strings bare, null as `-`.
    static func text(_ value: JSON?) -> String {
        guard let value else { return "-" }
        switch value {
        case .null: return "-"
        case .string(let string): return string
        case .bool(let bool): return bool ? "yes" : "no"
        case .int(let int): return String(int)
        case .double(let double): return String(double)
        default: return value.serialized(sortedKeys: true)
        }
    }
}
