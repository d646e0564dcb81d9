import AccessControl
import Audit
import Foundation
import GRDB
import Testing

@Suite("key store: keys hashed, grants checked at creation, text forms")
struct KeyStoreTests {
    @Test("the key is not in the SQLite file nor its WAL: only its SHA-256 and its key id")
    func keyNotInClear() async throws {
        let bench = try AccessBench()
        let key = try await bench.key("datahub", .downstream, "read:approval.*.decided")
        #expect(key.hasPrefix("owk_") && key.count == 4 + 16 + 1 + 64)
        let secret = String(key.suffix(64))
        // Every column of every row, as text and as hex of blobs.
        let cells: [String] = try await bench.keys.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM keys").flatMap { row in
                row.databaseValues.map { value -> String in
                    switch value.storage {
                    case .blob(let data): data.map { String(format: "%02x", $0) }.joined()
                    case .string(let text): text
                    default: value.description
                    }
                }
            }
        }
        #expect(!cells.isEmpty)
        #expect(!cells.contains { $0.contains(secret) || $0.contains(key) }, "\(cells)")
        // The raw bytes of the database and its write-ahead log.
        for suffix in ["", "-wal"] {
            let path = bench.keys.path + suffix
            guard let bytes = FileManager.default.contents(atPath: path) else { continue }
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "the secret is in \(path)")
        }
        // Neither is it in the audit log.
        let audited = try await bench.audit.entries()
        #expect(audited.count == 1 && audited[0].action == .grantCreated)
        #expect(!audited[0].details.contains(secret))
        guard case .active(let record) = try await bench.keys.lookup(apiKey: key) else {
            Issue.record("the key does not find its record")
            return
        }
        #expect(record.principal.grants == [.read(topics: "approval.*.decided")])
    }

    @Test("creation refuses what does not go together, a second active key per name, and a department reaching another's topics")
    func creationChecks() async throws {
        let bench = try AccessBench()
        func refused(_ principal: Principal) async -> String? {
            do {
                _ = try await bench.keys.create(principal, topicOwners: Repo.topicOwners, departments: Repo.departments)
                return nil
            } catch {
                return "\(error)"
            }
        }
        let broad = await refused(Principal(name: "tax-bureau", kind: .department, subject: "tax", grants: [.publish(topics: "approval.*")]))
        #expect(broad?.contains("other departments") == true, "\(broad ?? "created")")
        #expect(await refused(Principal(name: "tax-bureau", kind: .department, subject: "taxes", grants: [])) != nil)
        #expect(await refused(Principal(name: "tax-bureau", kind: .department, grants: [])) != nil)
        #expect(await refused(Principal(name: "hub", kind: .downstream, grants: [.replay]))?.contains("only operators") == true)
        #expect(await refused(Principal(name: "hub", kind: .downstream, grants: [.publish(topics: "approval.tax.decided")])) != nil)
        #expect(await refused(Principal(name: "me", kind: .applicant, subject: "440604199308220241", grants: [])) != nil)
        #expect(await refused(Principal(name: "me", kind: .applicant, subject: Repo.resident(3), grants: [.progress])) != nil)
        #expect(await refused(Principal(name: "ops li", kind: .operator, grants: [.replay])) != nil)
        #expect(await refused(Principal(name: "tax-bureau", kind: .department, subject: "tax", grants: [.publish(topics: "approval.tax.*")])) == nil)
        let again = await refused(Principal(name: "tax-bureau", kind: .department, subject: "tax", grants: []))
        #expect(again?.contains("active key already") == true, "\(again ?? "created")")
        try await bench.keys.revoke("tax-bureau")
        #expect(await refused(Principal(name: "tax-bureau", kind: .department, subject: "tax", grants: [])) == nil)
        let listed = try await bench.keys.list()
        #expect(listed.filter { $0.principal.name == "tax-bureau" }.map(\.isActive).sorted { !$0 && $1 } == [false, true])
        await #expect(throws: KeyStoreError.self) { try await bench.keys.revoke("nobody") }
    }

    @Test("a key found is remembered briefly: revoked through the store at once, by another process within the lifetime, a wrong secret never passes")
    func lookupsAreCachedBriefly() async throws {
        let bench = try AccessBench()
        let lifetime = Duration.milliseconds(500)
        let gateway = try KeyStore(path: bench.keys.path, cacheLifetime: lifetime)
        // Another process's store: `onewindow grants revoke` beside a running gateway.
        let operatorStore = try KeyStore(path: bench.keys.path, cacheLifetime: .zero)
        let key = try await bench.key("datahub", .downstream, "read:approval.*.decided")
        guard case .active = try await gateway.lookup(apiKey: key) else {
            Issue.record("the key is not active")
            return
        }
        // Same key id, another secret: unknown, though the key id is remembered.
        let forged = String(key.dropLast(64)) + String(repeating: "0", count: 64)
        #expect(try await gateway.lookup(apiKey: forged) == .unknown)
        // Revoked by another process: refused once the lifetime has passed since the revocation
        // (whatever was remembered before it has expired by then).
        try await operatorStore.revoke("datahub")
        try await Task.sleep(for: lifetime)
        let seen = try await gateway.lookup(apiKey: key)
        guard case .revoked = seen else {
            Issue.record("still \(seen) a lifetime after the revocation")
            return
        }
        // Revoked through the store that remembers: refused at the next lookup.
        let second = try await bench.key("datahub-2", .downstream, "read:approval.*.decided")
        guard case .active = try await gateway.lookup(apiKey: second) else {
            Issue.record("the second key is not active")
            return
        }
        try await gateway.revoke("datahub-2")
        guard case .revoked = try await gateway.lookup(apiKey: second) else {
            Issue.record("a key revoked through the store was still found active")
            return
        }
    }

    @Test(
        "grants read back from their text forms, and patterns match whole names",
        arguments: [
            "publish:approval.tax.*", "read:approval.*.decided", "submit:*", "submit:restaurant-opening", "progress",
            "replay", "dead-letters", "personal-data",
        ])
    func textForms(text: String) throws {
        let grant = try Grant(parsing: text)
        #expect(grant.description == text)
        #expect(Grant(text) == grant)
    }

    @Test("wrong grant texts are refused with the forms")
    func wrongTexts() {
        for text in ["publish", "publish:", "replay:now", "read:approval tax", "write:x"] {
            #expect(throws: GrantSyntaxError.self, "\(text)") { try Grant(parsing: text) }
        }
        #expect(TopicPattern.matches("approval.tax.*", "approval.tax.decided"))
        #expect(!TopicPattern.matches("approval.tax.*", "approval.taxes.decided"))
        #expect(TopicPattern.matches("approval.*.decided", "approval.food-safety.decided"))
        #expect(!TopicPattern.matches("approval.*.decided", "approval.food-safety.requested"))
        #expect(!TopicPattern.matches("approval.tax.decided", "approval.tax.decided.x"))
        #expect(TopicPattern.matches("*", "anything"))
        #expect(TopicPattern.matches("a*b*c", "aXbYbZc"))
    }
}
