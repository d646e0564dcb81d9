import Crypto
import EventLog
import EventModel
import EventSchemas
import Foundation

/// The dead-letter record format: the original bytes as the value, the original key and headers
/// kept, and `dl_*` headers saying why, from where, when, and by whom.
///
/// | header              | meaning                                              |
/// |---------------------|------------------------------------------------------|
/// | `dl_code`           | a ``ValidationFailure/Code`` raw value, e.g. `schema-violation` |
/// | `dl_reason`         | the reason in one line                               |
/// | `dl_original_topic` | the topic the record was meant for (may be empty)    |
/// | `dl_time`           | when it was refused (RFC 3339)                       |
/// | `dl_refused_by`     | the process that refused it (`onewindow publish`, a connector's name) |
///
/// A record too large for any topic (``LogError/Code/recordTooLarge``) cannot go to the
/// dead-letter topic whole either: ``truncated(_:keeping:)`` keeps its first bytes and says what
/// was cut, so it is never lost without a trace:
///
/// | header               | meaning                                              |
/// |----------------------|------------------------------------------------------|
/// | `dl_original_size`   | the original value's size in bytes                   |
/// | `dl_original_sha256` | the SHA-256 of the original value, 64 hex digits     |
/// | `dl_truncated`       | `true`: the value holds only the first bytes of the original |
///
/// A record that an operator redrove (`onewindow dlq redrive`, ``DeadLetterOffice``) and that
/// failed validation again comes back as a new dead letter with the new reason and one more header:
///
/// | header               | meaning                                              |
/// |----------------------|------------------------------------------------------|
/// | `dl_redrive_of`      | the id of the dead letter it was redriven from (``DeadLetterID``, `topic/partition/offset`) |
public enum DeadLetter {
    public static let code = "dl_code"
    public static let reason = "dl_reason"
    public static let originalTopic = "dl_original_topic"
    public static let time = "dl_time"
    public static let refusedBy = "dl_refused_by"
    public static let originalSize = "dl_original_size"
    public static let originalSHA256 = "dl_original_sha256"
    public static let truncated = "dl_truncated"
    public static let redriveOf = "dl_redrive_of"

    /// The dead-letter record for refused bytes.
    public static func record(
        deadLetterTopic: String, originalTopic: String?, key: Data?, value: Data, headers: [LogHeader],
        failure: ValidationFailure, refusedBy: String, at time: Date
    ) -> OutgoingRecord {
        record(
            deadLetterTopic: deadLetterTopic, originalTopic: originalTopic, key: key, value: value, headers: headers,
            failure: failure, refusedBy: LogHeader(name: Self.refusedBy, text: refusedBy),
            time: LogHeader(name: Self.time, text: Timestamp.format(time)))
    }

    /// ``record(deadLetterTopic:originalTopic:key:value:headers:failure:refusedBy:at:)`` with the
    /// `dl_refused_by` and `dl_time` headers made already: a publisher makes the first once, and
    /// the second once for each batch it refuses records of.
    static func record(
        deadLetterTopic: String, originalTopic: String?, key: Data?, value: Data, headers: [LogHeader],
        failure: ValidationFailure, refusedBy: LogHeader, time: LogHeader
    ) -> OutgoingRecord {
        // One array at its final size: filtering, then appending five, grew it twice.
        var all: [LogHeader] = []
        all.reserveCapacity(headers.count + 5)
        for header in headers where !isDeadLetterHeader(header.name) { all.append(header) }
        all.append(LogHeader(name: code, text: failure.code.rawValue))
        all.append(LogHeader(name: reason, value: failure.reasonUTF8))
        all.append(LogHeader(name: Self.originalTopic, text: originalTopic ?? ""))
        all.append(time)
        all.append(refusedBy)
        return OutgoingRecord(topic: deadLetterTopic, key: key, value: value, headers: all)
    }

