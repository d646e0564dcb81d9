import AccessControl
import ArgumentParser
import Audit
import CivilTime
import EventModel
import EventSchemas
import Foundation

/// The audit log's options the commands that append or read it share: `--audit` and `--actor`.
public struct AuditOptions: ParsableArguments {
    @Option(name: .long, help: "The audit log (SQLite). Default: $ONEWINDOW_AUDIT, else var/audit.sqlite.")
    public var audit: String?

    @Option(
        name: .long,
        help: "Who is acting, as the audit log records it. Default: $ONEWINDOW_ACTOR, else the login name ($USER).")
    public var actor: String?

    public init() {}

    /// The audit log's path: `--audit`, else `$ONEWINDOW_AUDIT`, else `var/audit.sqlite`.
    public var path: String {
        audit ?? ProcessInfo.processInfo.environment["ONEWINDOW_AUDIT"].flatMap { $0.isEmpty ? nil : $0 }
            ?? AuditLog.defaultPath
    }

    /// Who acts: `--actor`, else `$ONEWINDOW_ACTOR`, else `$USER`, else `unknown`.
    public var actorName: String {
        let environment = ProcessInfo.processInfo.environment
        return actor ?? environment["ONEWINDOW_ACTOR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "unknown"
    }

    /// Opens the audit log for appending (creating it when missing: an append is what makes it).
    public func openForAppending() throws -> AuditLog { try AuditLog(path: path) }

    /// Opens an existing audit log for reading (status 66 when there is none).
    func openExisting() throws -> AuditLog {
        do {
            return try AuditLog.openExisting(path: path)
        } catch let error as AuditLogError {
            throw CommandFailure(.notFound, error.description)
        }
    }
}

/// The key store's option.
struct KeyStoreOption: ParsableArguments {
    @Option(name: .long, help: "The key store (SQLite). Default: $ONEWINDOW_KEYS, else var/access.sqlite.")
    var store: String?

    var path: String { Self.path(store) }

    /// The key store's path: `given`, else `$ONEWINDOW_KEYS`, else `var/access.sqlite`.
    static func path(_ given: String?) -> String {
        given ?? ProcessInfo.processInfo.environment["ONEWINDOW_KEYS"].flatMap { $0.isEmpty ? nil : $0 }
            ?? KeyStore.defaultPath
    }

