import EventSchemas
import Foundation
import Orchestrator

/// A fact of the shared data view: the latest one of a kind about a resident ID or credit code,
/// with the event that established it.
public struct SharedFactRecord: Sendable, Hashable {
    /// The kind: `household-record` (one of ``SharedFactKinds/all``).
    public var kind: String
    /// The resident ID number or unified social credit code it is about.
    public var subject: String
    /// The CloudEvents id of the event that established it.
    public var eventId: String
    /// The topic of that event: `household.member.changed`.
    public var topic: String
    /// When that event happened.
    public var time: Date
    /// The fact itself (the event's body, or the part of it the view keeps).
    public var data: JSONValue

    public init(kind: String, subject: String, eventId: String, topic: String, time: Date, data: JSONValue) {
        self.kind = kind
        self.subject = subject
        self.eventId = eventId
        self.topic = topic
        self.time = time
        self.data = data
    }
}

/// Where the orchestrator's shell finds the facts a workflow's `sharedFact:` materials name: the
/// shared data view. Every call is a read of a person's or company's data, which the view records
/// in its usage log with `reader` and `reason`.
public protocol SharedFactLookup: Sendable {
    /// The latest fact of `kind` about `subject`, `nil` when the view holds none.
    /// - Parameters:
    ///   - kind: one of ``SharedFactKinds/all``.
    ///   - subject: a resident ID number or unified social credit code.
    ///   - reader: who reads (`orchestrator`).
    ///   - reason: why: the application id.
    /// - Throws: when the view cannot answer (the batch is retried, as for a store error: an
    ///   applicant is never asked for a document only because the view was briefly down).
    func latestFact(kind: String, subject: String, reader: String, reason: String) async throws -> SharedFactRecord?
}

extension OrchestratorEngine {
    /// The reader the engine names in the view's usage log.
    public static let factReader = "orchestrator"

    /// Fills each decoded submission with the facts its workflow's `sharedFact:` materials name,
    /// read from ``sharedFacts`` before the batch's transaction (the core does no I/O). Without a
    /// lookup, or for other inputs, the inputs are unchanged. A submission whose case the store
    /// already has (a redelivery) is not looked up again: the case keeps the facts found the first
    /// time, and the view's usage log lists only reads that were used.
    func withSharedFacts(_ inputs: [PendingInput]) async throws -> [PendingInput] {
        guard let lookup = sharedFacts else { return inputs }
        var result = inputs
        for index in result.indices {
            guard case .success(.submitted(let submission)) = result[index].input,
                let workflow = core.rules.workflow(applicationType: submission.applicationType),
                try store.findCase(submission.applicationId) == nil
            else { continue }
            var facts: [SharedFact] = []
            for (kind, subject) in workflow.sharedFactsNeeded(by: submission.application) {
                let found = try await lookup.latestFact(
                    kind: kind, subject: subject, reader: Self.factReader, reason: submission.applicationId)
                if let found {
                    facts.append(SharedFact(kind: kind, subject: subject, eventId: found.eventId, topic: found.topic))
                }
            }
            result[index].input = .success(
                .submitted(
                    Submission(
                        applicationType: submission.applicationType, application: submission.application, facts: facts)
                ))
        }
        return result
    }
}
