import Audit
import EventModel
import Foundation
import Logging
import Metrics

extension AccessAction: CustomStringConvertible {
    /// The action in words, for reasons and the audit log (identifiers masked).
    public var description: String {
        switch self {
        case .submitApplication(let workflow, let applicant):
            "submit a \(workflow) application for \(Masking.subject(applicant))"
        case .readApplication(let applicant): "read an application of \(Masking.subject(applicant))"
        case .subscribe(let topics): "read \(topics.joined(separator: ", "))"
        case .publish(let topic): "publish to \(topic)"
        case .replay: "replay (move consumer groups)"
        case .deadLetters: "handle dead letters"
        case .readDataUsage(let subject): "read who used the data of \(Masking.subject(subject))"
        }
    }

    /// What the action is done to, as the audit log's subject (identifiers masked).
    public var auditSubject: String {
        switch self {
        case .submitApplication(let workflow, _): "workflow:\(workflow)"
        case .readApplication(let applicant): "applicant:\(Masking.subject(applicant))"
        case .subscribe(let topics): topics.joined(separator: ",")
        case .publish(let topic): topic
        case .replay: "replay"
        case .deadLetters: "dead-letters"
        case .readDataUsage(let subject): "data-usage:\(Masking.subject(subject))"
        }
    }
}

extension Refusal {
    /// The codes of refusals: `no-key`, `unknown-key`, `revoked-key` (401), `not-granted`,
    /// `not-own-application` (403), and `key-store-unavailable` (401: the key could not be checked).
    public static let codes = [
        "no-key", "unknown-key", "revoked-key", "not-granted", "not-own-application", "key-store-unavailable",
    ]

    /// Whether the refusal is the hub's failure rather than the caller's (the key store could not be
    /// read): a gateway may answer it with 503 and `Retry-After` instead of the status.
    public var isTemporary: Bool { code == "key-store-unavailable" }
}

/// The access policy: looks the key up in the ``KeyStore``, then decides by the principal's kind,
/// subject and grants. Every refusal is counted (`onewindow_access_refusals_total{code}`), logged
/// and appended to the audit log (`access.refused`).
///
/// The rules (``evaluate(_:_:)`` is the pure part):
/// - **Publish** a topic: a `publish:` grant whose pattern matches it. A department's own
///   `approval.<code>.decided` is **not** implied: a key can do exactly what `onewindow grants
///   list` shows, and `grants create` refuses a department a pattern that reaches another
///   department's topics, so "only its own topics" holds at creation.
/// - **Read / subscribe** topics: a `read:` grant matching every topic asked for (one missing
///   refuses the whole request, naming it).
/// - **Submit** an application: a `submit:` grant matching the workflow (the front desk, for any
///   applicant), or an applicant key whose subject is the application's applicant.
/// - **Read an application's progress**: the `progress` grant, or an applicant key whose subject is
///   the applicant; an applicant asking about someone else is refused `not-own-application`.
/// - **Read who used the data** of a subject: that subject's own applicant key, or the
///   `personal-data` grant (an inspector).
/// - **Replay** and **dead letters**: the `replay` and `dead-letters` grants.
///
/// Subjects are compared ignoring case (a resident ID's check character `x`/`X`).
public struct AccessPolicy: AccessDeciding {
    public let keys: KeyStore
    public let audit: AuditLog?
    public let logger: Logger

    /// - Parameter audit: where refusals are appended; `nil`: they are only counted and logged.
    public init(keys: KeyStore, audit: AuditLog?, logger: Logger = Logger(label: "onewindow.access")) {
        self.keys = keys
        self.audit = audit
        self.logger = logger
    }

    public func decide(apiKey: String?, action: AccessAction) async -> AccessDecision {
        guard let apiKey, !apiKey.isEmpty else {
            return await refuse(
                Refusal(
                    status: .unauthenticated, code: "no-key",
                    reason: "The request carried no API key; present the key `onewindow grants create` printed for you."),
                actor: "anonymous", action: action)
        }
        let lookup: KeyStore.Lookup
        do {
            lookup = try await keys.lookup(apiKey: apiKey)
        } catch {
            logger.error("cannot read the key store \(keys.path): \(error)")
            return await refuse(
                Refusal(
                    status: .unauthenticated, code: "key-store-unavailable",
                    reason: "The hub could not check the API key (its key store is unreadable); try again shortly."),
                actor: Self.actor(ofUnknown: apiKey), action: action)
        }
        switch lookup {
        case .unknown:
            return await refuse(
                Refusal(
                    status: .unauthenticated, code: "unknown-key",
                    reason: "The API key is not one this hub issued; check it was copied whole, or ask an operator for one."),
                actor: Self.actor(ofUnknown: apiKey), action: action)
        case .revoked(let record):
            let when = record.revoked.map { ISO8601DateFormatter().string(from: $0) } ?? "earlier"
            return await refuse(
                Refusal(
                    status: .unauthenticated, code: "revoked-key",
                    reason: "The API key \(record.keyId) of \(record.principal.name) was revoked at \(when); ask an operator for a new one."),
                actor: record.principal.name, action: action)
        case .active(let record):
            if let refusal = Self.evaluate(record.principal, action) {
                return await refuse(refusal, actor: record.principal.name, action: action)
            }
            return .allowed(record.principal)
        }
    }

