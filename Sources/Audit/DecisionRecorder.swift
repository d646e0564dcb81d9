import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import Logging
import Metrics
import Retrying
import ServiceLifecycle

/// `onewindow audit record`: every department's approval decision into the audit log.
///
/// Decisions reach the log this way rather than by the orchestrator appending them: a decision is
/// the department's act, published on its own `approval.<department>.decided` topic whether or not
/// the orchestrator accepts it (a decision it refuses goes to the dead letters, and that too
/// should be on record), and a reader of its own keeps the orchestrator's transaction free of a
/// second database. The recorder joins consumer group ``group`` on every topic that carries
/// `approval.decided` in the catalog; each polled batch is one audit transaction, then its offsets
/// are committed. Each entry carries the decision's CloudEvents id, which the log records at most
/// once, so a batch read again after a crash or a replay of the topics appends nothing twice.
///
/// An entry: actor `<department>/<decidedBy>`, action `approval.decided`, subject the application
/// id, details the decision, item, reason, licence number, `decidedAt`, and the topic, partition
/// and offset it was read from. A record that is not a readable decision is recorded too, as
/// `approval.unreadable` with its position, rather than skipped unseen.
public struct DecisionRecorder: Sendable {
    /// The consumer group of `onewindow audit record`.
    public static let group = "onewindow.audit"
    /// The event type whose topics are read.
    public static let decisionType = "approval.decided"

    public let audit: AuditLog
    public let log: any EventLog
    public let topics: [String]
    public let clock: any WallClock
    public let logger: Logger

    /// - Parameter topics: the topics to read; the catalog's carriers of ``decisionType`` by
    ///   default (``topics(in:)``).
    public init(
        audit: AuditLog, log: any EventLog, topics: [String], clock: any WallClock = .system,
        logger: Logger = Logger(label: "onewindow.audit")
    ) {
        self.audit = audit
        self.log = log
        self.topics = topics
        self.clock = clock
        self.logger = logger
    }

    /// Every topic of the catalog that carries decisions.
    public static func topics(in catalog: TopicCatalog) -> [String] {
        catalog.topics(carrying: decisionType).map(\.name).sorted()
    }

    /// The entry a decision record becomes.
    public static func draft(of record: LogRecord) -> AuditLog.Draft {
        let position: JSONObject = [
            "topic": .string(record.topic), "partition": .integer(Int64(record.partition)),
            "offset": .integer(record.offset),
        ]
        do {
            let event = try CloudEventsBinding.event(from: record)
            let body = try JSONValue.parse(event.data)
            var details = position
            for field in ["decision", "item", "reason", "licenceNumber", "decidedAt", "decidedBy", "department"] {
                if let value = body[pointer: "/" + field] { details[field] = value }
            }
            let department = body[pointer: "/department"]?.stringValue ?? "unknown-department"
            let officer = body[pointer: "/decidedBy"]?.stringValue ?? "unknown-officer"
            return AuditLog.Draft(
                actor: "\(department)/\(officer)", action: .approvalDecided,
                subject: body[pointer: "/applicationId"]?.stringValue ?? event.subject ?? "",
                details: .object(details), eventId: event.id)
        } catch {
            var details = position
            details["problem"] = .string("\(error)")
            return AuditLog.Draft(
                actor: "audit-recorder", action: "approval.unreadable", subject: record.topic, details: .object(details),
                eventId: "unreadable:\(record.topic)/\(record.partition)/\(record.offset)")
        }
    }

    /// Records a polled batch in one audit transaction.
    /// - Returns: the entries appended (fewer than the records when some were recorded before).
    @discardableResult
    public func process(_ records: [LogRecord]) async throws -> [AuditEntry] {
        let appended = try await audit.append(records.map(Self.draft))
        Counter(label: "onewindow_audit_decisions_recorded_total").increment(by: appended.count)
        return appended
    }

    /// Consumes the decision topics as group ``group`` until cancelled (`consumeInBatches`): what
    /// may pass is retried with back-off on the clock, what cannot ends the loop with a
    /// `FatalFailure` (status 75 from the CLI).
    public func runConsumer(maxRecords: Int = 500) async throws {
        let retrier = Retrier(clock: clock, logger: logger, firstBackoff: .milliseconds(100)) { part in
            Counter(label: "onewindow_audit_retries_total", dimensions: [("part", part)]).increment()
        }
        let recorder = self
        try await consumeInBatches(
            log: log, group: Self.group, topics: topics, retrier: retrier, logger: logger, maxRecords: maxRecords,
            what: audit.path, assigned: Assignment(), process: { _ = try await recorder.process($0) })
    }

    /// The recorder as a service of a `ServiceGroup`: a graceful shutdown lets the batch in flight
    /// finish its transaction and commit.
    public var service: any Service { RecorderService(recorder: self) }

    struct RecorderService: Service, CustomStringConvertible {
        let recorder: DecisionRecorder
        var description: String { "audit decision recorder" }
        func run() async throws {
            do {
                try await cancelWhenGracefulShutdown { try await recorder.runConsumer() }
            } catch is CancellationError {
                return
            }
        }
    }
}
