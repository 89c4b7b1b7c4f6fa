#if canImport(Glibc)
import Glibc
#endif

/// Where the configuration file is looked for.
public enum ConfigFile {
    /// Paths tried, in order, when `--config` is not given.
    public static let defaultPaths = ["./gateway.yaml", "/etc/llm-gateway/gateway.yaml"]

    /// `explicit` when given, else the first default path that exists, else the first default path.
    public static func locate(explicit: String?) -> String {
        if let explicit { return explicit }
        return defaultPaths.first { access($0, F_OK) == 0 } ?? defaultPaths[0]
    }

    /// The process environment as a dictionary.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}
