import CivilTime
import EventSchemas
import Foundation
import Synchronization

/// Everything the orchestrator knows about one application, keyed by its application id: the
/// application itself, the rule version it is pinned to, each step's state and decisions, and
/// the completion record. Nothing an application needs lives outside its case, so a case can move
/// with its partition. `Codable` (as plain JSON) for the store.
public struct Case: Sendable, Hashable, Codable {
    /// The application number: `RA-2025-000123`.
    public let applicationId: String
    /// The workflow: `restaurant-opening`.
    public let workflow: String
    /// The rule version the case started on and keeps.
    public let ruleVersion: RuleVersion
    /// The application as submitted (replaced by a resubmission that carries a corrected one).
    public internal(set) var application: JSONValue {
        didSet { applicationJSON = SerializedApplication() }
    }
    /// ``application``'s stored JSON, written once per application value rather than at every
    /// write of the case (a new, empty one whenever ``application`` changes). Not part of the
    /// case's value: equal to any other, hashing nothing, not encoded.
    var applicationJSON = SerializedApplication()
    /// When the application was submitted (its `submittedAt`).
    public let submittedAt: Date
    /// Where the case stands.
    public internal(set) var status: Status
    /// The steps, in the workflow's order.
    public internal(set) var steps: [StepState]
    /// Counts the transitions that changed the case; numbers its progress updates.
    public internal(set) var revision: Int
    /// Set when every required step is approved.
    public internal(set) var completion: CompletionRecord?
    /// The shared data view's facts found for the application's `sharedFact:` materials when it
    /// arrived (`nil` in cases stored before materials could name facts).
    public internal(set) var facts: [SharedFact]?

    /// Every stored property but ``applicationJSON``, which `Codable` neither writes nor reads.
    enum CodingKeys: String, CodingKey {
        case applicationId, workflow, ruleVersion, application, submittedAt, status, steps, revision, completion, facts
    }

    /// Where a case stands.
    public enum Status: String, Sendable, Hashable, Codable {
        /// Steps are requested or waiting.
        case inProgress = "in-progress"
        /// Every step that applies is approved.
        case completed
        /// A step was rejected with `onRejection: fail`.
        case failed
    }

    /// The state of a step.
    public func step(_ id: String) -> StepState? { steps.first { $0.id == id } }

    /// The status of a step, read in place (``step(_:)`` copies the whole state, decisions and
    /// all, which the core's loops over the steps did many times per input).
    func status(of id: String) -> StepState.Status? {
        for index in steps.indices where steps[index].id == id { return steps[index].status }
        return nil
    }

    /// Whether a step is approved or skipped (``StepState/isDone``); `false` for an unknown step.
    func isDone(_ id: String) -> Bool {
        switch status(of: id) {
        case .approved?, .skipped?: true
        default: false
        }
    }

    /// The steps requested and past their due date at `now` (for `onewindow applications`,
    /// overdue first), in workflow order.
    public func overdueSteps(at now: Date) -> [StepState] {
        guard status == .inProgress else { return [] }
        return steps.filter { $0.status == .requested && ($0.overdueAt.map { $0 <= now } ?? false) }
    }

    /// The steps a waiting step still waits for (its dependencies not yet approved or skipped);
    /// empty for a step that does not wait.
    public func waitingFor(_ stepId: String, in workflow: Workflow) -> [String] {
        guard status(of: stepId) == .waiting, let definition = workflow.step(stepId) else { return [] }
        return notDone(definition.dependsOn)
    }

    /// Those of `steps` not approved or skipped yet.
    func notDone(_ steps: [String]) -> [String] { steps.filter { !isDone($0) } }

    mutating func update(_ id: String, _ change: (inout StepState) -> Void) {
        guard let index = steps.firstIndex(where: { $0.id == id }) else { return }
        change(&steps[index])
    }
}

