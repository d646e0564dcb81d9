import CivilTime
import EventSchemas
import Foundation

/// What happens to a case: the inputs of ``Orchestrator/apply(_:_:now:)``.
public enum Input: Sendable, Hashable {
    /// An application was submitted (`application.<service>.submitted`).
    case submitted(Submission)
    /// A department decided (`approval.decided`).
    case decided(Decision)
    /// The applicant resubmitted a step that was rejected with `onRejection: resubmit` or asked
    /// for more information.
    case resubmitted(Resubmission)
    /// A timer the core set came due.
    case timerFired(TimerKey)

    /// The application the input is for: the case key.
    public var applicationId: String {
        switch self {
        case .submitted(let submission): submission.applicationId
        case .decided(let decision): decision.applicationId
        case .resubmitted(let resubmission): resubmission.applicationId
        case .timerFired(let key): key.applicationId
        }
    }
}

/// An application submitted to a workflow.
public struct Submission: Sendable, Hashable {
    /// The event type it came as: `application.restaurant.submitted` (chooses the workflow).
    public let applicationType: String
    /// The application (already validated against its schema by the caller).
    public let application: JSONValue
    /// The facts of the shared data view the shell found for the workflow's `sharedFact:`
    /// materials (``Workflow/sharedFactsNeeded(by:)``), looked up when the application arrived;
    /// the case keeps them. Not part of what makes a repeated submission the same one.
    public let facts: [SharedFact]

    public init(applicationType: String, application: JSONValue, facts: [SharedFact] = []) {
        self.applicationType = applicationType
        self.application = application
        self.facts = facts
    }

    public var applicationId: String { application[pointer: "/applicationId"]?.stringValue ?? "" }
}

/// A department's decision on one item of an application: the `approval.decided` body.
public struct Decision: Sendable, Hashable, Codable {
    public enum Outcome: String, Sendable, Hashable, Codable {
        case approved
        case rejected
        case needsMoreInformation = "needs-more-information"
    }

    public let applicationId: String
    public let department: String
    public let item: String
    public let outcome: Outcome
    public let reason: String?
    public let decidedAt: Date
    public let decidedBy: String
    public let licenceNumber: String?
    /// Facts the decision establishes for later steps (`approval.decided`'s `fields`), e.g.
    /// `assessedPriceFen`.
    public let fields: JSONObject

    public init(
        applicationId: String, department: String, item: String, outcome: Outcome, reason: String? = nil,
        decidedAt: Date, decidedBy: String, licenceNumber: String? = nil, fields: JSONObject = [:]
    ) {
        self.applicationId = applicationId
        self.department = department
        self.item = item
        self.outcome = outcome
        self.reason = reason
        self.decidedAt = decidedAt
        self.decidedBy = decidedBy
        self.licenceNumber = licenceNumber
        self.fields = fields
    }

    /// Reads an `approval.decided` body (validated by the caller); `nil` when a required member
    /// is missing or malformed.
    public init?(body: JSONValue) {
        guard let applicationId = body[pointer: "/applicationId"]?.stringValue,
            let department = body[pointer: "/department"]?.stringValue,
            let item = body[pointer: "/item"]?.stringValue,
            let outcome = body[pointer: "/decision"]?.stringValue.flatMap(Outcome.init(rawValue:)),
            let decidedAt = body[pointer: "/decidedAt"]?.stringValue.flatMap(ChinaTime.parse),
            let decidedBy = body[pointer: "/decidedBy"]?.stringValue
        else { return nil }
        self.init(
            applicationId: applicationId, department: department, item: item, outcome: outcome,
            reason: body[pointer: "/reason"]?.stringValue, decidedAt: decidedAt, decidedBy: decidedBy,
            licenceNumber: body[pointer: "/licenceNumber"]?.stringValue,
            fields: body[pointer: "/fields"]?.objectValue ?? [:])
    }
}

