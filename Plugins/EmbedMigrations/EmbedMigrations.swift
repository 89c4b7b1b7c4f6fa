import Foundation
import PackagePlugin

/// Compiles every `.sql` file under the package's `migrations/` folder into the target, at build time.
///
/// The files stay the only copy of the schema: the `embed-migrations` tool writes them into a generated Swift file
/// (`embeddedMigrationFiles`), so the binary needs nothing from the disk at run time. The folder is listed anew
/// at every build, so a new file is picked up without touching any Swift code.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let folder = context.package.directoryURL.appending(path: "migrations")
        guard let paths = FileManager.default.subpaths(atPath: folder.path) else {
            throw PluginError("no migrations/ folder in \(context.package.directoryURL.path)")
        }
        let files = paths.filter { $0.hasSuffix(".sql") }.sorted().map { folder.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) migration file(s) from migrations/",
                executable: try context.tool(named: "embed-migrations").url,
                arguments: [folder.path, output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output])
        ]
    }
}

struct PluginError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
