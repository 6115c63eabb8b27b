// Small helpers to summarize repeated runs and print figures.
extension Array where Element == Double {
    /// The median (mean of the two middle values for an even count); 0 when empty.
    var median: Double {
        guard !isEmpty else { return 0 }
        let sorted = self.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

/// `value` rounded to `digits` decimals (0...6), e.g. fixed(3.14159, 2) == "3.14".
func fixed(_ value: Double, _ digits: Int = 0) -> String {
    guard value.isFinite else { return "\(value)" }
    let digits = min(max(digits, 0), 6)
    var scale: UInt64 = 1
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * Double(scale)).rounded()
    guard scaled < 9e18 else { return "\(value)" }
    let units = UInt64(scaled)
    var text = String(units / scale)
    if digits > 0 {
        let fraction = String(units % scale)
        text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
    }
    return value < 0 && units > 0 ? "-" + text : text
}

/// An integer with thin-space-free thousands separators: 5,000,000.
func grouped(_ value: UInt64) -> String {
    let digits = String(value)
    var result = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { result += "," }
        result.append(digit)
    }
    return result
}

/// Events per second as millions: "1.93 M/s".
func millionsPerSecond(_ value: Double) -> String { "\(fixed(value / 1e6, 2)) M/s" }
