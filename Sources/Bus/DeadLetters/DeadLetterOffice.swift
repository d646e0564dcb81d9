import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation

/// The operators' dead-letter desk: list, show, redrive and purge the records on the catalog's
/// dead-letter topic, on either backend. `onewindow dlq` is its command line; the HTTP gateway can
/// call the same functions.
///
/// ## How "redriven" and "purged" are remembered
/// The dead-letter topic is append-only (Kafka cannot delete one record), so a dead letter is never
/// removed. Each redrive or purge appends a marker to the catalog topic
/// `deadletter.record.handled` (``markerTopic``; schema `Topics/schemas/deadletter.record.handled.json`),
/// keyed by the dead letter's id (``DeadLetterID``, `deadletter.record.refused/0/42`). A dead
/// letter with a marker is *handled*: ``list(_:includeHandled:)`` leaves it out unless asked, and a
/// redrive does not send it again, however often it runs. The first marker of an id counts. The
/// marker topic keeps markers as long as the dead-letter topic keeps dead letters (90 days): a
/// marker is written after its dead letter, so it never expires first.
///
/// ## Redrive
/// A redrive validates the record again, with the catalog as it is now, exactly as publishing does
/// (``Publisher/validatedRecord(for:)``), for its `dl_original_topic` (or, when that is empty, the
/// one topic that carries its type). What passes is appended to that topic with its original key,
/// bytes and CloudEvents attributes (the same `ce_id`, so a consumer that saw it before drops the
/// repeat); what fails again goes back to the dead-letter topic as a new dead letter with the new
/// reason and `dl_redrive_of` naming the old one. Either way the old one gets its marker, so
/// nothing is lost and nothing is sent twice. Each dead letter is one append of its record and its
/// marker: on the embedded log one transaction, so a failure leaves it untouched or handled; on
/// Kafka the two can part on a broker failure, and a redrive run again may then send the record
/// once more (same `ce_id`). Run one redrive at a time: two at once may both send the same one.
/// A truncated dead letter (``DeadLetter/truncated``) holds only the first bytes of its original,
/// so it is skipped, never sent.
///
/// ## The one entry point for changes
/// ``handle(_:)`` does every redrive and purge and returns a ``DeadLetterReport`` of what was done,
/// so that what records operators' actions (an audit log) wraps one function.
public struct DeadLetterOffice: Sendable {
    /// The catalog topic of the markers.
    public static let markerTopic = "deadletter.record.handled"
    /// The event type of the markers.
    public static let markerType = "deadletter.record.handled"
    /// The CloudEvents source of the markers.
    public static let markerSource = "/onewindow/dlq"

    /// Validates what is redriven (the catalog as it is now), names the refuser of what fails
    /// again (`dl_refused_by`), and reads the clock for `dl_time` and the markers' `at`.
    public let publisher: Publisher

    /// - Parameters:
    ///   - name: written into `dl_refused_by` of a redriven record that fails again.
    ///   - clock: for the markers' time and validation rules that depend on today.
    public init(log: any EventLog, catalog: TopicCatalog, name: String = "onewindow dlq redrive", clock: any WallClock = .system) {
        publisher = Publisher(log: log, catalog: catalog, name: name, clock: clock)
    }

    public var log: any EventLog { publisher.log }
    public var catalog: TopicCatalog { publisher.catalog }
    /// The dead-letter topic (the catalog's `deadLetterTopic`).
    public var topic: String { catalog.deadLetterTopic }

    // MARK: - Reading

    /// The dead letters that match `filter`, oldest refusal first (then by id), each with its
    /// marker when handled.
    /// - Parameter includeHandled: whether redriven and purged ones are listed too.
    public func list(_ filter: DeadLetterFilter = DeadLetterFilter(), includeHandled: Bool = false) async throws
        -> [DeadLetterListing]
    {
        let markers = try await self.markers()
        var listings: [DeadLetterListing] = []
        try await log.readToEnd(topics: [topic]) { records in
            for record in records {
                let letter = StoredDeadLetter(record: record)
                guard filter.matches(letter) else { continue }
                let marker = markers[letter.id]
                if marker != nil && !includeHandled { continue }
                listings.append(DeadLetterListing(letter: letter, marker: marker))
            }
        }
        return listings.sorted { ($0.letter.time, $0.letter.id) < ($1.letter.time, $1.letter.id) }
    }

