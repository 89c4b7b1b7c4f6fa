/// A hierarchical navigable small-world graph (HNSW, Malkov and Yashunin 2016) over the slots of a `VectorSlab`.
///
/// Every slot is a node on level 0 and, with probability `1 / linksPerNode` per extra level, on the levels above.
/// A lookup walks greedily down the sparse upper levels to a good starting node, then runs a beam search of
/// `searchBreadth` candidates on level 0. Inserting a node searches the same way with `constructionBreadth`
/// candidates and links it to a spread-out set of its nearest nodes (the paper's neighbour-selection heuristic),
/// linking back from each of them.
///
/// Deletion is hnswlib's replace-deleted scheme: a removed slot stays in the graph as a waypoint (walked through,
/// never returned, see `VectorSlab.live`) until an insert reuses it. Then `detach` first reroutes each former
/// neighbour's link to the slot onto the slot's closest other former neighbour, so the neighbourhood the slot
/// leaves stays connected, and `attach` links the slot again at its old level by its new vector. A
/// remove-then-insert therefore costs one graph insert plus about `baseLinksPerNode²` dot products, and repeating
/// it keeps the graph as good as a fresh one.
///
/// Not thread-safe; `VectorIndex` owns it and inherits its owner's serialisation.
final class NeighbourGraph {
    /// How densely the graph is linked and how hard inserts search: more finds better links and costs more.
    struct Shape: Sendable {
        /// Links per node on levels above 0 (HNSW's `M`); level 0 gets twice as many, as the paper recommends.
        var linksPerNode = 16
        /// Candidates kept while searching for a new node's neighbours (HNSW's `efConstruction`).
        var constructionBreadth = 100
    }

    let linksPerNode: Int
    let baseLinksPerNode: Int
    let constructionBreadth: Int
    /// Candidates kept while searching for a lookup's answer (HNSW's `ef`).
    var searchBreadth = 64

    private let slab: VectorSlab
    private var capacity = 0
    /// Level-0 link lists, `baseLinksPerNode + 1` words per slot: the count, then the linked slots.
    private var baseLinks: UnsafeMutablePointer<UInt32>
    /// Per slot, its link lists on levels 1... (`linksPerNode + 1` words each), or nil for a level-0-only node.
    private var upperLinks: [UnsafeMutablePointer<UInt32>?] = []
    /// Each attached slot's top level; its count is the number of slots the graph has seen.
    private var levels: [UInt8] = []
    private var entryPoint: UInt32?
    private var topLevel = 0
    /// Per slot, the search generation that last visited it: a visited set that is cleared by one increment.
    private var visitMarks: UnsafeMutablePointer<UInt32>
    private var visitGeneration: UInt32 = 0
    private var random = SplitMix64(seed: 0x5EED_CAC4_E5E4_A7C4)
    // Reused between calls so that searching allocates nothing.
    private var candidates = SlotHeap()
    private var results = SlotHeap()
    private var ordered: ContiguousArray<ScoredSlot> = []
    private var selected: ContiguousArray<UInt32> = []

    init(slab: VectorSlab, shape: Shape = Shape()) {
        self.slab = slab
        linksPerNode = max(2, shape.linksPerNode)
        baseLinksPerNode = 2 * linksPerNode
        constructionBreadth = max(1, shape.constructionBreadth)
        baseLinks = .allocate(capacity: 0)
        visitMarks = .allocate(capacity: 0)
    }

    deinit {
        baseLinks.deallocate()
        visitMarks.deallocate()
        for block in upperLinks { block?.deallocate() }
    }

    /// Bytes held by links, levels and the visited set, including spare capacity.
    var bytesHeld: Int {
        let upperBlocks = levels.reduce(0) { $0 + Int($1) } * (linksPerNode + 1) * 4
        return capacity * ((baseLinksPerNode + 1) * 4 + 4 + 1 + 8) + upperBlocks
    }

