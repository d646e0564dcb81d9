import EventLog
import EventModel
import EventSchemas
import Foundation

/// Changes the JSON object a subscriber without the `personal-data` grant receives for a record:
/// **the one place privacy masking applies to subscriptions** (SSE and long-poll alike). It gets
/// the whole delivered object (see ``DeliveredEvent/object(of:)``) and the record it was made of.
public typealias EventRedaction = @Sendable (_ event: inout JSONValue, _ record: LogRecord) -> Void

/// The JSON a subscriber receives for one record, and its SSE framing.
///
/// The object is the event in the CloudEvents JSON format (structured mode): `specversion`, `id`,
/// `source`, `type`, `subject`, `time`, `datacontenttype`, the OneWindow extensions
/// `correlationid` and `causationid` when the record carries them, and `data` (the JSON body; a
/// body that is not JSON goes as `data_base64`). Three more extension attributes say where the
/// record stands: `topic`, `partition` and `offset`. Attributes the record lacks (a record that is
/// not a CloudEvent, such as a dead letter of unreadable bytes) are left out.
public enum DeliveredEvent {
    /// The unredacted object for `record`.
    public static func object(of record: LogRecord) -> JSONValue {
        var members: JSONObject = [:]
        let attributes: [(String, String)] = [
            ("specversion", CloudEventsBinding.specVersion), ("id", CloudEventsBinding.id),
            ("source", CloudEventsBinding.source), ("type", CloudEventsBinding.type),
            ("subject", CloudEventsBinding.subject), ("time", CloudEventsBinding.time),
            ("datacontenttype", CloudEventsBinding.contentType),
            ("correlationid", CloudEventsBinding.correlationId), ("causationid", CloudEventsBinding.causationId),
        ]
        for (name, header) in attributes {
            if let value = record.header(header) { members[name] = .string(value) }
        }
        if let body = try? JSONValue.parse(record.value) {
            members["data"] = body
        } else if !record.value.isEmpty {
            members["data_base64"] = .string(record.value.base64EncodedString())
        }
        members["topic"] = .string(record.topic)
        members["partition"] = .integer(Int64(record.partition))
        members["offset"] = .integer(record.offset)
        return .object(members)
    }

    /// The JSON bytes a subscriber receives for `record`: every subscription's event body goes
    /// through here, redacted with `redaction` when one is given.
    public static func body(of record: LogRecord, redaction: EventRedaction?) -> [UInt8] {
        var object = object(of: record)
        redaction?(&object, record)
        return Array(object.serialized())
    }

    /// The redaction a hub applies unless configured otherwise: the personal data of
    /// `EventSchemas.PersonalData` masked (resident ID numbers, people's names, mobile numbers;
    /// what counts is documented there), in the body and in the `subject`.
    ///
    /// - a JSON body (`data`) is masked member by member, as ``PersonalData/maskBody(_:)`` masks
    ///   it (it is the same function, ``PersonalData/mask(_:)``, applied to the body the delivered
    ///   object already holds parsed, so the body is not parsed twice), and serialized again with
    ///   the rest of the object;
    /// - a body that is not JSON (`data_base64`) goes through ``PersonalData/maskBody(_:)`` (its
    ///   text masked where an ID or mobile number stands) and is encoded again;
    /// - the `subject` is masked when it is a resident ID or mobile number. A unified social
    ///   credit code is not: it names an organisation, is public, and is how a business's events
    ///   are found (the body shows it unmasked too).
    public static let personalDataMasking: EventRedaction = { event, record in
        guard case .object(var members) = event else { return }
        if let data = members["data"] {
            members["data"] = PersonalData.mask(data)
        } else if members["data_base64"] != nil {
            members["data_base64"] = .string(PersonalData.maskBody(record.value).base64EncodedString())
        }
        if let subject = members["subject"] { members["subject"] = PersonalData.mask(subject) }
        event = .object(members)
    }
}

/// A record's delivered bytes, made once per record and form: the JSON body, and the SSE frame
/// without its `id` line.
struct DeliveredForm: Sendable {
    let json: [UInt8]
    /// `event: TYPE\ndata: JSON\n\n` (no `event` line when the record has no usable type).
    let sseTail: [UInt8]

    init(_ record: LogRecord, redaction: EventRedaction?) {
        json = DeliveredEvent.body(of: record, redaction: redaction)
        var tail: [UInt8] = []
        tail.reserveCapacity(json.count + 64)
        if let type = record.header(CloudEventsBinding.type), ServerSentEvents.isFieldSafe(type) {
            tail.append(contentsOf: "event: ".utf8)
            tail.append(contentsOf: type.utf8)
            tail.append(UInt8(ascii: "\n"))
        }
        ServerSentEvents.appendData(json, to: &tail)
        tail.append(UInt8(ascii: "\n"))
        sseTail = tail
    }
}

/// Server-Sent Events framing (the WHATWG HTML "server-sent events" stream format).
public enum ServerSentEvents {
    /// The response's content type.
    public static let contentType = "text/event-stream; charset=utf-8"

    /// Whether a value can stand in an `id` or `event` field (no line break, no NUL).
    static func isFieldSafe(_ text: String) -> Bool {
        !text.utf8.contains { $0 == 0x0A || $0 == 0x0D || $0 == 0 }
    }

    /// `data:` lines for `bytes`, one per line of it (compact JSON has one).
    static func appendData(_ bytes: [UInt8], to frame: inout [UInt8]) {
        var lineStart = 0
        for (index, byte) in bytes.enumerated() where byte == 0x0A {
            frame.append(contentsOf: "data: ".utf8)
            frame.append(contentsOf: bytes[lineStart..<index])
            frame.append(UInt8(ascii: "\n"))
            lineStart = index + 1
        }
        frame.append(contentsOf: "data: ".utf8)
        frame.append(contentsOf: bytes[lineStart...])
        frame.append(UInt8(ascii: "\n"))
    }

    /// A comment line, which clients ignore: the keep-alive that stops proxies closing an idle stream.
    public static func comment(_ text: String = "keep-alive") -> [UInt8] {
        Array(": \(text.filter { $0 != "\n" && $0 != "\r" })\n\n".utf8)
    }

    /// The `retry:` field: how long a client waits before reconnecting after the stream drops.
    public static func retry(_ duration: Duration) -> [UInt8] {
        Array("retry: \(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)\n\n".utf8)
    }

    /// The frames of a batch: each event with its `id` (the cursor after it), `event` (its
    /// CloudEvents type) and `data` (its JSON).
    public static func frames(_ batch: SubscriptionBatch) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(batch.events.reduce(0) { $0 + $1.form.sseTail.count + $1.id.utf8.count + 5 })
        for event in batch.events {
            bytes.append(contentsOf: "id: ".utf8)
            bytes.append(contentsOf: event.id.utf8)
            bytes.append(UInt8(ascii: "\n"))
            bytes.append(contentsOf: event.form.sseTail)
        }
        return bytes
    }
}

extension SubscriptionBatch {
    /// A batch as the long-poll endpoint's JSON: `{"cursor": "...", "events": [...]}`.
    public var json: [UInt8] {
        var bytes: [UInt8] = Array("{\"cursor\":\"".utf8)
        bytes.append(contentsOf: cursor.text.utf8)
        bytes.append(contentsOf: "\",\"events\":[".utf8)
        for (index, event) in events.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(contentsOf: event.form.json)
        }
        bytes.append(contentsOf: "]}".utf8)
        return bytes
    }
}
