/// One thing wrong (or worth a look) in a configuration file, with where it is.
///
/// Its `description` reads like nginx's and compilers' diagnostics, so editors can jump to it:
/// ```
/// gateway.yaml:12:14: error: providers.openai.timeouts.connect: invalid duration "5x" (use ms, s, m or h)
/// ```
public struct ConfigProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// How bad a problem is.
    public enum Severity: String, Sendable, Equatable {
        /// The file is rejected: the daemon does not start, a reload keeps the old configuration.
        case error
        /// The file is accepted, but something will not work as the operator may expect.
        case warning
    }

    /// Error or warning.
    public var severity: Severity
    /// The file as the operator named it.
    public var file: String
    /// 1-based line; 0 only when the file could not be read. A setting missing altogether is reported at 1:1.
    public var line: Int
    /// 1-based column, counted in Unicode scalars; 0 only when the file could not be read.
    public var column: Int
    /// Dotted path of the setting, e.g. `providers.openai.timeouts.connect` or `keys[2].sha256`; empty for the whole file.
    public var path: String
    /// What is wrong, naming the offending key or value.
    public var message: String

    /// Creates a problem.
    public init(severity: Severity, file: String, line: Int, column: Int, path: String, message: String) {
        self.severity = severity
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    /// True for `.error`.
    public var isError: Bool { severity == .error }

    /// `file:line:column: severity: path: message`; the position is left out for an unreadable file, the path for
    /// a problem with the whole file (invalid YAML).
    public var description: String {
        var text = file
        if line > 0 {
            text += ":\(line):\(column)"
        }
        text += ": \(severity.rawValue): "
        if !path.isEmpty {
            text += "\(path): "
        }
        return text + message
    }
}