    /// The refusal of `action` by `principal`, or `nil` when its kind, subject and grants allow it.
    public static func evaluate(_ principal: Principal, _ action: AccessAction) -> Refusal? {
        let grants = principal.grants
        let who = "\(principal.name) (\(principal.kind.rawValue))"
        func notGranted(_ needed: String) -> Refusal {
            let held = grants.isEmpty ? "no grants" : "grants " + grants.map(\.description).joined(separator: ", ")
            return Refusal(
                status: .forbidden, code: "not-granted",
                reason: "\(who) may not \(action): it holds \(held); an operator can issue a key with \(needed).")
        }
        func ownSubject(_ subject: String) -> Bool {
            principal.kind == .applicant
                && principal.subject.map { $0.uppercased() == subject.uppercased() } == true
        }
        func notOwn(_ subject: String) -> Refusal {
            let what =
                switch action {
                case .submitApplication: "submit applications"
                case .readDataUsage: "read who used the data"
                default: "read applications"
                }
            return Refusal(
                status: .forbidden, code: "not-own-application",
                reason: "\(who) may \(what) only of its own subject \(Masking.subject(principal.subject ?? "")), not of \(Masking.subject(subject)).")
        }
        switch action {
        case .publish(let topic):
            return grants.contains { $0.allowsPublishing(to: topic) } ? nil : notGranted("publish:\(topic)")
        case .subscribe(let topics):
            let missing = topics.filter { topic in !grants.contains { $0.allowsReading(topic) } }
            guard let first = missing.first else { return nil }
            return notGranted("read:\(first)")
        case .submitApplication(let workflow, let applicant):
            if grants.contains(where: { $0.allowsSubmitting(workflow) }) || ownSubject(applicant) { return nil }
            return principal.kind == .applicant ? notOwn(applicant) : notGranted("submit:\(workflow)")
        case .readApplication(let applicant):
            if grants.contains(.progress) || ownSubject(applicant) { return nil }
            return principal.kind == .applicant ? notOwn(applicant) : notGranted("progress")
        case .readDataUsage(let subject):
            if grants.contains(.personalData) || ownSubject(subject) { return nil }
            return principal.kind == .applicant ? notOwn(subject) : notGranted("personal-data")
        case .replay:
            return grants.contains(.replay) ? nil : notGranted("replay")
        case .deadLetters:
            return grants.contains(.deadLetters) ? nil : notGranted("dead-letters")
        }
    }

    /// Who presented an unknown key, for the audit: its key id when it is well-formed (never the
    /// secret), else `unknown-key`.
    static func actor(ofUnknown apiKey: String) -> String {
        KeyStore.keyId(of: apiKey).map { "key:\($0)" } ?? "unknown-key"
    }

    func refuse(_ refusal: Refusal, actor: String, action: AccessAction) async -> AccessDecision {
        Counter(label: Self.refusalsMetric, dimensions: [("code", refusal.code)]).increment()
        logger.notice("refused \(actor): \(refusal.code): \(refusal.reason)")
        if let audit {
            do {
                try await audit.append(
                    actor: actor, action: .accessRefused, subject: action.auditSubject,
                    details: [
                        "status": String(refusal.status.rawValue), "code": refusal.code, "reason": refusal.reason,
                        "action": action.description,
                    ])
            } catch {
                // The refusal stands; losing its record is logged loudly rather than letting the caller in.
                logger.error("could not append a refusal to the audit log \(audit.path): \(error)")
            }
        }
        return .refused(refusal)
    }

    /// The counter of refusals, with the refusal's code as the `code` dimension.
    public static let refusalsMetric = "onewindow_access_refusals_total"
}