    /// The dead letter of a refused event: what
    /// ``record(deadLetterTopic:originalTopic:key:value:headers:failure:refusedBy:time:)`` makes of
    /// the event's record (``CloudEventsBinding/record(for:topic:key:)``: its key, value and
    /// headers), byte for byte, without making that record first. The header values it writes
    /// (the event's attributes, `dl_code`, `dl_reason`, `dl_original_topic`) and the key are
    /// slices of one buffer written at its final size: one allocation instead of one a value,
    /// and no record made to be copied (together a fifth of a refusal's work in issue 12's floods).
    static func record(
        refusing event: Event, deadLetterTopic: String, originalTopic: String?, failure: ValidationFailure,
        refusedBy: LogHeader, time: LogHeader
    ) -> OutgoingRecord {
        let eventTime = Timestamp.format(event.time)
        let code = failure.code.rawValue
        let topic = originalTopic ?? ""
        let reasonCount = failure.reasonUTF8Count
        var size = code.utf8.count + reasonCount + topic.utf8.count
        var count = 5
        CloudEventsBinding.forEachHeader(of: event, time: eventTime) { _, text in
            size += text.utf8.count
            count += 1
        }
        // Written through a pointer of its own, then handed to the `Data` that frees it: no
        // closure copies the event and the failure to write into the buffer.
        let base = malloc(size)!
        var writer = TextWriter(base: base)
        CloudEventsBinding.forEachHeader(of: event, time: eventTime) { _, text in writer.put(text) }
        writer.put(code)
        writer.index += failure.writeReason(into: UnsafeMutableRawBufferPointer(start: base + writer.index, count: reasonCount))
        writer.put(topic)
        let buffer = Data(bytesNoCopy: base, count: size, deallocator: .free)
        // Each value a slice of the buffer (a reference to it and a range).
        var headers: [LogHeader] = []
        headers.reserveCapacity(count)
        var index = 0
        func next(_ length: Int) -> Data {
            defer { index += length }
            return length == 0 ? Data() : buffer[index..<index + length]
        }
        var key: Data?
        let hasSubject = event.subject != nil
        CloudEventsBinding.forEachHeader(of: event, time: eventTime) { name, text in
            let value = next(text.utf8.count)
            if hasSubject, key == nil, name == CloudEventsBinding.subject { key = value }
            headers.append(LogHeader(name: name, value: value))
        }
        headers.append(LogHeader(name: Self.code, value: next(code.utf8.count)))
        headers.append(LogHeader(name: reason, value: next(reasonCount)))
        headers.append(LogHeader(name: Self.originalTopic, value: next(topic.utf8.count)))
        headers.append(time)
        headers.append(refusedBy)
        return OutgoingRecord(topic: deadLetterTopic, key: key, value: event.data, headers: headers)
    }

    /// Whether a header name starts with `dl_` (a dead letter's own header, replaced when a record
    /// is dead-lettered again), read on its bytes.
    static func isDeadLetterHeader(_ name: String) -> Bool {
        var bytes = name.utf8.makeIterator()
        return bytes.next() == UInt8(ascii: "d") && bytes.next() == UInt8(ascii: "l") && bytes.next() == UInt8(ascii: "_")
    }

    /// The dead-letter record `record` with its value cut to its first `keep` bytes, and headers
    /// giving the original's size and SHA-256 digest (see the table above). A value of at most
    /// `keep` bytes is left whole, with the same headers.
    public static func truncated(_ record: OutgoingRecord, keeping keep: Int) -> OutgoingRecord {
        let original = record.value
        var cut = record
        cut.value = Data(original.prefix(max(0, keep)))
        cut.headers = record.headers.filter { ![originalSize, originalSHA256, truncated].contains($0.name) }
        cut.headers.append(LogHeader(name: originalSize, text: String(original.count)))
        cut.headers.append(LogHeader(name: originalSHA256, text: sha256Hex(original)))
        cut.headers.append(LogHeader(name: truncated, text: cut.value.count < original.count ? "true" : "false"))
        return cut
    }

    /// The SHA-256 digest of `bytes` as 64 lower-case hexadecimal digits (swift-crypto's).
    public static func sha256Hex(_ bytes: some DataProtocol) -> String {
        // Written into one buffer: a string per byte, joined, cost more than the hash itself.
        let digest = SHA256.hash(data: bytes)
        return String(unsafeUninitializedCapacity: SHA256.byteCount * 2) { text in
            var index = 0
            for byte in digest {
                text[index] = hexDigits[Int(byte >> 4)]
                text[index + 1] = hexDigits[Int(byte & 0x0f)]
                index += 2
            }
            return index
        }
    }
}

/// Writes text into a buffer known to be large enough, each string's UTF-8 copied in one go.
private struct TextWriter {
    let base: UnsafeMutableRawPointer
    var index = 0

    mutating func put(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            if utf8.count > 0 { (base + index).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count) }
            index += utf8.count
        }
    }
}

/// The lower-case hexadecimal digits, by value.
private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
