/// An immutable value kept behind one reference.
///
/// Request state is copied into every async frame that holds it (each middleware, each suspended call), and a
/// task keeps the memory of its largest frames for as long as it lives: a long-lived connection or an open
/// stream pays for every byte. Large configuration values ride along as one pointer instead.
final class Shared<Value: Sendable>: Sendable {
    let value: Value

    init(_ value: Value) {
        self.value = value
    }
}

extension Shared: Equatable where Value: Equatable {
    static func == (lhs: Shared, rhs: Shared) -> Bool {
        lhs === rhs || lhs.value == rhs.value
    }
}
