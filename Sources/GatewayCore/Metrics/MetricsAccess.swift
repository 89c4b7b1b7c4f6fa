/// Who may read `/metrics` on the API listener.
enum MetricsAccess {
    /// Whether `header` is `Bearer <token>`, compared without stopping at the first difference.
    static func bearer(_ header: String, matches token: String) -> Bool {
        let given = Array(header.utf8)
        let expected = Array(("Bearer " + token).utf8)
        guard given.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (left, right) in zip(given, expected) { difference |= left ^ right }
        return difference == 0
    }
}
