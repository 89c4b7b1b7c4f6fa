// Measures `VectorIndex`: insert and lookup latency, exact scan against the graph, recall@1 and memory, on
// clustered synthetic embeddings (like real sentence embeddings) and on uniform random ones (the worst case).
//
//     swift run -c release semantic-index-bench --entries 100000 --dimensions 384 --queries 1000
//
// Prints Markdown tables to stdout. Every number comes from one index grown insert by insert; the lookup columns
// are measured at each checkpoint on `--queries` fresh queries.

import Foundation
import GatewayCore

/// The command line: `--entries N --dimensions D --queries Q`.
struct BenchOptions {
    var entries = 100_000
    var dimensions = 384
    var queries = 1_000
    var breadth: Int?
    /// Thread CPU time instead of wall-clock time: on a shared machine, leaves out time the thread spent
    /// descheduled (which otherwise puts the scheduler's 4 ms slice into every p99).
    var cpuTime = false
    var datasets = ["clustered", "uniform"]

    init(arguments: [String]) {
        var remaining = arguments.dropFirst()
        while let flag = remaining.popFirst() {
            if flag == "--cpu-time" {
                cpuTime = true
                continue
            }
            guard let text = remaining.popFirst() else { fatalError(BenchOptions.usage) }
            if flag == "--data" {
                datasets = [text]
                continue
            }
            guard let value = Int(text), value > 0 else { fatalError(BenchOptions.usage) }
            switch flag {
            case "--breadth": breadth = value
            case "--entries": entries = value
            case "--dimensions": dimensions = value
            case "--queries": queries = value
            default: fatalError(BenchOptions.usage)
            }
        }
    }

    static let usage = "usage: semantic-index-bench [--entries N] [--dimensions D] [--queries Q] [--breadth EF] "
        + "[--data clustered|uniform] [--cpu-time]"

}

/// SplitMix64 with Gaussian samples, so every run measures the same data.
struct SeededRandom {
    private var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { generator.next() }

    mutating func unit() -> Double { (Double(next() >> 11) + 0.5) * 0x1p-53 }

    /// A standard normal sample (Box-Muller).
    mutating func gaussian() -> Float {
        Float((-2 * log(unit())).squareRoot() * cos(2 * Double.pi * unit()))
    }

    mutating func gaussianVector(_ dimensions: Int, scale: Float = 1) -> [Float] {
        (0..<dimensions).map { _ in gaussian() * scale }
    }

    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// A way to make queries: `live` is the range of point indices currently stored.
struct QueryKind {
    let name: String
    let make: (inout SeededRandom, _ live: Range<Int>) -> [Float]
}

/// Synthetic embeddings: the vectors to store, in insert order, and the kinds of query to measure.
struct Dataset {
    let name: String
    let points: [[Float]]
    /// The first kind also gives the latency columns.
    let queryKinds: [QueryKind]

    /// `clusters` random unit centres; each point is a centre plus noise of length `spread`.
    ///
    /// "near" queries are a stored point plus noise of length `querySpread` (similarity about 0.96 to it), like a
    /// rephrased question; "cluster" queries are fresh points of a random cluster, whose nearest entry is one of
    /// many about equally close (similarity about 0.75), the hardest case clustered data has.
    static func clustered(count: Int, dimensions: Int, clusters: Int = 1_000, spread: Float = 0.6,
                          querySpread: Float = 0.35) -> Dataset {
        var random = SeededRandom(seed: 1)
        let perComponent = 1 / Float(dimensions).squareRoot()
        let centres = (0..<clusters).map { _ in random.gaussianVector(dimensions, scale: perComponent) }
        func point(near source: [Float], spread: Float, _ random: inout SeededRandom) -> [Float] {
            zip(source, random.gaussianVector(dimensions, scale: spread * perComponent)).map { $0 + $1 }
        }
        let points = (0..<count).map { _ in point(near: centres[random.below(clusters)], spread: spread, &random) }
        let near = QueryKind(name: "near") { random, live in
            point(near: points[live.lowerBound + random.below(live.count)], spread: querySpread, &random)
        }
        let cluster = QueryKind(name: "cluster") { random, _ in
            point(near: centres[random.below(clusters)], spread: spread, &random)
        }
        return Dataset(
            name: "clustered: \(clusters) centres, spread \(spread), near-query spread \(querySpread)",
            points: points, queryKinds: [near, cluster])
    }

    /// Uniform random directions: no structure to exploit.
    ///
    /// "random" queries are fresh random directions (nearest similarity about 0.2, barely above the rest: the
    /// worst case for any graph, and one a cache threshold would reject anyway); "near" queries are a stored
    /// vector plus noise of length 0.35.
    static func uniform(count: Int, dimensions: Int) -> Dataset {
        var random = SeededRandom(seed: 2)
        let perComponent = 1 / Float(dimensions).squareRoot()
        let points = (0..<count).map { _ in random.gaussianVector(dimensions, scale: perComponent) }
        let fresh = QueryKind(name: "random") { random, _ in random.gaussianVector(dimensions) }
        let near = QueryKind(name: "near") { random, live in
            let source = points[live.lowerBound + random.below(live.count)]
            return zip(source, random.gaussianVector(dimensions, scale: 0.35 * perComponent)).map { $0 + $1 }
        }
        return Dataset(name: "uniform random", points: points, queryKinds: [fresh, near])
    }
}

/// Reads wall-clock or thread CPU time in microseconds.
struct Stopwatch {
    let cpuTime: Bool

