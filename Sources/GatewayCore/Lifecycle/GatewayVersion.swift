public enum GatewayVersion {
    /// The version printed by `--version` and reported on the admin socket.
    public static let current = "0.1.0"
}
