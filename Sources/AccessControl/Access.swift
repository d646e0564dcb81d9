/// Who may do what through OneWindow's operator commands and HTTP gateway.
///
/// This file is the contract between the gateway (which asks) and the access policy (which
/// answers): a caller presents an API key, the gateway names the ``AccessAction`` it is about to
/// perform, and an ``AccessDeciding`` answers with the ``Principal`` the key belongs to or a
/// ``Refusal`` carrying the HTTP status and the reason the caller is shown.

/// The holder of an API key: a department, a downstream system, an applicant or an operator.
public struct Principal: Sendable, Hashable, Codable {
    /// The kinds of principal the hub knows.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// A department's system: publishes its own topics, reads what it was granted.
        case department
        /// A downstream system: reads (subscribes to) its granted topics.
        case downstream
        /// A citizen or a company: reads only their own applications and data-usage records.
        case applicant
        /// An on-call operator: replay and dead-letter commands, when granted.
        case `operator`
    }

    /// A unique, human-readable name (`market-regulation`, `tax-bureau-datahub`, `ops-li-wei`).
    public var name: String
    public var kind: Kind
    /// What the principal is bound to: the department code for a department, the resident ID or
    /// unified social credit code for an applicant, `nil` for the others.
    public var subject: String?
    public var grants: [Grant]

    public init(name: String, kind: Kind, subject: String? = nil, grants: [Grant] = []) {
        self.name = name
        self.kind = kind
        self.subject = subject
        self.grants = grants
    }
}

/// One permission, written on the command line and stored as text (`publish:approval.tax.*`).
///
/// | text                 | allows                                                         |
/// |----------------------|----------------------------------------------------------------|
/// | `publish:PATTERN`    | publishing to the topics matching PATTERN (`*` any run of characters) |
/// | `read:PATTERN`       | subscribing to / reading the topics matching PATTERN           |
/// | `submit:WORKFLOW`    | submitting applications of WORKFLOW (`*`: any) for any applicant (the front desk) |
/// | `progress`           | reading any application's progress (front desk, operators)     |
/// | `replay`             | `onewindow replay` and the gateway's replay                    |
/// | `dead-letters`       | `onewindow dlq …`                                              |
/// | `personal-data`      | seeing resident ID numbers, names and mobile numbers unmasked  |
public enum Grant: Sendable, Hashable, Codable {
    case publish(topics: String)
    case read(topics: String)
    case submit(workflow: String)
    case progress
    case replay
    case deadLetters
    case personalData
}

/// What a caller is about to do.
public enum AccessAction: Sendable, Hashable {
    /// Submit an application of `workflow` whose applicant is `applicant` (resident ID or credit code).
    case submitApplication(workflow: String, applicant: String)
    /// Read an application (its progress) whose applicant is `applicant`.
    case readApplication(applicant: String)
    /// Subscribe to (read) these topics.
    case subscribe(topics: [String])
    /// Publish to this topic.
    case publish(topic: String)
    /// Move consumer groups (replay).
    case replay
    /// List, show, redrive or purge dead letters.
    case deadLetters
    /// Read who used the data of `subject` (resident ID or credit code).
    case readDataUsage(subject: String)
}

/// Why a request was refused, as the caller sees it.
public struct Refusal: Error, Sendable, Hashable {
    /// 401: no key, or a key that is unknown or revoked; 403: a known key without the grant.
    public enum Status: Int, Sendable, Hashable {
        case unauthenticated = 401
        case forbidden = 403
    }

    public var status: Status
    /// A stable code for metrics and clients: `no-key`, `unknown-key`, `revoked-key`, `not-granted`,
    /// `not-own-application`.
    public var code: String
    /// One sentence saying what was refused and what would allow it.
    public var reason: String

    public init(status: Status, code: String, reason: String) {
        self.status = status
        self.code = code
        self.reason = reason
    }
}

/// The answer to "may the holder of this key do this?".
public enum AccessDecision: Sendable, Hashable {
    case allowed(Principal)
    case refused(Refusal)
}

/// Decides access. The implementation looks the key up (keys are stored hashed), checks the
/// principal's grants, counts and audits every refusal.
public protocol AccessDeciding: Sendable {
    /// The decision for `action` by whoever holds `apiKey` (`nil`: the request carried no key).
    func decide(apiKey: String?, action: AccessAction) async -> AccessDecision

    /// Who holds `apiKey`, checking no grant: `.allowed` with the principal, or a 401 refusal for
    /// no key, an unknown or a revoked key. For answering 401 before the rest of a request is read
    /// (a refused key learns nothing about the body); a 403 comes only from ``decide(apiKey:action:)``.
    func authenticate(apiKey: String?) async -> AccessDecision
}