    func now() -> Double {
        var time = timespec()
        clock_gettime(cpuTime ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) * 1e6 + Double(time.tv_nsec) / 1e3
    }
}

/// Latency samples in microseconds.
struct Latencies {
    private(set) var samples: [Double] = []
    mutating func record(since start: Double, _ stopwatch: Stopwatch) {
        samples.append(stopwatch.now() - start)
    }
    func percentile(_ fraction: Double) -> Double {
        guard !samples.isEmpty else { return .nan }
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }
    var maximum: Double { samples.max() ?? .nan }
}

func formatMicroseconds(_ value: Double) -> String {
    value >= 1000 ? String(format: "%.2f ms", value / 1000) : String(format: "%.0f µs", value)
}

/// Lookup latency of both paths and the graph's recall@1 against the exact scan, on `queries` queries of `kind`.
func measureLookups(
    _ index: VectorIndex, _ kind: QueryKind, live: Range<Int>, queries: Int, seed: UInt64, clock: Stopwatch
) -> (exact: Latencies, graph: Latencies, recall: Double) {
    var random = SeededRandom(seed: seed)
    var exact = Latencies()
    var graph = Latencies()
    var agreed = 0
    for _ in 0..<queries {
        let query = kind.make(&random, live)
        var start = clock.now()
        let truth = index.exactNearest(to: query)
        exact.record(since: start, clock)
        start = clock.now()
        let found = index.nearest(to: query, minimumSimilarity: -1)
        graph.record(since: start, clock)
        if let truth, let found, truth.id == found.id || truth.similarity == found.similarity { agreed += 1 }
    }
    return (exact, graph, Double(agreed) / Double(queries))
}

/// Grows one index through the checkpoints, then churns it (remove oldest + insert new) as a full cache does.
func run(_ dataset: Dataset, options: BenchOptions, churn: Int) {
    let clock = Stopwatch(cpuTime: options.cpuTime)
    // A limit of 0 makes `nearest` always use the graph, so both paths are measured at every size.
    let index = VectorIndex(dimensions: options.dimensions, exactScanLimit: 0)
    if let breadth = options.breadth { index.searchBreadth = breadth }
    let checkpoints = [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000]
        .filter { $0 < options.entries } + [options.entries]
    print("\n### \(dataset.name); \(options.dimensions) dimensions, \(options.queries) queries per kind and row, "
        + "searchBreadth \(index.searchBreadth), \(options.cpuTime ? "thread CPU time" : "wall-clock time")\n")
    let recallHeaders = dataset.queryKinds.map { "recall@1 \($0.name)" }
    let header = ["entries", "insert p50", "insert p99", "insert max", "exact p50", "exact p99", "graph p50",
                  "graph p99"] + recallHeaders + ["bytes/entry"]
    print("| " + header.joined(separator: " | ") + " |")
    print("|" + String(repeating: "---:|", count: header.count))
    var inserted = 0
    let buildStart = clock.now()

    func report(label: String, inserts: Latencies, live: Range<Int>, seed: UInt64) {
        let measured = dataset.queryKinds.map {
            measureLookups(index, $0, live: live, queries: options.queries, seed: seed, clock: clock)
        }
        let latencies = [
            inserts.percentile(0.5), inserts.percentile(0.99), inserts.maximum,
            measured[0].exact.percentile(0.5), measured[0].exact.percentile(0.99),
            measured[0].graph.percentile(0.5), measured[0].graph.percentile(0.99),
        ].map(formatMicroseconds)
        let recalls = measured.map { String(format: "%.3f", $0.recall) }
        print("| " + ([label] + latencies + recalls + ["\(index.bytesPerEntry)"]).joined(separator: " | ") + " |")
    }

    for checkpoint in checkpoints {
        var inserts = Latencies()
        while inserted < checkpoint {
            let start = clock.now()
            index.insert(UInt64(inserted), vector: dataset.points[inserted])
            inserts.record(since: start, clock)
            inserted += 1
        }
        report(label: "\(checkpoint)", inserts: inserts, live: 0..<inserted, seed: 7)
    }
    let buildTime = clock.now() - buildStart
    var churnLatencies = Latencies()
    for step in 0..<churn {
        let start = clock.now()
        index.remove(UInt64(step))
        index.insert(UInt64(inserted), vector: dataset.points[inserted])
        churnLatencies.record(since: start, clock)
        inserted += 1
    }
    if churn > 0 {
        report(label: "\(options.entries) after \(churn) remove+insert", inserts: churnLatencies,
               live: churn..<inserted, seed: 8)
    }
    print(String(format: "\nbuild of %d entries, lookups at checkpoints included: %.1f s", options.entries, buildTime / 1e6))
}

let options = BenchOptions(arguments: CommandLine.arguments)
let churn = options.entries / 5
print("VectorIndex benchmark, defaultExactScanLimit \(VectorIndex.defaultExactScanLimit)")
if options.datasets.contains("clustered") {
    run(Dataset.clustered(count: options.entries + churn, dimensions: options.dimensions), options: options, churn: churn)
}
if options.datasets.contains("uniform") {
    run(Dataset.uniform(count: options.entries + churn, dimensions: options.dimensions), options: options, churn: churn)
}
