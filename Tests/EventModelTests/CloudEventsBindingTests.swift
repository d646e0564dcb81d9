import EventLog
import EventModel
import Foundation
import Testing

@Suite("CloudEvents Kafka binding, binary mode")
struct CloudEventsBindingTests {
    let event = Event(
        id: "evt-1", type: "household.birth.registered", source: "/departments/household-registry",
        subject: "440604202401150012", time: Date(timeIntervalSince1970: 1_705_300_000.5),
        data: Data(#"{"child":{"name":"李小明"}}"#.utf8), correlationId: "corr-9", causationId: "cause-3")

    @Test func attributesGoToHeadersAndBodyToValue() {
        let record = CloudEventsBinding.record(for: event, topic: "household.birth.registered")
        let headers = Dictionary(uniqueKeysWithValues: record.headers.map { ($0.name, $0.text ?? "") })
        #expect(headers["ce_id"] == "evt-1")
        #expect(headers["ce_source"] == "/departments/household-registry")
        #expect(headers["ce_type"] == "household.birth.registered")
        #expect(headers["ce_subject"] == "440604202401150012")
        #expect(headers["ce_specversion"] == "1.0")
        #expect(headers["ce_time"] == "2024-01-15T06:26:40.500Z")
        #expect(headers["content-type"] == "application/json")
        #expect(headers["ce_correlationid"] == "corr-9")
        #expect(headers["ce_causationid"] == "cause-3")
        #expect(record.key == Data("440604202401150012".utf8))
        #expect(record.value == event.data)
        #expect(record.timestamp == event.time)
    }

    @Test func recordRoundTripsToTheSameEvent() throws {
        let outgoing = CloudEventsBinding.record(for: event, topic: "t")
        let stored = LogRecord(
            topic: "t", partition: 0, offset: 7, timestamp: event.time, key: outgoing.key, value: outgoing.value,
            headers: outgoing.headers)
        #expect(try CloudEventsBinding.event(from: stored) == event)
    }

    @Test func explicitKeyOverridesSubject() {
        let record = CloudEventsBinding.record(for: event, topic: "t", key: "A-1")
        #expect(record.key == Data("A-1".utf8))
    }

    @Test func missingOrMalformedHeadersAreNamed() {
        var headers = CloudEventsBinding.record(for: event, topic: "t").headers
        headers.removeAll { $0.name == "ce_type" }
        let record = LogRecord(topic: "t", partition: 2, offset: 9, timestamp: Date(), key: nil, value: Data(), headers: headers)
        #expect(throws: BindingError.self) { try CloudEventsBinding.event(from: record) }
        do {
            _ = try CloudEventsBinding.event(from: record)
        } catch {
            #expect("\(error)".contains("ce_type"))
            #expect("\(error)".contains("t[2]@9"))
        }
        var badTime = CloudEventsBinding.record(for: event, topic: "t").headers
        badTime = badTime.map { $0.name == "ce_time" ? LogHeader(name: "ce_time", text: "yesterday") : $0 }
        let timed = LogRecord(topic: "t", partition: 0, offset: 0, timestamp: Date(), key: nil, value: Data(), headers: badTime)
        #expect(throws: BindingError.self) { try CloudEventsBinding.event(from: timed) }
    }

    @Test func timestampsParseWithOrWithoutFractionAndOffsets() {
        #expect(Timestamp.parse("2024-01-15T06:26:40Z") == Date(timeIntervalSince1970: 1_705_300_000))
        #expect(Timestamp.parse("2024-01-15T14:26:40.250+08:00") == Date(timeIntervalSince1970: 1_705_300_000.25))
        #expect(Timestamp.parse("15/01/2024") == nil)
    }

    @Test func maskingHidesPersonalData() {
        #expect(Masking.identifier("440604202401150012") == "440604********0012")
        #expect(Masking.phone("13800138000") == "138****8000")
        #expect(Masking.name("李小明") == "李**")
        #expect(Masking.subject("RA-2025-000001") == "RA-2025-000001")
    }
}

@Suite("RFC 3339 timestamps")
struct TimestampTests {
    /// The direct formatter agrees with Foundation's ISO 8601 style across eras and leap days.
    @Test(arguments: [0.0, 951_782_400.123, 1_709_164_800.999, 1_735_689_599.5, -86_400.25, 4_102_444_800.0, 1_705_300_000.5])
    func formatMatchesFoundation(_ seconds: Double) {
        let date = Date(timeIntervalSince1970: seconds)
        let expected = date.formatted(
            Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
        #expect(Timestamp.format(date) == expected)
        #expect(Timestamp.parse(Timestamp.format(date)).map { abs($0.timeIntervalSince(date)) < 0.001 } == true)
    }

    /// Milliseconds are truncated, as Kafka clients do, never rounded up to the next one; and a
    /// time given in whole milliseconds keeps them although a `Date` cannot hold 0.002 s exactly.
    @Test func millisecondsAreTruncated() {
        #expect(Timestamp.milliseconds(Date(timeIntervalSince1970: 1.9997)) == 1_999)
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1.9997)) == "1970-01-01T00:00:01.999Z")
        #expect(Timestamp.milliseconds(Date(timeIntervalSince1970: 1_735_689_600.9996)) == 1_735_689_600_999)
        #expect(Timestamp.milliseconds(Date(timeIntervalSince1970: -0.0004)) == -1)
        for milliseconds in [Int64(2), 4, 6, 1_705_300_000_123, -86_400_250] {
            let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            #expect(Timestamp.milliseconds(date) == milliseconds, "\(milliseconds)")
        }
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0.002)) == "1970-01-01T00:00:00.002Z")
    }

    @Test func formatsAtAnOffsetInWholeSeconds() {
        let date = Date(timeIntervalSince1970: 1_705_300_000.75)  // 2024-01-15T06:26:40.75Z
        #expect(Timestamp.format(date, offsetMinutes: 480) == "2024-01-15T14:26:40+08:00")
        #expect(Timestamp.format(date, offsetMinutes: -330) == "2024-01-15T00:56:40-05:30")
        #expect(Timestamp.format(date, offsetMinutes: 0) == "2024-01-15T06:26:40+00:00")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_704_038_400), offsetMinutes: 480) == "2024-01-01T00:00:00+08:00")
    }

    /// A day the calendar lacks is no time, where Foundation's parser rolls it over to the next
    /// month (issue 12: a `ce_time` of 2025-02-30 was read as 2025-03-02).
    @Test(arguments: ["2023-02-29T00:00:00Z", "2025-02-30T10:00:00+08:00", "2025-04-31T00:00:00.5Z"])
    func aDayTheCalendarLacksIsNoTime(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    /// A time of day the clock lacks is no time either, where Foundation's parser rolls it over
    /// (found by the table source's hostile rows: 24:30 was read as half past midnight the next
    /// day). A leap second (`:60`) is refused too: no clock here keeps one.
    @Test(arguments: [
        "2024-01-15T24:00:00Z", "2024-01-15T24:30:00+08:00", "2024-01-15T10:60:00Z", "2024-01-15T10:00:61Z",
        "2016-12-31T23:59:60Z", "2024-01-15T10:00:60.5+08:00",
    ])
    func aTimeTheClockLacksIsNoTime(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    /// The direct parser agrees with Foundation's ISO 8601 parser on the forms it reads, and
    /// leaves every other form to it.
    @Test(arguments: [
        "2024-01-15T06:26:40Z", "2024-01-15T14:26:40.250+08:00", "2024-02-29T23:59:59.999-05:30", "1970-01-01T00:00:00.002Z",
        "2000-03-01T00:00:00+14:00", "2025-12-31T23:59:59.123456789Z", "1969-12-31T23:59:59.5Z", "2024-01-15T06:26:40.1Z",
        "2024-01-15 06:26:40Z", "2024-01-15T06:26:40", "2024-01-15T06:26:40+0800", "yesterday",
        "2024-01-15T06:26:40.Z",
    ])
    func parseAgreesWithFoundation(_ text: String) {
        let foundation =
            (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
        let ours = Timestamp.parse(text)
        #expect((ours == nil) == (foundation == nil), "\(text): \(String(describing: ours)) \(String(describing: foundation))")
        if let ours, let foundation {
            #expect(abs(ours.timeIntervalSince(foundation)) < 0.000_001, "\(text)")
            #expect(Timestamp.format(ours) == Timestamp.format(foundation), "\(text)")
        }
    }
}
