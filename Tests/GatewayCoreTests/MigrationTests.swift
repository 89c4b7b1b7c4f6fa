import Testing

@testable import GatewayCore

/// The request log's schema as embedded from `migrations/` at build time (the stores' tests apply it to real databases).
@Suite("Migrations")
struct MigrationTests {
    @Test(arguments: Migration.Dialect.allCases)
    func eachDialectIsNumberedFromOneWithoutGaps(dialect: Migration.Dialect) throws {
        let migrations = try Migration.all(for: dialect)
        #expect(migrations.map(\.version) == Array(1...max(1, migrations.count)))
        for migration in migrations {
            #expect(!migration.statements.isEmpty, "\(dialect.rawValue)/\(migration.fileName) has no statement")
        }
    }

    @Test func theFirstMigrationMakesTheTableAndItsIndexes() throws {
        let postgres = try #require(try Migration.all(for: .postgres).first)
        #expect(postgres.fileName == "0001_gateway_logs.sql")
        #expect(postgres.statements.count == 4)
        #expect(postgres.statements[0].hasPrefix("CREATE TABLE gateway_logs ("))
        #expect(postgres.sql.contains("metadata JSONB NOT NULL DEFAULT '{}'"))
        let sqlite = try #require(try Migration.all(for: .sqlite).first)
        #expect(sqlite.fileName == "0001_gateway_logs.sql")
        #expect(sqlite.statements.count == 5)
        #expect(sqlite.statements[0].hasPrefix("CREATE TABLE IF NOT EXISTS gateway_logs ("))
    }

    /// A file outside a dialect's folder would never be applied.
    @Test func everyEmbeddedFileBelongsToADialect() {
        let folders = Set(Migration.Dialect.allCases.map { $0.rawValue + "/" })
        for file in embeddedMigrationFiles {
            #expect(folders.contains { file.path.hasPrefix($0) }, "migrations/\(file.path) is in no dialect's folder")
        }
        #expect(embeddedMigrationFiles.count == Migration.Dialect.allCases.map { (try? Migration.all(for: $0).count) ?? 0 }.reduce(0, +))
    }

    @Test func migrationsAreOrderedByTheirNumberNotTheirName() throws {
        let files: [(path: String, sql: String)] = [
            ("sqlite/10_ten.sql", "SELECT 10;"), ("sqlite/9_nine.sql", "SELECT 9;"), ("postgres/1_other.sql", "SELECT 1;"),
        ]
        let migrations = try Migration.parse(files, dialect: .sqlite)
        #expect(migrations.map(\.version) == [9, 10])
        #expect(migrations.map(\.fileName) == ["9_nine.sql", "10_ten.sql"])
    }

    @Test(arguments: [
        ("sqlite/add_region.sql", "number"),
        ("sqlite/0002-region.sql", "number"),
        ("sqlite/0000_nothing.sql", "number"),
        ("sqlite/old/0002_region.sql", "number"),
        ("sqlite/0001_again.sql", "number 1 is also sqlite/0001_first.sql"),
    ])
    func aFileThatCannotBeAppliedIsRefusedByName(path: String, fragment: String) {
        let files: [(path: String, sql: String)] = [("sqlite/0001_first.sql", "SELECT 1;"), (path, "SELECT 2;")]
        let error = #expect(throws: MigrationError.self) { try Migration.parse(files, dialect: .sqlite) }
        #expect(error?.description.hasPrefix("migrations/\(path): ") == true, "\(String(describing: error))")
        #expect(error?.description.contains(fragment) == true, "\(String(describing: error))")
    }

    @Test func statementsEndAtASemicolonOnTheEndOfALineAndSkipCommentLines() {
        let migration = Migration(version: 1, fileName: "0001_x.sql", sql: """
            -- a comment; with a semicolon;
            CREATE TABLE t (
                a TEXT DEFAULT ';' -- not the end
            );

            CREATE INDEX t_a ON t (a);
            SELECT 1
            """)
        #expect(migration.statements == [
            "CREATE TABLE t (\n    a TEXT DEFAULT ';' -- not the end\n);", "CREATE INDEX t_a ON t (a);", "SELECT 1",
        ])
    }
}

extension Migration {
    /// A later schema change, numbered after `embedded`: a column and an index, in SQL both dialects take.
    static func addingRegion(after embedded: [Migration]) -> Migration {
        let version = (embedded.map(\.version).max() ?? 0) + 1
        return Migration(
            version: version, fileName: "\(version)_region.sql",
            sql: "-- A later schema change.\nALTER TABLE gateway_logs ADD COLUMN region TEXT;\nCREATE INDEX gateway_logs_region ON gateway_logs (region);\n")
    }
}
