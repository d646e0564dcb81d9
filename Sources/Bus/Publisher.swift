import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation

/// What became of one event handed to ``Publisher/publish(_:deadLetter:)``.
public enum PublishOutcome: Sendable {
    /// Validated and appended here.
    case published(RecordPosition, Event)
    /// Refused; its original bytes were appended to the dead-letter topic here.
    case deadLettered(RecordPosition, ValidationFailure)

    /// The position the record landed at, wherever that was.
    public var position: RecordPosition {
        switch self {
        case .published(let position, _), .deadLettered(let position, _): position
        }
    }
}

/// An event to publish, optionally to a named topic.
public struct Publication: Sendable {
    public var event: Event
    /// The topic; `nil` lets the catalog choose the one topic that carries the type.
    public var topic: String?
    /// Set when the publisher already knows the event must be refused (a connector whose row could
    /// not be mapped): it then goes to the dead-letter topic with this reason, unvalidated, in
    /// its place in the batch. Its `event.data` holds the original input.
    public var refusal: ValidationFailure?
    /// The body already parsed, when the publisher built it (a connector's mapping): validation
    /// then skips parsing `event.data` again. It must be what `event.data` holds.
    public var body: JSONValue?

    public init(event: Event, topic: String? = nil, refusal: ValidationFailure? = nil, body: JSONValue? = nil) {
        self.event = event
        self.topic = topic
        self.refusal = refusal
        self.body = body
    }
}

/// Validates events against the catalog and appends them; what fails is refused with a clear error
/// or, when asked, goes to the dead-letter topic with the reason. Nothing is dropped silently.
///
/// ```swift
/// let publisher = Publisher(log: log, catalog: catalog, name: "household-registry-connector")
/// let outcomes = try await publisher.publish(events.map { Publication(event: $0) }, deadLetter: true)
/// ```
public struct Publisher: Sendable {
    public let log: any EventLog
    public let validator: EventValidator
    /// Who is publishing, written into dead letters' `dl_refused_by`.
    public let name: String
    /// The clock for dead letters' `dl_time` and for validation rules that depend on today (a
    /// resident ID's birth date in the future). Default: the system clock.
    public let clock: any WallClock

    /// `dl_refused_by` with ``name``, made once.
    private let refusedBy: LogHeader

    public init(log: any EventLog, catalog: TopicCatalog, name: String, clock: any WallClock = .system) {
        self.log = log
        self.validator = EventValidator(catalog: catalog, clock: clock)
        self.name = name
        self.clock = clock
        self.refusedBy = LogHeader(name: DeadLetter.refusedBy, text: name)
    }

    public var catalog: TopicCatalog { validator.catalog }

    /// Validates and appends one event.
    /// - Returns: where it landed and the event as published (subject filled from the key field).
    /// - Throws: ``ValidationFailure`` when refused (nothing is appended), or a ``LogError``.
    @discardableResult
    public func publish(_ event: Event, topic: String? = nil) async throws -> (RecordPosition, Event) {
        let (record, published) = try validatedRecord(for: Publication(event: event, topic: topic))
        let positions = try await log.append([record])
        return (positions[0], published)
    }

    /// Validates a publication and returns the record ``publish(_:deadLetter:)`` would append for
    /// it, with the event as it would be published (subject filled from the key field), without
    /// appending anything: for a caller that appends it together with records of its own in one
    /// call (a dead letter's redrive and its marker).
    /// - Throws: ``ValidationFailure`` when refused (``Publication/refusal`` included).
    public func validatedRecord(for publication: Publication) throws -> (record: OutgoingRecord, event: Event) {
        try checked(publication).get()
    }

    /// ``validatedRecord(for:)``'s answer as a value: a refusal is no error boxed and cast.
    private func checked(_ publication: Publication) -> Result<(record: OutgoingRecord, event: Event), ValidationFailure> {
        if let refusal = publication.refusal { return .failure(refusal) }
        return validator.check(publication.event, topic: publication.topic, body: publication.body).map { validated in
            (CloudEventsBinding.record(for: validated.event, topic: validated.topic), validated.event)
        }
    }

