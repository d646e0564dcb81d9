/// Reading the fixed-width numbers of dates and times (`2026-11-29T08:30:00+08:00`) from their
/// bytes, without making text first: shared by ``ChinaTime/parse(_:)`` and the schema validator's
/// `date`/`date-time` formats (EventSchemas).
public enum ASCIIDigits {
    /// The number written with exactly `count` ASCII digits from `start`, `nil` if any is not one.
    /// The caller checks that `start + count` is within `bytes`.
    @inlinable
    public static func read(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int? {
        var value = 0
        for index in start..<start + count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
        }
        return value
    }
}
