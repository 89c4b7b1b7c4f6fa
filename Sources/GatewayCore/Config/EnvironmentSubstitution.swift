/// `${VAR}` substitution in configuration strings.
///
/// `${NAME}` is replaced by the variable's value; `NAME` is letters, digits and `_`, not starting with a digit.
/// `$$` writes one `$`. A `$` followed by anything else stays as it is, so secrets with a lone `$` need no escaping.
enum EnvironmentSubstitution {
    struct Result: Equatable {
        /// The text with every set variable replaced and every unset one replaced by nothing.
        var text: String
        /// Variables the text names that are unset, in order of appearance.
        var unset: [String]
    }

    struct SyntaxError: Error, Equatable {
        var message: String
    }

    static func substitute(_ text: String, environment: [String: String]) -> Swift.Result<Result, SyntaxError> {
        var output = ""
        var unset: [String] = []
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            output += rest[..<dollar]
            let after = rest.index(after: dollar)
            if after < rest.endIndex, rest[after] == "$" {
                output += "$"
                rest = rest[rest.index(after: after)...]
                continue
            }
            guard after < rest.endIndex, rest[after] == "{" else {
                output += "$"
                rest = rest[after...]
                continue
            }
            let nameStart = rest.index(after: after)
            guard let close = rest[nameStart...].firstIndex(of: "}") else {
                return .failure(SyntaxError(message: "unterminated \"${\" in \"\(text)\" (write ${NAME}, or $$ for a literal $)"))
            }
            let name = String(rest[nameStart..<close])
            guard isValidName(name) else {
                let shown = name.isEmpty ? "empty variable name" : "invalid variable name \"\(name)\""
                return .failure(SyntaxError(message: "\(shown) in \"\(text)\" (use letters, digits and _, e.g. ${OPENAI_API_KEY})"))
            }
            if let value = environment[name] {
                output += value
            } else if !unset.contains(name) {
                unset.append(name)
            }
            rest = rest[rest.index(after: close)...]
        }
        output += rest
        return .success(Result(text: output, unset: unset))
    }

    private static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) }
    }
}

/// "Did you mean …?" for misspelt keys and names.
enum Suggestion {
    /// The candidate closest to `word`, if one is close enough to be a likely typo.
    ///
    /// Spelling differences of case, `-` and `_` (`maxBodyBytes`, `max-body-bytes`) always match.
    static func closest(to word: String, in candidates: [String]) -> String? {
        let folded = fold(word)
        if let exact = candidates.first(where: { fold($0) == folded }) { return exact }
        let limit = max(1, min(3, word.count / 3))
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(folded, fold(candidate))
            if distance <= limit, distance < (best?.distance ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.candidate
    }

    /// `"a", "b" or "c"`.
    static func list(_ names: [String]) -> String {
        guard names.count > 1 else { return names.first ?? "" }
        return names.dropLast().joined(separator: ", ") + " or " + names.last!
    }

    private static func fold(_ text: String) -> [Character] {
        Array(text.lowercased().filter { $0 != "_" && $0 != "-" })
    }

    /// Levenshtein distance with adjacent transpositions counted as one edit.
    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }
}
