import Atomics
import Logging

/// The daemon's log level, shared by every copy of its logger, so a reload can change it (`logging.level`).
public final class LogLevelControl: Sendable {
    private static let levels = Logger.Level.allCases
    private let index: ManagedAtomic<Int>

    public init(_ level: Logger.Level) {
        self.index = ManagedAtomic(Self.levels.firstIndex(of: level) ?? 2)
    }

    /// The level in force.
    public var level: Logger.Level {
        get { Self.levels[index.load(ordering: .relaxed)] }
        set { index.store(Self.levels.firstIndex(of: newValue) ?? 2, ordering: .relaxed) }
    }

    /// Applies a `logging.level` value (`trace` ... `critical`); an unknown name changes nothing.
    public func apply(_ name: String) {
        if let level = Logger.Level(rawValue: name) { self.level = level }
    }

    /// A log handler writing to standard output whose level is this control's.
    public func handler(label: String) -> some LogHandler {
        ControlledLogHandler(inner: StreamLogHandler.standardOutput(label: label), control: self)
    }
}

/// Forwards to `inner`, with the level read from a `LogLevelControl` at every call.
///
/// Metadata is kept here and handed over only when a line is written: a request sets metadata on every request
/// (request id, key), and the stream handler would format it at each set, logged or not.
struct ControlledLogHandler<Inner: LogHandler>: LogHandler {
    var inner: Inner
    let control: LogLevelControl
    var metadata: Logger.Metadata = [:]

    var logLevel: Logger.Level {
        get { control.level }
        set { control.level = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let merged = metadata.map { self.metadata.merging($0) { _, explicit in explicit } } ?? self.metadata
        inner.log(level: level, message: message, metadata: merged, source: source, file: file, function: function, line: line)
    }
}
