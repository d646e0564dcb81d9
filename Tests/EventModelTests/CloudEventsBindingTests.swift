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
}
