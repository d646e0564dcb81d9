import AccessControl
import Bus
import EventLog
import EventModel
import EventSchemas
import Foundation
import Orchestrator

/// The front desk (一窗受理): submits an application of any workflow of the rule book, validated
/// exactly as `onewindow apply` validates it (the workflow's application event through the
/// catalog's validator, ``Publisher``), then appended together with the submissions of other
/// requests arriving meanwhile (``GroupAppender``): an answer comes only once its record is on
/// the log.
struct FrontDesk: Sendable {
    let publisher: Publisher
    let rules: RuleBook
    let appender: GroupAppender

    init(publisher: Publisher, rules: RuleBook) {
        self.publisher = publisher
        self.rules = rules
        self.appender = GroupAppender(log: publisher.log)
    }

    /// A request body of the front desk's shape, `{"workflow": ID, "application": {…}}`, read from
    /// its bytes: the application is kept as sent (`120.0` stays a number) and parsed once.
    struct Submission: Sendable {
        var workflow: String
        var application: JSONValue

        /// The submission in `body`, or `nil` when it is not JSON or not of the shape (the
        /// generated decoder then says what is wrong, as a 400).
        init?(json body: Data) {
            guard case .object(let members)? = try? JSONValue.parse(body),
                case .string(let workflow)? = members["workflow"],
                let application = members["application"], case .object = application
            else { return nil }
            self.workflow = workflow
            self.application = application
        }

        init(workflow: String, application: JSONValue) {
            self.workflow = workflow
            self.application = application
        }
    }

    /// One field the request broke: its JSON pointer in the request body, the rule, what is wrong.
    struct Violation: Sendable, Hashable {
        var pointer: String
        var rule: String
        var message: String
    }

    /// Why a submission was not accepted (400 or 422).
    struct Invalid: Error, Sendable {
        enum Code: String, Sendable {
            case notJSON = "not-json"
            case badRequest = "bad-request"
            case unknownWorkflow = "unknown-workflow"
            case invalidApplication = "invalid-application"
        }
        var code: Code
        var reason: String
        var violations: [Violation]
        /// 400 for a body that is not JSON or not the request's shape, 422 for the rest.
        var status: Int { code == .notJSON || code == .badRequest ? 400 : 422 }
    }

    /// An accepted application: where its event landed.
    struct Accepted: Sendable {
        var applicationId: String
        var workflow: String
        var eventId: String
        var position: RecordPosition
    }

    /// The workflow named, or ``Invalid`` (`unknown-workflow`, at `/workflow`) listing the known ones.
    func workflow(_ id: String) throws(Invalid) -> Workflow {
        guard let workflow = rules.current[id] else {
            let known = rules.current.keys.sorted().joined(separator: ", ")
            throw Invalid(
                code: .unknownWorkflow, reason: "there is no workflow \(id); known: \(known)",
                violations: [
                    Violation(pointer: "/workflow", rule: "workflow", message: "\(id) is not a workflow; known: \(known)")
                ])
        }
        return workflow
    }

    /// The event id of a submission: the workflow, the application number and the SHA-256 of the
    /// application's canonical JSON (keys sorted), `WORKFLOW/NUMBER/HEX16`. A client that did not get
    /// its answer (the gateway killed after the append, a time-out during a broker outage) sends the
    /// same application again and gets the same id, which every reader drops as a repeat; a
    /// different content under the same number gets another id, and the orchestrator refuses it as
    /// a conflicting submission. (A random id made each retry a second application event: found by
    /// Tests/ReliabilityTests' broker outage under load.)
    /// - Parameter canonical: `application.serialized()` (keys sorted), which is also the event's data.
    static func eventId(workflow: String, application: JSONValue, canonical: Data) -> String {
        let number = application[pointer: "/applicationId"]?.stringValue ?? "application"
        return "\(workflow)/\(number)/\(DeadLetter.sha256Hex(canonical).prefix(16))"
    }

    /// Validates `application` as `workflow`'s application event and appends it.
    /// - Throws: ``Invalid`` (`invalid-application`) with each violation's pointer under
    ///   `/application`; a ``LogError`` when the bus fails.
    func submit(_ application: JSONValue, to workflow: Workflow, source: String) async throws -> Accepted {
        // Serialised once: the event's data and the content its id is derived from.
        let canonical = application.serialized()
        let event = Event(
            id: Self.eventId(workflow: workflow.id, application: application, canonical: canonical),
            type: workflow.applicationType, source: source, subject: nil, data: canonical)
        let record: OutgoingRecord
        let published: Event
        do {
            // The body given: validation does not parse the bytes just serialized from it again.
            let validated = try publisher.validatedRecord(for: Publication(event: event, body: application))
            record = validated.record
            published = validated.event
        } catch let failure as ValidationFailure {
            let violations =
                failure.violations.isEmpty
                ? [Violation(pointer: "/application", rule: failure.code.rawValue, message: failure.message)]
                : failure.violations.map {
                    Violation(pointer: "/application" + $0.pointer, rule: $0.keyword, message: $0.message)
                }
            throw Invalid(
                code: .invalidApplication,
                reason: "the application is not a valid \(workflow.applicationType): \(failure.message)",
                violations: violations)
        }
        let position = try await appender.append(record)
        return Accepted(
            applicationId: application[pointer: "/applicationId"]?.stringValue ?? published.subject ?? "",
            workflow: workflow.id, eventId: published.id, position: position)
    }
}