    /// One dead letter, with its marker when handled.
    /// - Throws: ``DeadLetterError`` `.notFound` when no dead letter has that id (another topic,
    ///   a partition or offset outside the topic, or one retention removed).
    public func show(_ id: DeadLetterID) async throws -> DeadLetterListing {
        let letter = try await read(id)
        return DeadLetterListing(letter: letter, marker: try await markers()[id])
    }

    /// The first marker of every dead letter that has one. No marker topic on the bus: none.
    public func markers() async throws -> [DeadLetterID: DeadLetterMarker] {
        var markers: [DeadLetterID: DeadLetterMarker] = [:]
        var found: [DeadLetterMarker] = []
        try await log.readToEnd(topics: [Self.markerTopic]) { records in
            found += records.compactMap(DeadLetterMarker.init(record:))
        }
        // Markers of one id share a key, hence a partition, and arrive in the order written.
        for marker in found where markers[marker.deadLetterId] == nil { markers[marker.deadLetterId] = marker }
        return markers
    }

    private func read(_ id: DeadLetterID) async throws -> StoredDeadLetter {
        guard id.topic == topic else {
            throw DeadLetterError(.notFound, "\(id) is not on the dead-letter topic \(topic); ids look like \(topic)/0/42")
        }
        guard let description = try await log.describeTopics([topic]).first else {
            throw DeadLetterError(.notFound, "the bus has no dead-letter topic \(topic), so no dead letter \(id)")
        }
        guard id.partition < description.partitions.count else {
            throw DeadLetterError(
                .notFound, "there is no dead letter \(id): \(topic) has partitions 0 to \(description.partitions.count - 1)")
        }
        let marks = description.partitions[id.partition]
        var records: [LogRecord] = []
        if id.offset >= marks.low && id.offset < marks.high {
            // Kafka can answer an empty fetch for a moment after an append: try again briefly.
            let deadline = ContinuousClock.now + .seconds(5)
            while true {
                records = try await log.read(id.position.topicPartition, from: id.offset, maxRecords: 1)
                if !records.isEmpty || ContinuousClock.now > deadline { break }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        guard let record = records.first, record.offset == id.offset else {
            throw DeadLetterError(
                .notFound,
                "there is no dead letter \(id): partition \(id.partition) holds offsets \(marks.low) to \(marks.high - 1) (older ones are past the topic's retention); `onewindow dlq list` lists them"
            )
        }
        return StoredDeadLetter(record: record)
    }

    // MARK: - Redrive and purge

    /// Redrives or purges the dead letters the request selects, and says what became of each.
    ///
    /// Handled dead letters are not selected by a filter or `.all`; named by id they are reported
    /// as skipped. Each dead letter is one append (its record and marker), in the order listed.
    /// - Throws: ``DeadLetterError`` `.filterRequired` for a purge of `.all` or of an empty
    ///   filter, `.notFound` for an id that is no dead letter, `.markerTopicMissing` when the
    ///   catalog or the bus lacks ``markerTopic`` (nothing is done then); a ``LogError`` when
    ///   the log fails (what was done before stands, with its markers).
    public func handle(_ request: DeadLetterRequest) async throws -> DeadLetterReport {
        if request.action == .purge {
            switch request.selection {
            case .all: throw DeadLetterError(.filterRequired, Self.purgeNeedsFilter)
            case .matching(let filter) where filter.isEmpty: throw DeadLetterError(.filterRequired, Self.purgeNeedsFilter)
            case .ids(let ids) where ids.isEmpty: throw DeadLetterError(.filterRequired, Self.purgeNeedsFilter)
            default: break
            }
        }
        try await requireMarkerTopic()
        var report = DeadLetterReport(action: request.action, by: request.by, at: publisher.clock.now())
        let chosen: [DeadLetterListing]
        switch request.selection {
        case .all: chosen = try await list()
        case .matching(let filter): chosen = try await list(filter)
        case .ids(let ids):
            let markers = try await self.markers()
            var seen = Set<DeadLetterID>()
            var listings: [DeadLetterListing] = []
            for id in ids where seen.insert(id).inserted {
                listings.append(DeadLetterListing(letter: try await read(id), marker: markers[id]))
            }
            chosen = listings
        }
        for listing in chosen {
            let letter = listing.letter
            if let marker = listing.marker {
                report.outcomes.append(
                    DeadLetterOutcome(
                        id: letter.id, eventId: letter.eventId,
                        result: .skipped("already \(marker.summary) at \(Timestamp.format(marker.at)) by \(marker.by)")))
                continue
            }
            switch request.action {
            case .purge: report.outcomes.append(try await purge(letter, by: request.by))
            case .redrive: report.outcomes.append(try await redrive(letter, by: request.by))
            }
        }
        return report
    }

    private static let purgeNeedsFilter =
        "a purge needs a filter (an original topic, a code, a refusing component, a time range) or the ids of the dead letters: it will not purge every dead letter at once"

    private func requireMarkerTopic() async throws {
        guard catalog.topic(named: Self.markerTopic) != nil else {
            throw DeadLetterError(
                .markerTopicMissing,
                "the catalog has no topic \(Self.markerTopic), where redrives and purges are remembered: add it to catalog.yaml (see Topics/README.md)")
        }
        guard try await log.listTopics().contains(Self.markerTopic) else {
            throw DeadLetterError(
                .markerTopicMissing,
                "the bus has no topic \(Self.markerTopic), where redrives and purges are remembered: run `onewindow topics apply` first")
        }
    }

    private func purge(_ letter: StoredDeadLetter, by: String) async throws -> DeadLetterOutcome {
        let marker = DeadLetterMarker(
            deadLetterId: letter.id, action: .purged, eventId: letter.eventId, at: publisher.clock.now(), by: by)
        let position = try await log.append([try markerRecord(marker)])[0]
        return DeadLetterOutcome(id: letter.id, eventId: letter.eventId, result: .purged(marker: position))
    }

    private func redrive(_ letter: StoredDeadLetter, by: String) async throws -> DeadLetterOutcome {
        if letter.isTruncated {
            let size = letter.record.header(DeadLetter.originalSize) ?? "?"
            return DeadLetterOutcome(
                id: letter.id, eventId: letter.eventId,
                result: .skipped(
                    "it holds only the first \(letter.record.value.count) of \(size) bytes (dl_truncated), so the original is not here to send; mend it at its source, then purge this one"))
        }
        let record = letter.record
        let now = publisher.clock.now()
        var outgoing: OutgoingRecord
        var marker = DeadLetterMarker(deadLetterId: letter.id, action: .redriven, eventId: letter.eventId, at: now, by: by)
        do {
            let event: Event
            do {
                event = try CloudEventsBinding.event(from: record)
            } catch let error as BindingError {
                throw ValidationFailure(.invalidEnvelope, "header \(error.header) \(error.problem)")
            }
            outgoing = try publisher.validatedRecord(for: Publication(event: event, topic: letter.originalTopic)).record
            marker.result = .published
            marker.topic = outgoing.topic
        } catch let failure as ValidationFailure {
            outgoing = DeadLetter.record(
                deadLetterTopic: topic, originalTopic: letter.originalTopic, key: record.key, value: record.value,
                headers: record.headers, failure: failure, refusedBy: publisher.name, at: now)
            outgoing.headers.append(LogHeader(name: DeadLetter.redriveOf, text: letter.id.description))
            marker.result = .deadLetteredAgain
            marker.topic = letter.originalTopic
            marker.reason = failure.reason
        }
        let positions: [RecordPosition]
        do {
            positions = try await log.append([outgoing, try markerRecord(marker)])
        } catch let error as LogError where error.code == .recordTooLarge {
            // Valid, but larger than the log takes now (its limit lowered since): it stays open.
            return DeadLetterOutcome(
                id: letter.id, eventId: letter.eventId, result: .skipped("the log refuses it: \(error)"))
        }
        let result: DeadLetterOutcome.Result =
            marker.result == .published
            ? .published(positions[0]) : .deadLetteredAgain(DeadLetterID(positions[0]), reason: marker.reason ?? "")
        return DeadLetterOutcome(id: letter.id, eventId: letter.eventId, result: result)
    }

    /// The marker as a validated record of ``markerTopic``.
    private func markerRecord(_ marker: DeadLetterMarker) throws -> OutgoingRecord {
        let event = Event(
            type: Self.markerType, source: Self.markerSource, subject: marker.deadLetterId.description, time: marker.at,
            data: marker.body.serialized())
        return try publisher.validatedRecord(for: Publication(event: event, topic: Self.markerTopic)).record
    }
}

/// What to do with which dead letters (``DeadLetterOffice/handle(_:)``).
public struct DeadLetterRequest: Sendable {
    public enum Action: String, Sendable, Hashable {
        /// Send back to the original topic through validation.
        case redrive
        /// Mark as handled without sending.
        case purge
    }

    public enum Selection: Sendable, Hashable {
        /// These dead letters (a purge's narrowest filter).
        case ids([DeadLetterID])
        /// The open dead letters the filter admits.
        case matching(DeadLetterFilter)
        /// Every open dead letter (redrive only: a purge refuses it).
        case all
    }

    public var action: Action
    public var selection: Selection
    /// Who asks (the operator), written into the markers.
    public var by: String

    public init(_ action: Action, _ selection: Selection, by: String) {
        self.action = action
        self.selection = selection
        self.by = by
    }
}

/// What ``DeadLetterOffice/handle(_:)`` did, dead letter by dead letter.
public struct DeadLetterReport: Sendable {
    public var action: DeadLetterRequest.Action
    public var by: String
    /// When the request was handled.
    public var at: Date
    public var outcomes: [DeadLetterOutcome] = []

    public init(action: DeadLetterRequest.Action, by: String, at: Date, outcomes: [DeadLetterOutcome] = []) {
        self.action = action
        self.by = by
        self.at = at
        self.outcomes = outcomes
    }

    /// How many went through to their topic.
    public var published: Int { outcomes.count(where: { if case .published = $0.result { true } else { false } }) }
    /// How many failed validation again and came back as new dead letters.
    public var deadLetteredAgain: Int {
        outcomes.count(where: { if case .deadLetteredAgain = $0.result { true } else { false } })
    }
    /// How many were purged.
    public var purged: Int { outcomes.count(where: { if case .purged = $0.result { true } else { false } }) }
    /// How many were left as they were (already handled, or truncated).
    public var skipped: Int { outcomes.count(where: { if case .skipped = $0.result { true } else { false } }) }
}

/// What became of one dead letter.
public struct DeadLetterOutcome: Sendable {
    public enum Result: Sendable {
        /// Redriven: validated and appended here.
        case published(RecordPosition)
        /// Redriven, refused again: the new dead letter and its reason.
        case deadLetteredAgain(DeadLetterID, reason: String)
        /// Purged: its marker is here.
        case purged(marker: RecordPosition)
        /// Left as it was, and why.
        case skipped(String)
    }

    public var id: DeadLetterID
    public var eventId: String?
    public var result: Result

    public init(id: DeadLetterID, eventId: String?, result: Result) {
        self.id = id
        self.eventId = eventId
        self.result = result
    }
}
