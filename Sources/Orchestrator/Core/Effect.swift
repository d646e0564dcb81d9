import EventSchemas
import Foundation

/// What the core asks the world to do after a transition. The store writes them in the same
/// transaction as the case; the relay publishes the emissions; the timer loop keeps the timers.
///
/// Every effect has an id derived from the application id and the transition
/// (`RA-2025-000123/request/food-licence/1`), never from a counter of the process or the clock,
/// so a relay that republishes after a crash republishes the same ids, which readers drop.
public enum Effect: Sendable, Hashable {
    /// An `approval.requested` to a department (on `approval.<department>.requested`).
    case requestApproval(step: String, Emission)
    /// An `application.progress.updated` (every step's state, due dates, what it waits for).
    case updateProgress(Emission)
    /// A `notification.sms.requested` with the rendered template.
    case notify(moment: NotificationMoment, Emission)
    /// A `supervision.alert.raised` (rule `sla-breach`) for an overdue step.
    case raiseAlert(step: String, Emission)
    /// Keep a timer and feed ``Input/timerFired(_:)`` at its instant (setting the same key again
    /// replaces it).
    case setTimer(TimerKey, at: Date)
    /// The timer is no longer needed (its step was decided); firing it anyway changes nothing.
    case cancelTimer(TimerKey)
    /// The application completed: record the durations (parallel against serial).
    case recordCompletion(CompletionRecord)

    /// The event to publish, for the effects that are one.
    public var emission: Emission? {
        switch self {
        case .requestApproval(_, let emission), .updateProgress(let emission), .notify(_, let emission),
            .raiseAlert(_, let emission):
            emission
        case .setTimer, .cancelTimer, .recordCompletion:
            nil
        }
    }

    /// The effect's id: the event id of an emission, the timer's id, or `<application>/completed`.
    public var id: String {
        switch self {
        case .requestApproval(_, let emission), .updateProgress(let emission), .notify(_, let emission),
            .raiseAlert(_, let emission):
            emission.id
        case .setTimer(let key, _), .cancelTimer(let key): key.description
        case .recordCompletion(let record): "\(record.applicationId)/completed"
        }
    }
}

/// An event to publish: its id (the CloudEvents `id`), type, topic, record key and JSON body,
/// which validates against the type's schema in `Topics/schemas`.
public struct Emission: Sendable, Hashable {
    /// Derived from the case and the transition; the same on a replay.
    public let id: String
    /// The event type: `approval.requested`.
    public let type: String
    /// The topic: `approval.food-safety.requested`.
    public let topic: String
    /// The record key: the application id, or the resident ID number of an SMS or alert (as
    /// their topics are keyed).
    public let key: String
    /// The body.
    public let body: JSONValue

    public init(id: String, type: String, topic: String, key: String, body: JSONValue) {
        self.id = id
        self.type = type
        self.topic = topic
        self.key = key
        self.body = body
    }
}

/// Why the core refused an input: the caller dead-letters the input with this reason (a
/// department's exact retry is not refused: it is a transition with no effects).
public struct Rejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of refusal.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        /// No case for the application (a decision, resubmission or timer before any submission).
        public static let unknownApplication = Code(name: "unknown-application")
        /// No workflow for the application's event type, or no rule version the case is pinned to.
        public static let unknownWorkflow = Code(name: "unknown-workflow")
        /// The decision's department and item are no step of the case's workflow.
        public static let unknownStep = Code(name: "unknown-step")
        /// The step was never requested (waiting, or skipped by its condition).
        public static let stepNotRequested = Code(name: "step-not-requested")
        /// A second decision for a step already decided, different from the first.
        public static let conflictingDecision = Code(name: "conflicting-decision")
        /// A second application with the same id and different content.
        public static let conflictingSubmission = Code(name: "conflicting-submission")
        /// A resubmission of a step that does not wait for one.
        public static let notAwaitingResubmission = Code(name: "not-awaiting-resubmission")
        /// A day the working-day calendar does not cover.
        public static let outsideCalendar = Code(name: "outside-calendar")
        /// An input that lacks what the core needs (an application without `submittedAt`…).
        public static let invalidInput = Code(name: "invalid-input")

        public var description: String { name }
    }

    public let code: Code
    /// What was wrong, naming the application and step.
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
}
