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
public enum DeadLetter {
    public static let code = "dl_code"
    public static let reason = "dl_reason"
    public static let originalTopic = "dl_original_topic"
    public static let time = "dl_time"
    public static let refusedBy = "dl_refused_by"

    /// The dead-letter record for refused bytes.
    public static func record(
        deadLetterTopic: String, originalTopic: String?, key: Data?, value: Data, headers: [LogHeader],
        failure: ValidationFailure, refusedBy: String, at time: Date
    ) -> OutgoingRecord {
        var all = headers.filter { !$0.name.hasPrefix("dl_") }
        all.append(LogHeader(name: code, text: failure.code.rawValue))
        all.append(LogHeader(name: reason, text: failure.reason))
        all.append(LogHeader(name: Self.originalTopic, text: originalTopic ?? ""))
        all.append(LogHeader(name: Self.time, text: Timestamp.format(time)))
        all.append(LogHeader(name: Self.refusedBy, text: refusedBy))
        return OutgoingRecord(topic: deadLetterTopic, key: key, value: value, headers: all)
    }
}
