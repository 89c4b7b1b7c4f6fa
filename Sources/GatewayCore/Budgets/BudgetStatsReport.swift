/// `llm-gateway stats --by budget`: each budget's spend in its current window against its limit, from the request
/// log (what the daemon's counters are rebuilt from; `ctl budgets` shows the live counters with their holds).
public enum BudgetStatsReport {
    /// One bucket of one budget.
    public struct Row: Sendable, Equatable {
        public var budget: String
        public var mode: BudgetMode
        /// `customer=acme`, `(all)` for a budget without a partition, `-` when nothing was spent yet.
        public var bucket: String
        public var windowStartMillis: Int64
        public var windowEndMillis: Int64
        public var spentNanos: Int64
        public var limitNanos: Int64

        public var percent: Double { Double(spentNanos) / Double(max(1, limitNanos)) * 100 }
    }

    /// The rows for every budget of `budgets` at `nowMillis`, from the request log's `spend` since the earliest window.
    public static func rows(_ budgets: [BudgetConfig], spend: [SpendRow], nowMillis: Int64) -> [Row] {
        let spans = budgets.map { $0.window.span(atMillis: nowMillis, in: $0.timeZone) }
        let counters = BudgetBook.counters(of: budgets, in: spans, from: spend)
        var rows: [Row] = []
        for (budget, span) in zip(budgets, spans) {
            let own = counters.filter { $0.0.budget == budget.name }.sorted { $0.1 > $1.1 }
            let row = Row(
                budget: budget.name, mode: budget.mode, bucket: "-", windowStartMillis: span.startMillis, windowEndMillis: span.endMillis,
                spentNanos: 0, limitNanos: budget.limitNanos)
            if own.isEmpty { rows.append(row) }
            for (counter, spent) in own {
                var bucketRow = row
                bucketRow.bucket = counter.bucketDescription
                bucketRow.spentNanos = spent
                rows.append(bucketRow)
            }
        }
        return rows
    }

    /// The earliest window start of `budgets` at `nowMillis`: how far back the log must be read.
    public static func earliestStartMillis(_ budgets: [BudgetConfig], nowMillis: Int64) -> Int64 {
        budgets.map { $0.window.span(atMillis: nowMillis, in: $0.timeZone).startMillis }.min() ?? nowMillis
    }

    public static func table(_ rows: [Row]) -> String {
        TextTable.render(
            header: ["BUDGET", "MODE", "BUCKET", "WINDOW START", "WINDOW END", "SPENT USD", "LIMIT USD", "%"],
            rows: rows.map { row in
                [
                    row.budget, row.mode.rawValue, row.bucket, UnixTime.iso8601(micros: row.windowStartMillis * 1000),
                    UnixTime.iso8601(micros: row.windowEndMillis * 1000), CostFormat.usd(BudgetMoney.usd(row.spentNanos)),
                    CostFormat.usd(BudgetMoney.usd(row.limitNanos)), String(format: "%.1f", row.percent),
                ]
            }, leftAligned: [0, 1, 2, 3, 4])
    }

    public static func json(_ rows: [Row]) -> String {
        JSON.array(rows.map { row in
            [
                "budget": .string(row.budget), "mode": .string(row.mode.rawValue), "bucket": .string(row.bucket),
                "window_start": .string(UnixTime.iso8601(micros: row.windowStartMillis * 1000)),
                "window_end": .string(UnixTime.iso8601(micros: row.windowEndMillis * 1000)),
                "spent_usd": .double(BudgetMoney.usd(row.spentNanos)), "limit_usd": .double(BudgetMoney.usd(row.limitNanos)),
                "percent": .double((row.percent * 10).rounded() / 10),
            ]
        }).serialized(sortedKeys: true) + "\n"
    }
}