    /// Validates a batch and appends it in one call, in order.
    ///
    /// - Parameter deadLetter: `true` sends refused events to the dead-letter topic (in the same
    ///   append) and reports them as `.deadLettered`; `false` throws the first ``ValidationFailure``
    ///   before anything is appended.
    /// - Throws: ``LogError`` when the log fails (then nothing, or on Kafka possibly a part, was
    ///   appended: publish again; event ids let consumers drop the repeats).
    public func publish(_ publications: [Publication], deadLetter: Bool) async throws -> [PublishOutcome] {
        let (records, results) = try records(for: publications, deadLetter: deadLetter)
        let positions = try await log.append(records)
        return zip(positions, results).map { position, result in
            switch result {
            case .success(let event): .published(position, event)
            case .failure(let failure): .deadLettered(position, failure)
            }
        }
    }

    /// The records ``publish(_:deadLetter:)`` appends for a batch, in order, and what becomes of
    /// each publication, without appending anything: the validated records and, for refused ones
    /// when `deadLetter` is `true`, their dead letters.
    /// - Throws: the first ``ValidationFailure`` when `deadLetter` is `false`.
    public func records(for publications: [Publication], deadLetter: Bool) throws
        -> (records: [OutgoingRecord], results: [Result<Event, ValidationFailure>])
    {
        var records: [OutgoingRecord] = []
        records.reserveCapacity(publications.count)
        var results: [Result<Event, ValidationFailure>] = []
        results.reserveCapacity(publications.count)
        // The batch's refusals are refused at one time: `dl_time` is read and formatted once.
        var refusedAt: LogHeader?
        for publication in publications {
            switch checked(publication) {
            case .success(let (record, event)):
                records.append(record)
                results.append(.success(event))
            case .failure(let failure):
                guard deadLetter else { throw failure }
                if refusedAt == nil { refusedAt = LogHeader(name: DeadLetter.time, text: Timestamp.format(clock.now())) }
                records.append(deadLetterRecord(for: publication, failure: failure, time: refusedAt!))
                results.append(.failure(failure))
            }
        }
        return (records, results)
    }

    /// Sends raw bytes that could not even become an event (a connector's unreadable row, a
    /// webhook body that is not JSON) to the dead-letter topic.
    /// - Parameter keeping: when given, the value is cut to its first `keeping` bytes with its
    ///   original size and digest in headers (``DeadLetter/truncated(_:keeping:)``): for a record
    ///   too large for the log. Default: `nil`, the value whole.
    @discardableResult
    public func deadLetter(
        value: Data, key: Data? = nil, headers: [LogHeader] = [], originalTopic: String?, failure: ValidationFailure,
        keeping: Int? = nil
    ) async throws -> RecordPosition {
        var record = DeadLetter.record(
            deadLetterTopic: catalog.deadLetterTopic, originalTopic: originalTopic, key: key, value: value,
            headers: headers, failure: failure, refusedBy: name, at: clock.now())
        if let keeping { record = DeadLetter.truncated(record, keeping: keeping) }
        return try await log.append([record])[0]
    }

    /// Sends a publication to the dead-letter topic without validating it — as ``publish(_:deadLetter:)``
    /// does with one it refuses — for an event the log cannot take (too large for it).
    /// - Parameter keeping: when given, the value is cut to its first `keeping` bytes with its
    ///   original size and digest in headers (``DeadLetter/truncated(_:keeping:)``).
    public func deadLetter(
        _ publication: Publication, failure: ValidationFailure, keeping: Int? = nil
    ) async throws -> PublishOutcome {
        var record = deadLetterRecord(for: publication, failure: failure)
        if let keeping { record = DeadLetter.truncated(record, keeping: keeping) }
        return .deadLettered(try await log.append([record])[0], failure)
    }

    /// The dead-letter record of a refused publication: its CloudEvents record as it would have
    /// been appended, addressed to the dead-letter topic, with the reason.
    /// - Parameter time: its `dl_time` header; default: now.
    private func deadLetterRecord(for publication: Publication, failure: ValidationFailure, time: LogHeader? = nil)
        -> OutgoingRecord
    {
        // The topic it was meant for: the named one, or the one topic that carries its type.
        let intended = publication.topic ?? catalog.onlyTopic(carrying: publication.event.type)
        return DeadLetter.record(
            refusing: publication.event, deadLetterTopic: catalog.deadLetterTopic, originalTopic: intended,
            failure: failure, refusedBy: refusedBy,
            time: time ?? LogHeader(name: DeadLetter.time, text: Timestamp.format(clock.now())))
    }
}
