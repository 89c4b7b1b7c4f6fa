/// Gateway keys: `gw_` followed by 43 random URL-safe characters (32 random bytes).
public enum GatewayKeys {
    /// The prefix every gateway key carries.
    public static let prefix = "gw_"

    /// A new random key.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        for _ in 0..<32 { bytes.append(UInt8.random(in: 0...255, using: &generator)) }
        return prefix + base64URL(bytes)
    }

    /// The `keys:` entry for `key`, ready to paste into gateway.yaml.
    public static func yamlSnippet(name: String, key: String) -> String {
        """
        keys:
          - name: \(name)
            sha256: \(KeyHash.sha256Hex(key))
            prefix: \(String(key.prefix(prefix.count + 4)))
            models: ["*"]
        """
    }

    /// Unpadded base64url (RFC 4648 section 5).
    static func base64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var value: UInt32 = 0
            for (offset, byte) in chunk.enumerated() { value |= UInt32(byte) << (16 - 8 * offset) }
            let characters = chunk.count + 1
            for position in 0..<characters { output.append(alphabet[Int((value >> (18 - 6 * position)) & 0x3F)]) }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }
}

extension KeyConfig {
    /// Whether the allow-list admits `model`.
    public func allows(model: String) -> Bool {
        models.contains { Glob($0).matches(model) }
    }
}
