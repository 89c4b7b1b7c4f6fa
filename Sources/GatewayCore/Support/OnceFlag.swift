import Atomics

/// A flag that exactly one caller can take.
final class OnceFlag: Sendable {
    private let taken = ManagedAtomic(false)

    init() {}

    /// True for the first caller only.
    func take() -> Bool {
        taken.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
}
