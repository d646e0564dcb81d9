@testable import CivilTime
import Foundation
import Testing

/// The hand-written RFC 3339 writer and reader of ``ChinaTime`` (and ``CivilDate/description``)
/// against what they replaced: Foundation's ISO 8601 parser and string interpolation.
@Suite struct ChinaTimeTextTests {
    /// What `ChinaTime.parse` did before the fast path: Foundation decides.
    static func foundation(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// The text the interpolating formatter wrote.
    static func interpolated(_ instant: Date) -> String {
        let time = ChinaTime.dateTime(at: instant)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d+08:00", time.date.year, time.date.month, time.date.day, time.hour,
            time.minute, time.second)
    }

    /// Instants spread over 1900…2100, whole and fractional seconds, around midnight in China.
    static let instants: [Date] = {
        var generator = SystemRandomNumberGenerator()
        var instants = (0..<3000).map { _ in
            Date(timeIntervalSince1970: Double.random(in: -2_208_988_800...4_102_444_800, using: &generator))
        }
        let edges: [Double] = [0, -1, 0.999, 57_600, 57_599.999, 951_782_400, 4_107_542_399]
        for seconds in edges { instants.append(Date(timeIntervalSince1970: seconds)) }
        return instants
    }()

    @Test func formatsAsTheInterpolationDid() {
        for instant in Self.instants {
            #expect(ChinaTime.rfc3339(instant) == Self.interpolated(instant), "\(instant.timeIntervalSince1970)")
            let day = ChinaTime.date(at: instant)
            #expect(day.description == String(format: "%04d-%02d-%02d", day.year, day.month, day.day))
        }
        #expect(CivilDate(year: 1, month: 1, day: 1)!.description == "0001-01-01")
        #expect(CivilDate(year: 9999, month: 12, day: 31)!.description == "9999-12-31")
        #expect(CivilDate(year: 12_345, month: 6, day: 7)!.description == "12345-06-07")
    }

    @Test func readsWhatItWritesAsFoundationDoes() throws {
        for instant in Self.instants {
            let text = ChinaTime.rfc3339(instant)
            let read = try #require(ChinaTime.parseWholeSeconds(text), "\(text)")
            #expect(read == Self.foundation(text), "\(text)")
            #expect(read.timeIntervalSince1970 == instant.timeIntervalSince1970.rounded(.down), "\(text)")
            let utc = try #require(Self.foundation(text)).formatted(Date.ISO8601FormatStyle())
            #expect(ChinaTime.parseWholeSeconds(utc) == Self.foundation(utc), "\(utc)")
        }
    }

    /// Edge cases: what the fast path reads it reads as Foundation does, and everything else is
    /// still Foundation's to decide.
    @Test(arguments: [
        "2024-02-29T23:59:59+08:00", "2025-02-28T00:00:00Z", "2000-01-01T00:00:00-00:00", "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z", "2026-01-01T00:00:00+14:00", "2026-01-01T00:00:00-12:00", "2026-01-01T00:00:00+05:45",
        "2026-01-01T00:00:00+14:01", "2026-01-01T00:00:00+23:59", "2025-02-29T10:00:00+08:00", "2025-02-30T10:00:00Z",
        "2025-13-01T10:00:00Z", "2025-00-10T10:00:00Z", "2025-01-01T24:00:00Z", "2025-01-01T23:60:00Z",
        "2025-01-01T23:59:60Z", "2025-01-01t10:00:00z", "2025-01-01T10:00:00z", "2025-01-01 10:00:00Z",
        "2025-01-01T10:00:00.5Z", "2025-01-01T10:00:00.123+08:00", "2025-01-01T10:00:00+0800", "2025-01-01T10:00:00",
        "0000-01-01T00:00:00Z", "2025-1-01T10:00:00+08:00", "２０２５-01-01T10:00:00Z", "2025-01-01T10:00:00+08:0a",
        "2025-01-01T10:00:00 08:00", "",
    ])
    func edgeCases(text: String) {
        let foundation = Self.foundation(text)
        if let fast = ChinaTime.parseWholeSeconds(text) { #expect(fast == foundation) }
        if let foundation { #expect(ChinaTime.parse(text) == foundation) }
    }

    @Test func theFastPathTakesTheFormsOneWindowWrites() {
        #expect(ChinaTime.parseWholeSeconds("2026-02-14T09:00:00+08:00") != nil)
        #expect(ChinaTime.parseWholeSeconds("2026-02-14T01:00:00Z") == ChinaTime.parseWholeSeconds("2026-02-14T09:00:00+08:00"))
        #expect(ChinaTime.parseWholeSeconds("2025-02-29T10:00:00+08:00") == nil)
        #expect(ChinaTime.parseWholeSeconds("2026-01-01T00:00:00+23:59") == nil)
        #expect(ChinaTime.parseWholeSeconds("2025-01-01T10:00:00.5Z") == nil)
    }
}