/// The applicant's resubmission of a step: the `application.step.resubmitted` body.
public struct Resubmission: Sendable, Hashable {
    /// The event type a resubmission travels as, on the topic of the same name.
    public static let eventType = "application.step.resubmitted"

    public let applicationId: String
    /// The step resubmitted.
    public let step: String
    /// When it was resubmitted.
    public let at: Date
    /// The corrected application, replacing the one the case holds (materials added, details
    /// fixed); `nil` keeps it. Conditions are not evaluated again: which steps apply is decided at
    /// submission. The caller validates it against the workflow's application schema.
    public let application: JSONValue?
    /// The workflow the applicant names; a case of another workflow refuses the resubmission.
    /// `nil`: not checked.
    public let workflow: String?

    public init(
        applicationId: String, step: String, at: Date, application: JSONValue? = nil, workflow: String? = nil
    ) {
        self.applicationId = applicationId
        self.step = step
        self.at = at
        self.application = application
        self.workflow = workflow
    }

    /// Reads an `application.step.resubmitted` body (validated by the caller); `nil` when a
    /// required member is missing or malformed.
    public init?(body: JSONValue) {
        guard let applicationId = body[pointer: "/applicationId"]?.stringValue,
            let step = body[pointer: "/step"]?.stringValue,
            let at = body[pointer: "/resubmittedAt"]?.stringValue.flatMap(ChinaTime.parse)
        else { return nil }
        self.init(
            applicationId: applicationId, step: step, at: at, application: body[pointer: "/application"],
            workflow: body[pointer: "/workflow"]?.stringValue)
    }
}

/// Names a timer: one per step attempt and kind, so setting it again is harmless and a firing for
/// an attempt that is over changes nothing.
public struct TimerKey: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// 80 % of the SLA: remind the department.
        case reminder
        /// Past the due date: escalate.
        case overdue
    }

    public let applicationId: String
    public let step: String
    public let attempt: Int
    public let kind: Kind

    public init(applicationId: String, step: String, attempt: Int, kind: Kind) {
        self.applicationId = applicationId
        self.step = step
        self.attempt = attempt
        self.kind = kind
    }

    /// `RA-2025-000123/timer/fire-inspection/1/reminder`: the timer's id.
    public var description: String { "\(applicationId)/timer/\(step)/\(attempt)/\(kind.rawValue)" }
}

extension Input {
    /// The input an event on the bus is: an `application.<service>.submitted` (a workflow's
    /// application type), an `approval.decided` or an `application.step.resubmitted`; `nil` for
    /// any other type, or a body that lacks what the core needs (the caller dead-letters it).
    /// Bodies are validated by the caller.
    public init?(eventType: String, body: JSONValue, rules: RuleBook) {
        if eventType == "approval.decided" {
            guard let decision = Decision(body: body) else { return nil }
            self = .decided(decision)
        } else if eventType == Resubmission.eventType {
            guard let resubmission = Resubmission(body: body) else { return nil }
            self = .resubmitted(resubmission)
        } else if rules.workflow(applicationType: eventType) != nil {
            let submission = Submission(applicationType: eventType, application: body)
            guard !submission.applicationId.isEmpty else { return nil }
            self = .submitted(submission)
        } else {
            return nil
        }
    }
}

extension RuleBook {
    /// The topics the orchestrator reads for these rules: each current workflow's application
    /// topic, `approval.<department>.decided` of every department a step names (all versions) and
    /// the resubmission topic, sorted. All are keyed by application id with one partition count.
    public func inputTopics(in catalog: TopicCatalog) -> [String] {
        var topics: Set<String> = []
        for topic in catalog.topics(carrying: Resubmission.eventType) { topics.insert(topic.name) }
        for workflow in current.values {
            for topic in catalog.topics(carrying: workflow.applicationType) { topics.insert(topic.name) }
        }
        for workflow in versions.values {
            for step in workflow.steps where catalog.topic(named: "approval.\(step.department).decided") != nil {
                topics.insert("approval.\(step.department).decided")
            }
        }
        return topics.sorted()
    }
}
