import Foundation

/// Writes SQL files into a Swift source file, for the `EmbedMigrations` build plugin.
///
/// `embed-migrations FOLDER OUTPUT FILE...` writes to `OUTPUT` the array `embeddedMigrationFiles`: for each `FILE`
/// (under `FOLDER`), its path relative to `FOLDER` and its text, in the order given. It checks nothing about the
/// files' names: GatewayCore's `Migration` reads them, and its tests fail on a name it cannot use.
@main
struct EmbedMigrations {
    static func main() {
        do {
            try run(CommandLine.arguments.dropFirst())
        } catch {
            FileHandle.standardError.write(Data("embed-migrations: error: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run(_ arguments: ArraySlice<String>) throws {
        guard arguments.count >= 2, let folder = arguments.first, let output = arguments.dropFirst().first else {
            throw Failure("usage: embed-migrations FOLDER OUTPUT FILE...")
        }
        let prefix = folder.hasSuffix("/") ? folder : folder + "/"
        var source = """
            // Generated at build time by embed-migrations (the EmbedMigrations plugin) from migrations/.
            // Do not edit: change the .sql files.

            /// Every `.sql` file under `migrations/`: its path there (`postgres/0001_gateway_logs.sql`) and its text.
            let embeddedMigrationFiles: [(path: String, sql: String)] = [

            """
        for file in arguments.dropFirst(2) {
            guard file.hasPrefix(prefix) else { throw Failure("\(file) is not under \(folder)") }
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw Failure("\(file): cannot read it as UTF-8 text (\(error.localizedDescription))")
            }
            source += "    (\(literal(String(file.dropFirst(prefix.count)))), \(literal(text))),\n"
        }
        source += "]\n"
        try source.write(toFile: output, atomically: true, encoding: .utf8)
    }

    /// `text` as a Swift string literal.
    static func literal(_ text: String) -> String {
        var literal = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": literal += "\\\\"
            case "\"": literal += "\\\""
            case "\n": literal += "\\n"
            case "\r": literal += "\\r"
            case "\t": literal += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                literal += "\\u{\(String(scalar.value, radix: 16))}"
            default: literal.unicodeScalars.append(scalar)
            }
        }
        return literal + "\""
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