    func openExisting() throws -> KeyStore {
        do {
            return try KeyStore.openExisting(path: path)
        } catch let error as KeyStoreError {
            throw CommandFailure(.notFound, error.description)
        }
    }
}

/// `onewindow grants create | list | revoke`: API keys and what they allow.
struct GrantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants",
        abstract: "Create, list and revoke API keys and their grants (who may do what through the gateway and the operator commands).",
        discussion: """
            Grants: publish:PATTERN, read:PATTERN (topics; * is any run of characters), \
            submit:WORKFLOW (* any), progress, replay, dead-letters, personal-data. Keys are \
            stored as SHA-256 only; creating and revoking are appended to the audit log.
            """,
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an API key bound to a principal and its grants; the key is printed once.",
            discussion: """
                Kinds: department (--subject its department code; publish: and read: grants, \
                publish patterns only over its own topics), downstream (read:, submit:, progress, \
                personal-data), applicant (--subject a resident ID or credit code; no grants: it \
                reads and submits its own applications), operator (all but publish:). The key is \
                printed once; only its SHA-256 is stored, so a lost key is revoked and replaced.
                Examples:
                  onewindow grants create tax-bureau --kind department --subject tax \\
                      --grant publish:approval.tax.decided \\
                      --grant read:approval.tax.requested
                  onewindow grants create datahub --kind downstream \\
                      --grant 'read:approval.*.decided'
                  onewindow grants create desk --kind downstream --grant 'submit:*' \\
                      --grant progress
                  onewindow grants create ops-li --kind operator --grant replay \\
                      --grant dead-letters
                  onewindow grants create me --kind applicant --subject 440604199308220247
                """)
        @OptionGroup var store: KeyStoreOption
        @OptionGroup var audit: AuditOptions
        @Argument(help: "The principal's name (tax-bureau, ops-li-wei): 2 to 64 letters, digits, '.', '_', '-'.")
        var name: String
        @Option(help: "department, downstream, applicant or operator.") var kind: String
        @Option(help: "A department's code, or an applicant's resident ID or credit code.") var subject: String?
        @Option(name: .customLong("grant"), help: "A grant (repeat the option for several).") var grants: [String] = []
        @Option(help: "The topic catalog directory, to check a department's code and publish patterns. Default: $ONEWINDOW_TOPICS, else ./Topics.")
        var catalog: String?
        @Flag(help: "Print only the key (for scripts).") var keyOnly = false

        func validate() throws {
            guard Principal.Kind(rawValue: kind) != nil else {
                throw ValidationError(
                    "--kind must be one of \(Principal.Kind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(kind)'")
            }
            for grant in grants {
                do { _ = try Grant(parsing: grant) } catch { throw ValidationError("\(error)") }
            }
        }

        func run() async throws {
            let principal = Principal(
                name: name, kind: Principal.Kind(rawValue: kind)!, subject: subject,
                grants: try grants.map { try Grant(parsing: $0) })
            let directory = catalog.map { URL(fileURLWithPath: $0) } ?? TopicCatalog.defaultDirectory
            var owners: [String: String]? = nil
            var departments: Set<String>? = nil
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("catalog.yaml").path) {
                let loaded = try TopicCatalog.load(from: directory)
                owners = Dictionary(loaded.topics.map { ($0.name, $0.owner) }, uniquingKeysWith: { first, _ in first })
                departments = Set(loaded.departments.keys)
            } else if principal.kind == .department {
                printError(
                    "warning: no topic catalog at \(directory.path): the department code and publish patterns are not checked (name it with --catalog)")
            }
            let keys = try KeyStore(path: store.path)
            let issued: IssuedKey
            do {
                issued = try await keys.create(
                    principal, topicOwners: owners, departments: departments, audit: try audit.openForAppending(),
                    actor: audit.actorName)
            } catch let error as KeyStoreError {
                throw CommandFailure(error.code == .invalidPrincipal ? .usage : .refused, error.description)
            }
            if keyOnly {
                print(issued.apiKey)
                return
            }
            print("created key \(issued.record.keyId) for \(GrantsCommand.describe(issued.record.principal))")
            print("grants: \(GrantsCommand.grantsText(issued.record.principal))")
            print("API key (shown this once; only its SHA-256 is kept, so store it now):")
            print(issued.apiKey)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the keys: principal, kind, subject (masked), key id, created, revoked, grants.",
            discussion: """
                Example:
                  onewindow grants list --active
                """)
        @OptionGroup var store: KeyStoreOption
        @Flag(help: "Only keys not revoked.") var active = false

        func run() async throws {
            let records = try await store.openExisting().list().filter { !active || $0.isActive }
            if records.isEmpty { print("no keys in \(store.path)") }
            for record in records {
                let state = record.revoked.map { "revoked \(ChinaTime.rfc3339($0))" } ?? "active"
                print(
                    "\(record.principal.name)  \(record.principal.kind.rawValue)\(record.principal.subject.map { " " + Masking.subject($0) } ?? "")  key \(record.keyId)  created \(ChinaTime.rfc3339(record.created))  \(state)  \(GrantsCommand.grantsText(record.principal))"
                )
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a principal's active key (by name) or one key (by key id); it is refused from then on.",
            discussion: """
                Requests with a revoked key are refused with 401 revoked-key within a second (a \
                running gateway remembers a key it found for 1 s). The key stays listed as revoked.
                Example:
                  onewindow grants revoke tax-bureau
                """)
        @OptionGroup var store: KeyStoreOption
        @OptionGroup var audit: AuditOptions
        @Argument(help: "The principal's name or the key id.") var nameOrKeyId: String

        func run() async throws {
            let keys = try store.openExisting()
            do {
                let revoked = try await keys.revoke(
                    nameOrKeyId, audit: try audit.openForAppending(), actor: audit.actorName)
                for record in revoked {
                    print("revoked key \(record.keyId) of \(GrantsCommand.describe(record.principal))")
                }
            } catch let error as KeyStoreError {
                throw CommandFailure(.notFound, error.description)
            }
        }
    }

    static func describe(_ principal: Principal) -> String {
        "\(principal.name) (\(principal.kind.rawValue)\(principal.subject.map { " " + Masking.subject($0) } ?? ""))"
    }

    static func grantsText(_ principal: Principal) -> String {
        principal.grants.isEmpty
            ? (principal.kind == .applicant ? "(its own applications)" : "(none)")
            : principal.grants.map(\.description).joined(separator: " ")
    }
}
