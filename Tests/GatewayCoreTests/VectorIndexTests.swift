import Testing

@testable import GatewayCore

/// `VectorIndex`: exact answers against a naive scan, validation of untrusted vectors, removal and slot reuse,
/// and the graph's recall against the exact scan.
@Suite("Vector index")
struct VectorIndexTests {
    // MARK: - Exact scan

    @Test("The exact scan finds the entry a naive scalar scan finds", arguments: [7, 16, 37, 100])
    func exactScanMatchesNaiveScan(dimensions: Int) {
        var random = TestRandom(seed: UInt64(dimensions))
        let stored = (0..<200).map { _ in random.vector(dimensions) }
        let index = VectorIndex(dimensions: dimensions, exactScanLimit: 1_000)
        for (id, vector) in stored.enumerated() { #expect(index.insert(UInt64(id), vector: vector)) }
        #expect(index.count == 200)
        #expect(!index.isApproximate)
        for _ in 0..<20 {
            let query = random.vector(dimensions)
            let expected = naiveNearest(to: query, in: stored)
            let exact = index.exactNearest(to: query)
            #expect(exact?.id == UInt64(expected.index))
            #expect(abs((exact?.similarity ?? 9) - Float(expected.similarity)) < 1e-4)
            #expect(index.nearest(to: query, minimumSimilarity: -1)?.id == UInt64(expected.index))
        }
    }

    @Test("Vectors past the first page of the slab are stored and scanned like the first ones")
    func slotsAcrossPagesAreScannedExactly() {
        var random = TestRandom(seed: 99)
        let count = VectorSlab.slotsPerPage + 123
        let stored = (0..<count).map { _ in random.vector(8) }
        let index = VectorIndex(dimensions: 8, exactScanLimit: .max)
        for (id, vector) in stored.enumerated() { #expect(index.insert(UInt64(id), vector: vector)) }
        // Each stored vector is its own nearest neighbour, on whichever page it sits.
        for id in [0, VectorSlab.slotsPerPage - 1, VectorSlab.slotsPerPage, count - 1] {
            let found = index.exactNearest(to: stored[id])
            #expect(found?.id == UInt64(id) && (found?.similarity ?? 0) > 0.9999, "\(id): \(String(describing: found))")
        }
        let query = random.vector(8)
        #expect(index.exactNearest(to: query)?.id == UInt64(naiveNearest(to: query, in: stored).index))
    }

    @Test("A lookup answers only when the best similarity reaches the minimum")
    func minimumSimilarity() throws {
        let index = VectorIndex(dimensions: 3)
        index.insert(1, vector: [1, 0, 0])
        index.insert(2, vector: [0, 1, 0])
        let hit = try #require(index.nearest(to: [2, 1, 0], minimumSimilarity: 0.85))
        #expect(hit.id == 1)
        #expect(abs(hit.similarity - 2 / Float(5).squareRoot()) < 1e-6)
        #expect(index.nearest(to: [2, 1, 0], minimumSimilarity: 0.9) == nil)
        #expect(index.nearest(to: [0, 0, 1], minimumSimilarity: 0.01) == nil)
        #expect(VectorIndex(dimensions: 3).nearest(to: [1, 0, 0], minimumSimilarity: -1) == nil)
    }

    // MARK: - Validation

    @Test("Normalising gives a unit vector in the same direction, even for huge or tiny components")
    func normalisation() throws {
        let unit = try #require(VectorIndex.normalised([3, 4], dimensions: 2))
        #expect(abs(unit[0] - 0.6) < 1e-6 && abs(unit[1] - 0.8) < 1e-6)
        let huge = try #require(VectorIndex.normalised([3e37, 4e37, 0], dimensions: 3))
        #expect(abs(huge[0] - 0.6) < 1e-6 && abs(huge[1] - 0.8) < 1e-6 && huge[2] == 0)
        let tiny = try #require(VectorIndex.normalised([Float.leastNormalMagnitude * 0.3, Float.leastNormalMagnitude * -0.4], dimensions: 2))
        #expect(abs(tiny[0] - 0.6) < 1e-3 && abs(tiny[1] + 0.8) < 1e-3)
        var random = TestRandom(seed: 3)
        let long = try #require(VectorIndex.normalised(random.vector(384, scale: 7), dimensions: 384))
        #expect(long.count == 384)
        #expect(abs(long.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
    }

    @Test(
        "Wrong-dimension, non-finite and zero vectors are rejected",
        arguments: [[1, 2], [1, 2, 3, 4], [], [.nan, 1, 1], [1, .infinity, 1], [1, 1, -.infinity], [0, 0, 0]]
            as [[Float]])
    func rejectsInvalidVectors(vector: [Float]) {
        #expect(VectorIndex.normalised(vector, dimensions: 3) == nil)
        let index = VectorIndex(dimensions: 3)
        index.insert(1, vector: [1, 0, 0])
        #expect(!index.insert(2, vector: vector))
        // A rejected replacement leaves the stored vector alone.
        #expect(!index.insert(1, vector: vector))
        #expect(index.count == 1)
        #expect(index.nearest(to: [1, 0, 0], minimumSimilarity: 0.99)?.id == 1)
        #expect(index.nearest(to: vector, minimumSimilarity: -1) == nil)
        #expect(index.exactNearest(to: vector) == nil)
    }

    // MARK: - Removal and replacement

    @Test("A removed entry is never returned again")
    func remove() {
        let index = VectorIndex(dimensions: 2)
        index.insert(1, vector: [1, 0])
        index.insert(2, vector: [0.8, 0.6])
        #expect(index.remove(1))
        #expect(!index.remove(1))
        #expect(!index.remove(99))
        #expect(index.count == 1)
        #expect(index.nearest(to: [1, 0], minimumSimilarity: -1)?.id == 2)
        #expect(index.remove(2))
        #expect(index.count == 0)
        #expect(index.nearest(to: [1, 0], minimumSimilarity: -1) == nil)
        #expect(index.exactNearest(to: [1, 0]) == nil)
    }

    @Test("Inserting under a stored id replaces its vector")
    func replace() throws {
        let index = VectorIndex(dimensions: 2)
        index.insert(1, vector: [1, 0])
        index.insert(2, vector: [0.6, 0.8])
        #expect(index.insert(1, vector: [0, 1]))
        #expect(index.count == 2)
        #expect(index.slotsInUse == 2)
        let hit = try #require(index.nearest(to: [0, 5], minimumSimilarity: 0.99))
        #expect(hit.id == 1)
        #expect(index.nearest(to: [1, 0], minimumSimilarity: -1)?.id == 2)
    }

    @Test("Removed slots are reused by later inserts")
    func slotReuse() {
        var random = TestRandom(seed: 5)
        let index = VectorIndex(dimensions: 8)
        for id in 0..<100 { index.insert(UInt64(id), vector: random.vector(8)) }
        for id in 0..<40 { index.remove(UInt64(id)) }
        #expect(index.slotsInUse == 100)
        for id in 100..<140 { index.insert(UInt64(id), vector: random.vector(8)) }
        #expect(index.count == 100)
        #expect(index.slotsInUse == 100)
        index.insert(140, vector: random.vector(8))
        #expect(index.slotsInUse == 101)
    }

    // MARK: - Approximate index

    /// A sparser graph than the default, so that thousands of inserts stay fast in a debug build.
    static let lightGraph = NeighbourGraph.Shape(linksPerNode: 6, constructionBreadth: 32)

    @Test("The graph finds the exact nearest entry for at least 95% of queries, also after heavy churn")
    func approximateRecall() {
        var data = ClusteredData(dimensions: 16, clusters: 40, seed: 11)
        let index = VectorIndex(dimensions: 16, exactScanLimit: 100, graphShape: Self.lightGraph)
        var stored: [UInt64: [Float]] = [:]
        for id in 0..<2_000 {
            let point = data.point()
            stored[UInt64(id)] = point
            index.insert(UInt64(id), vector: point)
        }
        #expect(index.isApproximate)
        #expect(recall(index, queries: 100, near: stored, data: &data) >= 0.95)

        // A full cache evicts its oldest entry for each new one: replace half of the index that way.
        for id in 2_000..<3_000 {
            index.remove(UInt64(id - 2_000))
            stored[UInt64(id - 2_000)] = nil
            let point = data.point()
            stored[UInt64(id)] = point
            index.insert(UInt64(id), vector: point)
        }
        #expect(index.count == 2_000)
        #expect(index.slotsInUse == 2_000)
        #expect(recall(index, queries: 100, near: stored, data: &data) >= 0.95)
    }

    @Test("The graph never returns removed entries, and small indexes go back to the exact scan")
    func approximateRemoval() {
        var data = ClusteredData(dimensions: 16, clusters: 20, seed: 13)
        let index = VectorIndex(dimensions: 16, exactScanLimit: 50, graphShape: Self.lightGraph)
        let points = (0..<600).map { _ in data.point() }
        for (id, point) in points.enumerated() { index.insert(UInt64(id), vector: point) }
        for id in stride(from: 0, to: 600, by: 2) { index.remove(UInt64(id)) }
        #expect(index.isApproximate)
        for id in stride(from: 0, to: 600, by: 2) {
            let found = index.nearest(to: points[id], minimumSimilarity: -1)
            #expect(found != nil && found!.id % 2 == 1)
        }
        for id in stride(from: 1, to: 520, by: 2) { index.remove(UInt64(id)) }
        #expect(index.count == 40)
        #expect(!index.isApproximate)
        #expect(index.nearest(to: points[599], minimumSimilarity: 0.9999)?.id == 599)
    }

    @Test("Two indexes fed the same inserts give the same answers")
    func deterministic() {
        var data = ClusteredData(dimensions: 16, clusters: 10, seed: 17)
        let points = (0..<400).map { _ in data.point() }
        let queries = (0..<50).map { _ in data.point() }
        let answers = (0..<2).map { _ in
            let index = VectorIndex(dimensions: 16, exactScanLimit: 10, graphShape: Self.lightGraph)
            for (id, point) in points.enumerated() { index.insert(UInt64(id), vector: point) }
            return queries.map { index.nearest(to: $0, minimumSimilarity: -1)?.id }
        }
        #expect(answers[0] == answers[1])
    }

    // MARK: - Helpers

    /// The fraction of queries near stored entries for which `nearest` (the graph) agrees with `exactNearest`.
    private func recall(_ index: VectorIndex, queries: Int, near stored: [UInt64: [Float]], data: inout ClusteredData)
        -> Double
    {
        let sources = Array(stored.values)
        var agreed = 0
        for _ in 0..<queries {
            let query = data.point(near: sources[data.random.below(sources.count)], spread: 0.35)
            if index.nearest(to: query, minimumSimilarity: -1)?.id == index.exactNearest(to: query)?.id { agreed += 1 }
        }
        return Double(agreed) / Double(queries)
    }

    /// The most similar vector by cosine, computed in Double one component at a time.
    private func naiveNearest(to query: [Float], in stored: [[Float]]) -> (index: Int, similarity: Double) {
        func norm(_ vector: [Float]) -> Double { vector.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }
        var best = (index: -1, similarity: -Double.infinity)
        let queryNorm = norm(query)
        for (index, vector) in stored.enumerated() {
            var dot = 0.0
            for component in 0..<query.count { dot += Double(query[component]) * Double(vector[component]) }
            let similarity = dot / (queryNorm * norm(vector))
            if similarity > best.similarity { best = (index, similarity) }
        }
        return best
    }
}

/// Points scattered around random centres, like sentence embeddings on a few topics.
private struct ClusteredData {
    let dimensions: Int
    let centres: [[Float]]
    var random: TestRandom

    init(dimensions: Int, clusters: Int, seed: UInt64) {
        self.dimensions = dimensions
        random = TestRandom(seed: seed)
        var random = random
        centres = (0..<clusters).map { _ in random.vector(dimensions) }
        self.random = random
    }

    /// A centre plus noise of `spread` times the centre's length.
    mutating func point() -> [Float] {
        point(near: centres[random.below(centres.count)], spread: 0.6)
    }

    mutating func point(near source: [Float], spread: Float) -> [Float] {
        let noise = random.vector(dimensions, scale: spread)
        return zip(source, noise).map { $0 + $1 }
    }
}

/// A seeded generator of roughly Gaussian vectors (sum of uniforms), so failures reproduce.
private struct TestRandom {
    private var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed &+ 0x1234_5678) }

    mutating func next() -> UInt64 { generator.next() }

    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// Components with mean 0 and variance `scale² / dimensions`, so the vector's length is about `scale`.
    mutating func vector(_ dimensions: Int, scale: Float = 1) -> [Float] {
        let componentScale = scale / Float(dimensions).squareRoot()
        return (0..<dimensions).map { _ in
            // Four uniforms on [-0.5, 0.5) sum to variance 1/3; scale that to 1.
            var sum: Float = 0
            for _ in 0..<4 { sum += Float(next() >> 40) / Float(1 << 24) - 0.5 }
            return sum * 1.7320508 * componentScale
        }
    }
}
