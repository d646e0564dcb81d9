import AccessControl
import Audit
import CivilTime
import EventSchemas
import Foundation
import TestSupport

/// A temporary folder with a key store and an audit log, removed at the end.
final class AccessBench: Sendable {
    let directory: URL
    let keys: KeyStore
    let audit: AuditLog

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-access-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        keys = try KeyStore(path: directory.appendingPathComponent("access.sqlite").path)
        audit = try AuditLog(path: directory.appendingPathComponent("audit.sqlite").path)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    var policy: AccessPolicy { AccessPolicy(keys: keys, audit: audit) }

    /// Creates a key for a principal given by its grants' text forms, checked against the catalog.
    func key(_ name: String, _ kind: Principal.Kind, subject: String? = nil, _ grants: String...) async throws -> String {
        let principal = Principal(name: name, kind: kind, subject: subject, grants: try grants.map { try Grant(parsing: $0) })
        return try await keys.create(
            principal, topicOwners: Repo.topicOwners, departments: Repo.departments, audit: audit, actor: "test-operator"
        ).apiKey
    }
}

enum Repo {
    static let catalog: TopicCatalog = try! TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    static let topicOwners = Dictionary(catalog.topics.map { ($0.name, $0.owner) }, uniquingKeysWith: { a, _ in a })
    static let departments = Set(catalog.departments.keys)

    /// A valid resident ID (Chancheng, born 1980-01-01 + `number` days).
    static func resident(_ number: Int) -> String {
        let birth = CivilDate(daysSinceEpoch: CivilDate("1970-01-01")!.daysSinceEpoch + 3650 + number)
        return ResidentIDNumber.make(region: "440604", birthDate: (birth.year, birth.month, birth.day), sequence: 1)
    }
}
