import EventLog
import Foundation
import Testing

@testable import EventModel

/// The binding's shortcuts (shared header values, the time written straight into bytes) against
/// the plain code they replace.
@Suite("CloudEvents binding shortcuts against the plain code")
struct HeaderShortcutTests {
    /// The headers as `record(for:)` made them before: each value's text copied into its own `Data`.
    static func plainHeaders(_ event: Event) -> [LogHeader] {
        var headers = [
            LogHeader(name: "ce_specversion", text: event.specVersion), LogHeader(name: "ce_id", text: event.id),
            LogHeader(name: "ce_source", text: event.source), LogHeader(name: "ce_type", text: event.type),
        ]
        if let subject = event.subject { headers.append(LogHeader(name: "ce_subject", text: subject)) }
        headers.append(LogHeader(name: "ce_time", text: Timestamp.format(event.time)))
        headers.append(LogHeader(name: "content-type", text: event.dataContentType))
        if let value = event.correlationId { headers.append(LogHeader(name: "ce_correlationid", text: value)) }
        if let value = event.causationId { headers.append(LogHeader(name: "ce_causationid", text: value)) }
        return headers
    }

    static let events: [Event] = [
        Event(
            id: "RA-2026-000001/progress/3", type: "application.progress.updated", source: "/onewindow/orchestrator",
            subject: "RA-2026-000001", time: Date(timeIntervalSince1970: 1_795_000_000.123), data: Data("{}".utf8)),
        Event(
            id: "évt-中文", type: "approval.fire-safety.requested", source: "/部门/消防", subject: nil,
            time: Date(timeIntervalSince1970: -86_400.5), data: Data(), dataContentType: "application/json; charset=utf-8",
            correlationId: "c", causationId: ""),
        Event(
            id: "x", type: "", source: "", subject: "", time: Date(timeIntervalSince1970: 253_402_300_799.999),
            data: Data([0xFF]), dataContentType: ""),
    ]

    @Test func recordsCarryTheSameHeadersAsThePlainCode() throws {
        for _ in 0..<3 {  // the second and third time from the kept values
            for event in Self.events {
                let record = CloudEventsBinding.record(for: event, topic: "t")
                #expect(record.headers == Self.plainHeaders(event), "\(event.id)")
            }
        }
    }

    @Test func aKeptValueIsNotChangedByAChangedRecord() {
        let event = Self.events[0]
        var first = CloudEventsBinding.record(for: event, topic: "t")
        for index in first.headers.indices { first.headers[index].value.append(0x21) }
        #expect(CloudEventsBinding.record(for: event, topic: "t").headers == Self.plainHeaders(event))
    }

    @Test func keptValuesStopAtTheirCapacity() {
        let values = HeaderValues(capacity: 2)
        for text in ["a-long-enough-source-text-1", "b", "c-long-enough-type-text", "d", "a-long-enough-source-text-1"] {
            #expect(values.value(text) == Data(text.utf8))
        }
        #expect(values.count == 2)
        #expect(values.value("") == Data())
    }

    @Test func timeBytesAreTheFormattedText() {
        var dates = [
            Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: -1), Date(timeIntervalSince1970: 1_705_300_000.5),
            Date(timeIntervalSince1970: 1_705_300_000.9997), Date(timeIntervalSince1970: -62_135_596_800),
            Date(timeIntervalSince1970: 253_402_300_800), Date(timeIntervalSince1970: 1_000_000_000_000),
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 { dates.append(Date(timeIntervalSince1970: Double.random(in: -1e11...1e11, using: &generator))) }
        for date in dates {
            #expect(Timestamp.formatData(date) == Data(Timestamp.format(date).utf8), "\(date.timeIntervalSince1970)")
        }
    }

    @Test func eventsReadFromRecordsAreThePlainOnes() throws {
        for event in Self.events where !event.type.isEmpty {
            let outgoing = CloudEventsBinding.record(for: event, topic: "t")
            let stored = LogRecord(
                topic: "t", partition: 0, offset: 1, timestamp: event.time, key: outgoing.key, value: outgoing.value,
                headers: Self.plainHeaders(event))
            // What the binding read through `LogRecord.header(_:)`.
            let plain = Event(
                id: stored.header("ce_id")!, type: stored.header("ce_type")!, source: stored.header("ce_source")!,
                subject: stored.header("ce_subject") ?? stored.keyString,
                time: Timestamp.parse(stored.header("ce_time")!)!, data: stored.value,
                dataContentType: stored.header("content-type") ?? "application/json",
                correlationId: stored.header("ce_correlationid"), causationId: stored.header("ce_causationid"),
                specVersion: stored.header("ce_specversion")!)
            #expect(try CloudEventsBinding.event(from: stored) == plain)
            #expect(plain.id == event.id && plain.source == event.source)
        }
    }
}