    /// Makes room for `newCapacity` slots, matching the slab's capacity.
    func grow(to newCapacity: Int) {
        // New slots' link lists are left unwritten until `attach` first empties them, as in `VectorSlab.grow`.
        let wordsPerSlot = baseLinksPerNode + 1
        let newLinks = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity * wordsPerSlot)
        newLinks.initialize(from: baseLinks, count: capacity * wordsPerSlot)
        baseLinks.deallocate()
        baseLinks = newLinks
        let newMarks = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity)
        newMarks.initialize(from: visitMarks, count: capacity)
        (newMarks + capacity).initialize(repeating: 0, count: newCapacity - capacity)
        visitMarks.deallocate()
        visitMarks = newMarks
        capacity = newCapacity
        upperLinks.reserveCapacity(newCapacity)
        levels.reserveCapacity(newCapacity)
    }

    // MARK: - Lookup

    /// The live slot closest to `query` (normalised, padded) that the search finds.
    func nearest(to query: UnsafePointer<Float>) -> (slot: UInt32, similarity: Float)? {
        guard let entryPoint else { return nil }
        var current = ScoredSlot(slot: entryPoint, score: slab.similarity(query, entryPoint))
        for level in Swift.stride(from: topLevel, to: 0, by: -1) {
            current = descendGreedily(query: query, from: current, level: level, excluding: nil)
        }
        searchLevel(query: query, from: current, level: 0, breadth: searchBreadth, liveOnly: true, excluding: nil)
        var best: ScoredSlot?
        while let worst = results.popTop() { best = worst }  // Results pop worst first: the last is the best.
        guard let best else { return nil }
        return (best.slot, -best.score)
    }

    // MARK: - Changes

    /// Links `slot`, whose vector has just been stored, into the graph.
    ///
    /// A slot the graph has not seen gets a random level; a reused slot keeps its old one (its links were cleared
    /// by `detach`), which keeps the level distribution intact.
    func attach(_ slot: UInt32) {
        if Int(slot) == levels.count {
            let level = randomLevel()
            levels.append(UInt8(level))
            links(slot, 0)[0] = 0
            var block: UnsafeMutablePointer<UInt32>?
            if level > 0 {
                block = .allocate(capacity: level * (linksPerNode + 1))
                block!.initialize(repeating: 0, count: level * (linksPerNode + 1))
            }
            upperLinks.append(block)
        }
        let level = Int(levels[Int(slot)])
        guard let entryPoint else {
            self.entryPoint = slot
            topLevel = level
            return
        }
        let query = UnsafePointer(slab.vector(slot))
        var current = ScoredSlot(slot: entryPoint, score: slab.similarity(query, entryPoint))
        for upper in Swift.stride(from: topLevel, to: level, by: -1) {
            current = descendGreedily(query: query, from: current, level: upper, excluding: slot)
        }
        for linkLevel in Swift.stride(from: min(level, topLevel), through: 0, by: -1) {
            searchLevel(
                query: query, from: current, level: linkLevel, breadth: constructionBreadth, liveOnly: false,
                excluding: slot)
            drainResultsBestFirst()
            guard let closest = ordered.first else { continue }
            current = closest
            // `linksPerNode` even on level 0, as hnswlib does: back-links from later nodes fill the list up to
            // `baseLinksPerNode`, and each link made here costs a back-link update below.
            selectSpreadNeighbours(of: nil, limit: linksPerNode)
            let list = links(slot, linkLevel)
            list[0] = UInt32(selected.count)
            for (offset, neighbour) in selected.enumerated() { list[offset + 1] = neighbour }
            // Iterate the stored list, not `selected`, which `link` reuses.
            for offset in 0..<Int(list[0]) { link(list[offset + 1], to: slot, level: linkLevel) }
        }
        if level > topLevel {
            self.entryPoint = slot
            topLevel = level
        }
    }

    /// Unlinks removed `slot` before its vector is overwritten, keeping its former neighbourhood connected.
    ///
    /// Each former neighbour that linked back to `slot` gets, in that link's place, the slot's former neighbour
    /// most similar to itself that it does not link to yet. Links to `slot` from nodes that were not its
    /// neighbours stay; they point at the new vector afterwards, which is a longer jump but still a valid one.
    func detach(_ slot: UInt32) {
        for level in 0...Int(levels[Int(slot)]) {
            let formerList = links(slot, level)
            let formerCount = Int(formerList[0])
            for index in 0..<formerCount {
                let neighbour = formerList[index + 1]
                rerouteLink(of: neighbour, awayFrom: slot, level: level, among: formerList)
            }
            formerList[0] = 0
        }
        if entryPoint == slot { replaceEntryPoint(leaving: slot) }
    }

    // MARK: - Search

    /// One greedy walk on `level`: moves to the most similar neighbour until no neighbour is more similar.
    ///
    /// `excluded` is a reused slot being linked again: other nodes may still link to it, and its own lists are
    /// empty, so stepping onto it would strand the walk.
    private func descendGreedily(
        query: UnsafePointer<Float>, from start: ScoredSlot, level: Int, excluding excluded: UInt32?
    ) -> ScoredSlot {
        var current = start
        var moved = true
        while moved {
            moved = false
            let list = links(current.slot, level)
            for index in 0..<Int(list[0]) {
                let neighbour = list[index + 1]
                if neighbour == excluded { continue }
                let similarity = slab.similarity(query, neighbour)
                if similarity > current.score {
                    current = ScoredSlot(slot: neighbour, score: similarity)
                    moved = true
                }
            }
        }
        return current
    }

    /// Beam search on `level` from `start`, leaving the best `breadth` slots found in `results`.
    ///
    /// `results` keeps the worst of them on top (its scores are negated similarities) so that it can drop it
    /// cheaply. Free slots are walked through but, with `liveOnly`, never kept as results.
    private func searchLevel(
        query: UnsafePointer<Float>, from start: ScoredSlot, level: Int, breadth: Int, liveOnly: Bool,
        excluding excluded: UInt32?
    ) {
        // Work on local copies: class properties pay an exclusivity check on every access.
        var candidates = SlotHeap()
        var results = SlotHeap()
        swap(&candidates, &self.candidates)
        swap(&results, &self.results)
        defer {
            swap(&candidates, &self.candidates)
            swap(&results, &self.results)
        }
        candidates.removeAll()
        results.removeAll()
        let marks = visitMarks
        let generation = nextVisitGeneration()
        let live = slab.live

        func isResult(_ slot: UInt32) -> Bool { (!liveOnly || live[Int(slot)]) && slot != excluded }

        marks[Int(start.slot)] = generation
        candidates.push(start)
        if isResult(start.slot) { results.push(ScoredSlot(slot: start.slot, score: -start.score)) }
        var worstKept = results.count == breadth ? -results.top!.score : -Float.infinity
        while let candidate = candidates.popTop() {
            if results.count == breadth && candidate.score < worstKept { break }
            let list = links(candidate.slot, level)
            for index in 0..<Int(list[0]) {
                let neighbour = list[index + 1]
                if marks[Int(neighbour)] == generation { continue }
                marks[Int(neighbour)] = generation
                if neighbour == excluded { continue }
                let similarity = slab.similarity(query, neighbour)
                guard results.count < breadth || similarity > worstKept else { continue }
                candidates.push(ScoredSlot(slot: neighbour, score: similarity))
                guard isResult(neighbour) else { continue }
                results.push(ScoredSlot(slot: neighbour, score: -similarity))
                if results.count > breadth { _ = results.popTop() }
                if results.count == breadth { worstKept = -results.top!.score }
            }
        }
    }

    /// Moves `results` into `ordered`, most similar first, with plain similarities as scores.
    private func drainResultsBestFirst() {
        ordered.removeAll(keepingCapacity: true)
        while let worst = results.popTop() { ordered.append(ScoredSlot(slot: worst.slot, score: -worst.score)) }
        ordered.reverse()
    }

    // MARK: - Links

    /// Picks from `ordered` (most similar first) at most `limit` slots into `selected`, skipping any candidate
    /// that is more similar to an already selected slot than to the base node.
    ///
    /// This is the HNSW paper's heuristic: it spreads the links over directions instead of spending them all on
    /// one tight cluster, which keeps clustered data navigable. `base` is only there to skip itself.
    private func selectSpreadNeighbours(of base: UInt32?, limit: Int) {
        selected.removeAll(keepingCapacity: true)
        for candidate in ordered where candidate.slot != base {
            if selected.count == limit { break }
            var isSpread = true
            for kept in selected where slab.similarity(candidate.slot, kept) > candidate.score {
                isSpread = false
                break
            }
            if isSpread { selected.append(candidate.slot) }
        }
    }

    /// Adds a link from `neighbour` to `slot` on `level`, re-selecting `neighbour`'s links when its list is full.
    private func link(_ neighbour: UInt32, to slot: UInt32, level: Int) {
        let list = links(neighbour, level)
        let count = Int(list[0])
        if firstPosition(of: slot, in: list) != nil { return }
        if count < limit(level) {
            list[count + 1] = slot
            list[0] = UInt32(count + 1)
            return
        }
        ordered.removeAll(keepingCapacity: true)
        ordered.append(ScoredSlot(slot: slot, score: slab.similarity(neighbour, slot)))
        for index in 0..<count {
            let linked = list[index + 1]
            ordered.append(ScoredSlot(slot: linked, score: slab.similarity(neighbour, linked)))
        }
        ordered.sort { $0.score > $1.score }
        selectSpreadNeighbours(of: neighbour, limit: limit(level))
        list[0] = UInt32(selected.count)
        for (offset, kept) in selected.enumerated() { list[offset + 1] = kept }
    }

    /// Replaces `neighbour`'s link to `leaving` on `level` with the most similar slot from `replacements` (a link
    /// list: count, then slots) that it does not link to yet, or drops the link when there is none.
    private func rerouteLink(
        of neighbour: UInt32, awayFrom leaving: UInt32, level: Int, among replacements: UnsafeMutablePointer<UInt32>
    ) {
        let list = links(neighbour, level)
        let count = Int(list[0])
        guard let position = firstPosition(of: leaving, in: list) else { return }
        var best: ScoredSlot?
        for index in 0..<Int(replacements[0]) {
            let candidate = replacements[index + 1]
            if candidate == neighbour || candidate == leaving || firstPosition(of: candidate, in: list) != nil {
                continue
            }
            let similarity = slab.similarity(neighbour, candidate)
            if similarity > best?.score ?? -.infinity { best = ScoredSlot(slot: candidate, score: similarity) }
        }
        if let best {
            list[position] = best.slot
        } else {
            list[position] = list[count]
            list[0] = UInt32(count - 1)
        }
    }

    /// Where `slot` is in a link list (count, then slots), as an index into the list.
    private func firstPosition(of slot: UInt32, in list: UnsafeMutablePointer<UInt32>) -> Int? {
        let count = Int(list[0])
        var position = 1
        while position <= count {
            if list[position] == slot { return position }
            position += 1
        }
        return nil
    }

    /// Chooses another node on the highest level as the entry point, because `leaving` is being overwritten.
    private func replaceEntryPoint(leaving: UInt32) {
        var replacement: UInt32?
        var replacementLevel = -1
        for (slot, level) in levels.enumerated() where UInt32(slot) != leaving && Int(level) > replacementLevel {
            replacement = UInt32(slot)
            replacementLevel = Int(level)
        }
        entryPoint = replacement
        topLevel = max(0, replacementLevel)
    }

    /// The link list of `slot` on `level`: the count, then the linked slots.
    @inline(__always) private func links(_ slot: UInt32, _ level: Int) -> UnsafeMutablePointer<UInt32> {
        if level == 0 { return baseLinks + Int(slot) * (baseLinksPerNode + 1) }
        return upperLinks[Int(slot)]! + (level - 1) * (linksPerNode + 1)
    }

    @inline(__always) private func limit(_ level: Int) -> Int {
        level == 0 ? baseLinksPerNode : linksPerNode
    }

    /// A level drawn so that P(level ≥ l) = linksPerNode^-l, the paper's distribution with mL = 1 / ln M.
    private func randomLevel() -> Int {
        var level = 0
        while level < 16 && random.nextUnitInterval() * Double(linksPerNode) < 1 { level += 1 }
        return level
    }

    private func nextVisitGeneration() -> UInt32 {
        visitGeneration &+= 1
        if visitGeneration == 0 {
            visitMarks.update(repeating: 0, count: capacity)
            visitGeneration = 1
        }
        return visitGeneration
    }
}

// MARK: - Helpers

/// A slot with a score; what the score means (similarity or its negation) depends on the heap holding it.
struct ScoredSlot {
    var slot: UInt32
    var score: Float
}

/// A binary heap of scored slots, highest score on top, that keeps its storage between uses.
private struct SlotHeap {
    private var storage: ContiguousArray<ScoredSlot> = []

    var count: Int { storage.count }
    var top: ScoredSlot? { storage.first }

    mutating func removeAll() { storage.removeAll(keepingCapacity: true) }

    mutating func push(_ element: ScoredSlot) {
        storage.append(element)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard storage[parent].score < element.score else { break }
            storage[child] = storage[parent]
            child = parent
        }
        storage[child] = element
    }

    mutating func popTop() -> ScoredSlot? {
        guard let last = storage.popLast() else { return nil }
        guard let first = storage.first else { return last }
        var parent = 0
        let count = storage.count
        while true {
            var child = 2 * parent + 1
            if child >= count { break }
            if child + 1 < count && storage[child + 1].score > storage[child].score { child += 1 }
            guard storage[child].score > last.score else { break }
            storage[parent] = storage[child]
            parent = child
        }
        storage[parent] = last
        return first
    }
}

