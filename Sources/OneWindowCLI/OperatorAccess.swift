import AccessControl
import ArgumentParser
import Audit
import Bus
import EventLog
import EventSchemas
import Foundation

/// The operator's key, for the commands that move or mend what others read: `replay --execute`
/// (the `replay` grant), `dlq redrive` and `dlq purge` (the `dead-letters` grant).
///
/// The key is checked against the key store of `onewindow grants` by the same policy the gateway
/// asks, and the principal it belongs to is who acted: in the audit log, where every replay,
/// redrive and purge is appended, and in the dead letters' markers. A refusal (no key, an unknown
/// or revoked one, a key without the grant) is itself audited and ends the command with status 77
/// before anything is moved. Reading — a replay's plan, `dlq list`, `dlq show` — needs no key.
struct OperatorKeyOptions: ParsableArguments {
    @Option(
        name: .customLong("api-key"),
        help: "An operator's key with the grant. Default: $ONEWINDOW_API_KEY. Issue one with: onewindow grants create ops-NAME --kind operator --grant replay --grant dead-letters")
    var apiKey: String?

    @Option(name: .customLong("keys"), help: "The key store (SQLite). Default: $ONEWINDOW_KEYS, else var/access.sqlite.")
    var keys: String?

    @Option(name: .long, help: "The audit log (SQLite). Default: $ONEWINDOW_AUDIT, else var/audit.sqlite.")
    var audit: String?

    /// The operator allowed `action`, with the audit log to record what they do.
    /// - Throws: ``CommandFailure`` with status 77 and the policy's reason when refused; 66 when
    ///   there is no key store yet.
    func authorize(_ action: AccessAction) async throws -> (operator: Principal, audit: AuditLog) {
        let storePath = KeyStoreOption.path(keys)
        // Checked before the audit log is opened (which creates it), so a refused command leaves no file behind.
        guard FileManager.default.fileExists(atPath: storePath) else {
            throw CommandFailure(
                .notFound,
                "no key store at \(storePath): an operator's key is needed; create one with onewindow grants create ops-NAME --kind operator --grant replay --grant dead-letters (or give --keys)")
        }
        var auditOptions = AuditOptions()
        auditOptions.audit = audit
        let auditLog = try auditOptions.openForAppending()
        let key = apiKey ?? ProcessInfo.processInfo.environment["ONEWINDOW_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        let policy = AccessPolicy(keys: try KeyStore.openExisting(path: storePath), audit: auditLog)
        switch await policy.decide(apiKey: key, action: action) {
        case .allowed(let principal):
            return (principal, auditLog)
        case .refused(let refusal):
            throw CommandFailure(.permission, "refused (\(refusal.code)): \(refusal.reason) Nothing was changed.")
        }
    }
}

extension AuditLog {
    /// Appends what a replay moved: one entry for the group, the moves in its details.
    func recordReplay(by principal: Principal, group: String, moves: [ReplayMove]) async throws {
        let partitions = moves.map { move in
            JSONValue.object([
                "topic": .string(move.partition.topic), "partition": .integer(Int64(move.partition.partition)),
                "from": move.from.map { .integer($0) } ?? .null, "to": .integer(move.to),
            ])
        }
        _ = try await append(
            actor: principal.name, action: .replay, subject: group,
            details: .object(["moves": .array(partitions)]))
    }

    /// Appends one entry per dead letter redriven or purged (the dead letter's id as subject).
    func recordDeadLetters(by principal: Principal, _ report: DeadLetterReport) async throws {
        let drafts = report.outcomes.compactMap { outcome -> AuditLog.Draft? in
            var details: JSONObject = ["eventId": outcome.eventId.map(JSONValue.string) ?? .null]
            switch outcome.result {
            case .published(let position):
                details["outcome"] = .string("published")
                details["to"] = .string("\(position.topic)/\(position.partition)/\(position.offset)")
            case .deadLetteredAgain(let id, let reason):
                details["outcome"] = .string("dead-lettered-again")
                details["newDeadLetter"] = .string(id.description)
                details["reason"] = .string(reason)
            case .purged:
                details["outcome"] = .string("purged")
            case .skipped:
                return nil
            }
            return AuditLog.Draft(
                actor: principal.name, action: report.action == .purge ? .deadLetterPurge : .deadLetterRedrive,
                subject: outcome.id.description, details: .object(details), eventId: nil)
        }
        _ = try await append(drafts)
    }
}
