import NIOCore

/// One server-sent event: its `event:` name (nil when unnamed) and its joined `data:` lines.
public struct ServerSentEvent: Sendable, Equatable {
    public var event: String?
    public var data: String

    public init(event: String? = nil, data: String) {
        self.event = event
        self.data = data
    }

    /// Writes the event as `event: <name>` and one `data:` line per line of `data`, then the blank line.
    public func write(to buffer: inout ByteBuffer) {
        if let event {
            buffer.writeString("event: ")
            buffer.writeString(event)
            buffer.writeString("\n")
        }
        for line in data.split(separator: "\n", omittingEmptySubsequences: false) {
            buffer.writeString("data: ")
            buffer.writeSubstring(line)
            buffer.writeString("\n")
        }
        buffer.writeString("\n")
    }
}

/// Splits a byte stream into server-sent events, whatever the chunk boundaries.
///
/// Follows the WHATWG rules: lines end in LF, CRLF or CR; a blank line ends an event;
/// lines starting with `:` are comments; `data:` lines are joined with LF.
extension ServerSentEvent {
    /// The event's data as a JSON object, for a provider's stream translator.
    /// - Throws: `GatewayError` (502) when it is not one.
    func jsonObject() throws(GatewayError) -> JSON {
        guard let data = try? JSON.parse(data), data.objectValue != nil else {
            throw .badGateway("The provider sent a streamed event that is not JSON.")
        }
        return data
    }
}

public struct ServerSentEventParser: Sendable {
    private var line: [UInt8] = []
    private var event: String?
    private var dataLines: [String] = []
    private var hasData = false
    /// Bytes of the pending event's data lines, bounded like a line.
    private var dataBytes = 0
    private var lastWasCR = false

    /// Upper bound on one line, so a stream without newlines cannot exhaust memory.
    public static let maximumLineBytes = 16 * 1024 * 1024

    public init() {}

    /// Feeds bytes and returns the events they complete.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) throws(GatewayError) -> [ServerSentEvent] where Bytes.Element == UInt8 {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if byte == 0x0A {
                if lastWasCR {
                    lastWasCR = false
                    continue
                }
                endLine(into: &events)
                try checkEventSize()
            } else if byte == 0x0D {
                lastWasCR = true
                endLine(into: &events)
                try checkEventSize()
            } else {
                lastWasCR = false
                line.append(byte)
                if line.count > Self.maximumLineBytes {
                    throw .badGateway("The provider sent a streamed line longer than \(Self.maximumLineBytes) bytes.")
                }
            }
        }
        return events
    }

    /// An event's data is bounded like a line: a provider cannot make the gateway hold an endless event.
    private func checkEventSize() throws(GatewayError) {
        if dataBytes > Self.maximumLineBytes {
            throw .badGateway("The provider sent a streamed event larger than \(Self.maximumLineBytes) bytes.")
        }
    }

    /// Returns the event left pending when the stream ends without a final blank line.
    public mutating func finish() -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        if !line.isEmpty { endLine(into: &events) }
        if hasData { events.append(ServerSentEvent(event: event, data: dataLines.joined(separator: "\n"))) }
        reset()
        return events
    }

    private mutating func reset() {
        event = nil
        dataLines = []
        dataBytes = 0
        hasData = false
    }

    private mutating func endLine(into events: inout [ServerSentEvent]) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if hasData { events.append(ServerSentEvent(event: event, data: dataLines.joined(separator: "\n"))) }
            reset()
            return
        }
        if line.first == UInt8(ascii: ":") { return }
        let field: String
        var value: String
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = String(decoding: line[..<colon], as: UTF8.self)
            var valueStart = colon + 1
            if valueStart < line.count, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
            value = String(decoding: line[valueStart...], as: UTF8.self)
        } else {
            field = String(decoding: line, as: UTF8.self)
            value = ""
        }
        switch field {
        case "data":
            dataLines.append(value)
            dataBytes += value.utf8.count + 1
            hasData = true
        case "event":
            event = value
        default:
            value = ""
        }
    }
}
