/// Aligned plain-text tables for the command line: the first column left-aligned, the others right-aligned
/// unless told otherwise.
public enum TextTable {
    /// `header` and `rows` as lines of columns two spaces apart, each line ending in a newline.
    /// - Parameter leftAligned: the columns aligned to the left (numbers read best aligned to the right).
    public static func render(header: [String], rows: [[String]], leftAligned: Set<Int> = [0]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { line in
            var text = line.indices.map { column in
                let cell = line[column]
                let padding = String(repeating: " ", count: max(0, widths[column] - cell.count))
                return leftAligned.contains(column) ? cell + padding : padding + cell
            }.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text + "\n"
        }.joined()
    }
}
