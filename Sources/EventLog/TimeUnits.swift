import Foundation

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

/// CPU seconds a clock has counted (`CLOCK_PROCESS_CPUTIME_ID`, `CLOCK_THREAD_CPUTIME_ID`): what
/// the benchmarks and the orchestrator's breakdown of its transactions read.
public func cpuSeconds(_ clock: clockid_t) -> Double {
    var spec = timespec()
    clock_gettime(clock, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

/// OneWindow's one conversion between a `Date` and a record timestamp: milliseconds since 1970.
extension Date {
    /// Milliseconds since 1970, truncated (rounded down, as Kafka clients and Java's
    /// `Instant.toEpochMilli` do): 10:30:00.9997 is 10:30:00.999. A `Date` holds a `Double`, so a
    /// time written with whole milliseconds can come back a hair below them (…122.99999 ms): within
    /// a microsecond below a whole millisecond counts as that millisecond. Both backends stamp
    /// records with it and CloudEvents' `ce_time` is written with it, so they always agree.
    public var millisecondsSince1970: Int64 {
        let scaled = timeIntervalSince1970 * 1000
        let nearest = scaled.rounded()
        if nearest - scaled >= 0, nearest - scaled < 0.001 { return Int64(nearest) }
        return Int64(scaled.rounded(.down))
    }

    /// The instant `milliseconds` milliseconds after 1970-01-01T00:00:00Z.
    public init(millisecondsSince1970 milliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
