/// OneWindow's one conversion of a `Duration` into the numbers other APIs take (librdkafka's
/// `*.ms` settings, SQLite columns, `TimeInterval`s).
extension Duration {
    /// Whole milliseconds, rounded up: a wait or a retention is never shorter than asked, and a
    /// positive duration never becomes 0 (which librdkafka reads as "do not wait"). 500 ms is 500,
    /// 1.5 s is 1500, 0.2 ms is 1, −0.2 ms is 0.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        let perMillisecond: Int64 = 1_000_000_000_000_000
        // ceil(s·1000 + a/10¹⁵) = s·1000 + ceil(a/10¹⁵); division truncates towards zero, which is
        // already up for a negative remainder and one short for a positive one.
        let (whole, remainder) = attoseconds.quotientAndRemainder(dividingBy: perMillisecond)
        return seconds * 1000 + whole + (remainder > 0 ? 1 : 0)
    }

    /// Seconds with their fraction, as a `TimeInterval` (1.5 s is 1.5).
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
