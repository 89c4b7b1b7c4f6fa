import Atomics
import Crypto

/// A validated configuration with the lookup tables derived from it, never changed once built.
///
/// A request takes the current snapshot at its start and uses it to the end, so a reload
/// never changes the rules under a request in flight.
public final class ConfigSnapshot: Sendable {
    /// The configuration.
    public let config: GatewayConfig
    /// Model names to providers.
    public let models: ModelTable
    /// Keys by the hex SHA-256 of their secret.
    public let keysByHash: [String: KeyConfig]
    /// Counts the snapshots built by this process, starting at 1.
    public let generation: Int
    /// SHA-256 (hex) of the file the configuration was read from; nil when it was built in code.
    public let sourceSHA256: String?
    /// Every budget, the keys' shorthands included (empty: the budget step costs nothing).
    public let budgets: [BudgetConfig]

    public init(config: GatewayConfig, generation: Int = 1, sourceSHA256: String? = nil) {
        self.sourceSHA256 = sourceSHA256
        self.config = config
        self.models = ModelTable(config: config)
        var keys: [String: KeyConfig] = [:]
        for key in config.keys { keys[key.sha256.lowercased()] = key }
        self.keysByHash = keys
        self.budgets = config.allBudgets
        self.generation = generation
    }

    /// The key whose secret is `secret`, if any.
    public func key(forSecret secret: String) -> KeyConfig? {
        keysByHash[KeyHash.sha256Hex(secret)]
    }
}

extension ConfigSnapshot: AtomicReference {}

/// Holds the current `ConfigSnapshot` and swaps it atomically.
public final class ConfigStore: Sendable {
    private let current: ManagedAtomic<ConfigSnapshot>

    public init(_ snapshot: ConfigSnapshot) {
        self.current = ManagedAtomic(snapshot)
    }

    /// The snapshot in force now.
    public var snapshot: ConfigSnapshot { current.load(ordering: .acquiring) }

    /// Puts `snapshot` in force for every request that starts from now on.
    public func replace(with snapshot: ConfigSnapshot) {
        current.store(snapshot, ordering: .releasing)
    }
}

/// SHA-256 of gateway keys: the only form in which keys are stored or compared.
public enum KeyHash {
    /// Lower-case hex SHA-256 of the UTF-8 bytes of `secret`.
    public static func sha256Hex(_ secret: String) -> String {
        sha256Hex(bytes: Array(secret.utf8))
    }

    /// Lower-case hex SHA-256 of `bytes`.
    public static func sha256Hex(bytes: [UInt8]) -> String {
        let digest = SHA256.hash(data: bytes)
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in digest {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
