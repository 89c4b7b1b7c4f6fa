import Foundation

/// One numbered change to the request log's schema: a file of `migrations/<dialect>/`, compiled into the binary.
///
/// The `.sql` files are the only copy of the schema. The `EmbedMigrations` build plugin embeds every file under
/// `migrations/` (`embeddedMigrationFiles`), so the binary needs no file at run time; each store applies its
/// dialect's files in the order of the number that starts their names, once each, recording the number in
/// `schema_migrations`. A new schema change is a new file with the next number: no Swift to touch.
///
/// ```swift
/// for migration in try Migration.all(for: .sqlite) {
///     print(migration.version, migration.fileName, migration.statements.count)  // 1 0001_gateway_logs.sql 5
/// }
/// ```
public struct Migration: Sendable, Equatable {
    /// An SQL dialect: its files are in `migrations/<rawValue>/`.
    public enum Dialect: String, Sendable, CaseIterable {
        case postgres
        case sqlite
    }

    /// The number at the start of the file's name, recorded in `schema_migrations` once applied.
    public var version: Int
    /// The file's name in its dialect's folder, e.g. `0001_gateway_logs.sql`.
    public var fileName: String
    /// The file's text.
    public var sql: String

    /// Creates a migration (the embedded ones come from `all(for:)`).
    public init(version: Int, fileName: String, sql: String) {
        self.version = version
        self.fileName = fileName
        self.sql = sql
    }

    /// The embedded migrations of `dialect`, oldest first.
    /// - Throws: `MigrationError` when a file's name does not start with a number, or two files share one.
    public static func all(for dialect: Dialect) throws(MigrationError) -> [Migration] {
        try parse(embeddedMigrationFiles, dialect: dialect)
    }

    /// The migrations of `dialect` among `files` (paths relative to `migrations/`), ordered by their numbers.
    static func parse(_ files: [(path: String, sql: String)], dialect: Dialect) throws(MigrationError) -> [Migration] {
        let folder = dialect.rawValue + "/"
        var migrations: [Migration] = []
        for file in files where file.path.hasPrefix(folder) {
            let name = String(file.path.dropFirst(folder.count))
            let digits = name.prefix { $0.isASCII && $0.isNumber }
            guard let version = Int(digits), version > 0, name.dropFirst(digits.count).hasPrefix("_"), !name.contains("/") else {
                throw MigrationError(path: file.path, reason: "the name must be the migration's number, \"_\" and a title, e.g. 0002_add_region.sql")
            }
            if let other = migrations.first(where: { $0.version == version }) {
                throw MigrationError(path: file.path, reason: "number \(version) is also \(folder)\(other.fileName)")
            }
            migrations.append(Migration(version: version, fileName: name, sql: file.sql))
        }
        return migrations.sorted { $0.version < $1.version }
    }

    /// The statements of `sql`, in order: each ends with `;` at the end of a line, and `--` comment lines are dropped.
    /// (PostgreSQL's extended protocol and SQLite's prepared statements run one statement at a time.)
    public var statements: [String] {
        var statements: [String] = []
        var current: [Substring] = []
        for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("--") { continue }
            current.append(line)
            if trimmed.hasSuffix(";") {
                statements.append(current.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines))
                current = []
            }
        }
        let rest = current.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty { statements.append(rest) }
        return statements
    }
}

/// An embedded migration file that cannot be applied, and why.
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    /// The file's path in `migrations/`, e.g. `sqlite/add_region.sql`.
    public var path: String
    /// What is wrong with it.
    public var reason: String

    public var description: String { "migrations/\(path): \(reason)" }
}
