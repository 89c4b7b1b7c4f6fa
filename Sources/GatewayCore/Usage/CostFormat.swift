/// Formats of money.
public enum CostFormat {
    /// USD with six decimals, e.g. `0.000123`.
    public static func usd(_ amount: Double) -> String {
        let micros = Int64((amount * 1_000_000).rounded())
        let whole = micros / 1_000_000
        let fraction = String(micros % 1_000_000)
        return "\(whole)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }
}
