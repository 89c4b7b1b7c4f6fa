/// Formats of money.
public enum CostFormat {
    /// USD with six decimals, e.g. `0.000123`; total over every double: a negative amount keeps its sign, an amount
    /// beyond a trillion dollars is written as a trillion, and one that is not a number as zero.
    public static func usd(_ amount: Double) -> String {
        let bounded = amount.isNaN ? 0 : min(max(amount, -1e12), 1e12)
        let micros = Int64((bounded * 1_000_000).rounded())
        let magnitude = micros.magnitude
        let fraction = String(magnitude % 1_000_000)
        return (micros < 0 ? "-" : "") + "\(magnitude / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }
}