/// One step of a case.
public struct StepState: Sendable, Hashable, Codable {
    /// The step's id in the workflow.
    public let id: String
    public internal(set) var status: Status
    /// 1 for the first request, 2 after the first resubmission…; 0 before the first request.
    public internal(set) var attempt: Int
    /// When the current attempt was requested.
    public internal(set) var requestedAt: Date?
    /// When each attempt was requested, in order (`requestTimes[0]` is attempt 1).
    public internal(set) var requestTimes: [Date]
    /// The current attempt's due date: its SLA in working days from the day it was requested.
    public internal(set) var dueDate: CivilDate?
    /// When the current attempt's reminder fires: 09:00 China time on the ⌈80 % × SLA⌉-th working
    /// day after the request day.
    public internal(set) var reminderAt: Date?
    /// When the current attempt is overdue: the start (00:00 China time) of the day after its due date.
    public internal(set) var overdueAt: Date?
    /// Whether the current attempt's reminder was sent.
    public internal(set) var reminded: Bool
    /// Whether the current attempt's overdue escalation was sent.
    public internal(set) var escalated: Bool
    /// Every decision received, all attempts, in order.
    public internal(set) var decisions: [DecisionRecord]

    /// A step's state.
    public enum Status: String, Sendable, Hashable, Codable {
        /// Waits for the steps it depends on.
        case waiting
        /// Its condition is false for this application; it counts as done for its dependants.
        case skipped
        /// Requested from the department, undecided.
        case requested
        case approved
        /// Rejected, and the rule says the application fails.
        case rejected
        /// Rejected or asked for more information; waits for the applicant to resubmit.
        case awaitingResubmission = "awaiting-resubmission"
        /// Lists a `sharedFact:` material the shared data view did not hold: waits, not
        /// requested, until the applicant brings it (a resubmission whose corrected application
        /// lists it), then waits for its dependencies as usual.
        case awaitingDocuments = "awaiting-documents"
    }

    /// Whether its dependants may go ahead.
    public var isDone: Bool { status == .approved || status == .skipped }

    /// The decision of the current attempt, when there is one.
    public var decision: DecisionRecord? { decisions.last { $0.attempt == attempt } }
}

/// A department's decision as the case keeps it.
public struct DecisionRecord: Sendable, Hashable, Codable {
    /// The attempt it decided.
    public let attempt: Int
    public let decision: Decision

    /// A field of the decision: `licenceNumber`, `decidedBy`, `decidedAt` (RFC 3339), `reason`, or
    /// one of its `fields`.
    public func field(_ name: String) -> JSONValue? {
        switch name {
        case "licenceNumber": decision.licenceNumber.map(JSONValue.string)
        case "decidedBy": .string(decision.decidedBy)
        case "decidedAt": .string(ChinaTime.rfc3339(decision.decidedAt))
        case "reason": decision.reason.map(JSONValue.string)
        default: decision.fields[name]
        }
    }
}

/// What a completed application took: the working days from submission to the last approval,
/// against the sum of its steps' own durations — parallel against serial.
public struct CompletionRecord: Sendable, Hashable, Codable {
    public let applicationId: String
    public let workflow: String
    public let ruleVersion: RuleVersion
    public let submittedAt: Date
    /// When the last required approval was decided.
    public let completedAt: Date
    /// Working days after the submission day up to and including the completion day.
    public let elapsedWorkingDays: Int
    /// The sum of every attempt's working days from its request to its decision, over all steps:
    /// what the application would have taken had the steps run one after another.
    public let serialWorkingDays: Int
    /// Each step's working days (all its attempts), by step id; skipped steps are absent.
    public let stepWorkingDays: [String: Int]
    /// The documents a serial process would have asked for against those the applicant handed
    /// in (``DocumentCount``); `nil` in records stored before it was counted.
    public var documents: DocumentCount?
}

/// A case's application as its stored JSON writes it (``Case/storedJSON()``), made at the first
/// write and reused by every later write of the same application value: a case is written at each
/// batch that changes it, its application each time the same (issue 9's profile: serialising it
/// was a quarter of writing the case). A ``Case`` gets a new one whenever its application changes,
/// so the bytes always are those of the application beside them.
final class SerializedApplication: Sendable, Hashable {
    private let bytes = Mutex<[UInt8]?>(nil)

    init() {}

    /// `application`'s JSON as ``JSONValue/write(to:)`` writes it, made once.
    func json(of application: JSONValue) -> [UInt8] {
        if let made = bytes.withLock({ $0 }) { return made }
        var output = JSONOutput(capacity: 1024)
        application.write(to: &output)
        let made = output.bytes
        bytes.withLock { $0 = made }
        return made
    }

    /// Not part of a case's value: every one is equal to every other.
    static func == (left: SerializedApplication, right: SerializedApplication) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}
