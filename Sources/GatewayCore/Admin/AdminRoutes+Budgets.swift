import Foundation
import Hummingbird

/// `GET /budgets` and `POST /budgets/reset` of the admin socket.
extension AdminRoutes {
    func addBudgets(to router: Router<BasicRequestContext>) {
        router.get("budgets") { _, _ in await budgets() }
        router.post("budgets/reset") { request, _ in await resetBudget(request.uri.queryParameters) }
    }

    /// Every budget with each bucket of its current window: spent, held by requests under way, limit, percent and
    /// a forecast for the window's end (the spend so far, extended at its rate over the window's elapsed part).
    func budgets() async -> Response {
        let book = gateway.stores.budgets
        let now = book.clock()
        var items: [JSON] = []
        for budget in gateway.store.snapshot.budgets {
            let span = book.span(of: budget, atMillis: now)
            let counters: [BudgetCounterState]
            do {
                counters = try await book.store.counters(of: budget.name, span: span, nowMillis: now)
            } catch {
                return .json(["error": ["message": "The budget store could not be read (is Redis reachable?).", "type": "server_error", "code": "budget_store_unavailable"]], status: 503)
            }
            let elapsed = max(1, now - span.startMillis)
            let length = max(1, span.endMillis - span.startMillis)
            let buckets: [JSON] = counters.map { counter in
                var bucket: [String: JSON] = [:]
                for value in counter.bucket { bucket[value.dimension] = .string(value.value) }
                let spent = counter.level.spentNanos
                let forecast = Double(spent) * Double(length) / Double(elapsed)
                return [
                    "bucket": .object(bucket),
                    "spent_usd": .double(BudgetMoney.usd(spent)),
                    "reserved_usd": .double(BudgetMoney.usd(counter.level.reservedNanos)),
                    "percent": .double((Double(spent) / Double(max(1, budget.limitNanos)) * 1000).rounded() / 10),
                    "forecast_usd": .double(forecast.rounded() / BudgetMoney.perUSD),
                    "last_event": book.alerts.lastEvent(budget: budget.name, bucket: counter.bucket, spanStart: span.startMillis).map(JSON.string) ?? .null,
                ]
            }
            items.append([
                "name": .string(budget.name), "mode": .string(budget.mode.rawValue), "limit_usd": .double(budget.limitUSD),
                "window": .string(budget.window.description), "timezone": .string(budget.timeZone.identifier),
                "per": .array(budget.per.map { .string($0.description) }),
                "window_start": .string(UnixTime.iso8601(micros: span.startMillis * 1000)),
                "window_end": .string(UnixTime.iso8601(micros: span.endMillis * 1000)),
                "store": .string(book.isShared ? "redis" : "memory"),
                "buckets": .array(buckets),
            ])
        }
        return .json(["budgets": .array(items)])
    }

    /// `?budget=NAME[&bucket=dimension=value…]`: forgets the spend of one bucket (or all) of the current window.
    func resetBudget(_ query: Parameters) async -> Response {
        let book = gateway.stores.budgets
        guard let name = query.get("budget"), let budget = gateway.store.snapshot.budgets.first(where: { $0.name == name }) else {
            return .json(["error": ["message": "No budget by that name.", "type": "invalid_request_error", "code": "unknown_budget"]], status: 404)
        }
        var digest: String?
        let pairs = query.getAll("bucket")
        if !pairs.isEmpty {
            var values: [String: String] = [:]
            for pair in pairs {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else {
                    return .json(["error": ["message": "A bucket is dimension=value, e.g. customer=acme.", "type": "invalid_request_error"]], status: 400)
                }
                values[String(parts[0])] = String(parts[1])
            }
            guard Set(values.keys) == Set(budget.per.map(\.description)) else {
                let message = "Name every dimension of the budget's per: \(budget.per.map(\.description).joined(separator: ", "))."
                return .json(["error": ["message": .string(message), "type": "invalid_request_error"]], status: 400)
            }
            let counter = BudgetCounter(
                budget: budget.name, bucket: budget.per.map { BudgetBucketValue(dimension: $0.description, value: values[$0.description] ?? "") },
                span: book.span(of: budget, atMillis: book.clock()), limitNanos: budget.limitNanos, hard: budget.mode == .hard)
            digest = counter.bucketDigest
        }
        let now = book.clock()
        do {
            let reset = try await book.store.reset(budget.name, span: book.span(of: budget, atMillis: now), bucketDigest: digest, nowMillis: now)
            gateway.logger.notice("budget reset from the admin socket", metadata: ["budget": "\(budget.name)", "buckets": "\(reset)"])
            return .json(["budget": .string(budget.name), "reset": .int(Int64(reset))])
        } catch {
            return .json(["error": ["message": "The budget store could not be reset (is Redis reachable?).", "type": "server_error", "code": "budget_store_unavailable"]], status: 503)
        }
    }
}

extension AdminReport {
    /// `POST /budgets/reset`.
    public static func budgetReset(_ json: JSON) -> String {
        "budget \(text(json["budget"])): \(text(json["reset"])) bucket(s) reset"
    }

    /// `GET /budgets`: one row per bucket.
    public static func budgets(_ json: JSON) -> String {
        var rows: [[String]] = []
        for budget in json["budgets"]?.arrayValue ?? [] {
            let buckets = budget["buckets"]?.arrayValue ?? []
            let head = [text(budget["name"]), text(budget["mode"]), text(budget["window"])]
            let window = "\(text(budget["window_start"])) – \(text(budget["window_end"]))"
            if buckets.isEmpty {
                rows.append(head + ["-", "0.000000", "0.000000", CostFormat.usd(budget["limit_usd"]?.doubleValue ?? 0), "0.0", "-", window, "-"])
            }
            for bucket in buckets {
                let description = (bucket["bucket"]?.objectValue ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\(text($0.value))" }
                rows.append(head + [
                    description.isEmpty ? "(all)" : description.joined(separator: ","),
                    CostFormat.usd(bucket["spent_usd"]?.doubleValue ?? 0), CostFormat.usd(bucket["reserved_usd"]?.doubleValue ?? 0),
                    CostFormat.usd(budget["limit_usd"]?.doubleValue ?? 0), text(bucket["percent"]),
                    CostFormat.usd(bucket["forecast_usd"]?.doubleValue ?? 0), window, text(bucket["last_event"]),
                ])
            }
        }
        return TextTable.render(
            header: ["BUDGET", "MODE", "WINDOW", "BUCKET", "SPENT USD", "HELD USD", "LIMIT USD", "%", "FORECAST USD", "FROM – TO", "LAST EVENT"],
            rows: rows, leftAligned: [0, 1, 2, 3, 9, 10])
    }
}
