import AccessControl
import Audit
import Connectors
import Foundation
import GRDB
import Testing

@Suite("access policy: every refusal, its status and code, counted and audited")
struct AccessPolicyTests {
    /// The refusal of a decision, or `nil` when it allowed.
    func refusal(_ decision: AccessDecision) -> Refusal? {
        if case .refused(let refusal) = decision { return refusal }
        return nil
    }

    @Test("no key, an unknown key, a wrong secret and a revoked key are 401 with their codes")
    func unauthenticated() async throws {
        let bench = try AccessBench()
        let policy = bench.policy
        let tax = try await bench.key("tax-bureau", .department, subject: "tax", "publish:approval.tax.decided")

        let none = refusal(await policy.decide(apiKey: nil, action: .publish(topic: "approval.tax.decided")))
        #expect(none?.status == .unauthenticated && none?.code == "no-key", "\(String(describing: none))")
        let empty = refusal(await policy.decide(apiKey: "", action: .replay))
        #expect(empty?.code == "no-key")

        let garbage = refusal(await policy.decide(apiKey: "hunter2", action: .replay))
        #expect(garbage?.status == .unauthenticated && garbage?.code == "unknown-key")
        let unknownId = "owk_" + String(repeating: "0", count: 16) + "_" + String(repeating: "a", count: 64)
        #expect(refusal(await policy.decide(apiKey: unknownId, action: .replay))?.code == "unknown-key")
        // The right key id with another secret is unknown too (the hash is compared, not the id).
        let forged = String(tax.prefix(21)) + String(repeating: "b", count: 64)
        #expect(forged != tax)
        let forgedRefusal = refusal(await policy.decide(apiKey: forged, action: .publish(topic: "approval.tax.decided")))
        #expect(forgedRefusal?.code == "unknown-key")

        guard case .allowed(let principal) = await policy.decide(apiKey: tax, action: .publish(topic: "approval.tax.decided"))
        else {
            Issue.record("the tax bureau's own key was refused")
            return
        }
        #expect(principal.name == "tax-bureau" && principal.subject == "tax")

        try await bench.keys.revoke("tax-bureau", audit: bench.audit, actor: "test-operator")
        let revoked = refusal(await policy.decide(apiKey: tax, action: .publish(topic: "approval.tax.decided")))
        #expect(revoked?.status == .unauthenticated && revoked?.code == "revoked-key", "\(String(describing: revoked))")
        #expect(revoked?.reason.contains("tax-bureau") == true && revoked?.reason.contains("revoked") == true)
    }

    @Test("a department publishes only its granted topics, a downstream reads only its granted topics (403 not-granted)")
    func topics() async throws {
        let bench = try AccessBench()
        let policy = bench.policy
        let tax = try await bench.key(
            "tax-bureau", .department, subject: "tax", "publish:approval.tax.decided", "read:approval.tax.requested")
        let hub = try await bench.key("datahub", .downstream, "read:approval.*.decided")

        let foreign = refusal(await policy.decide(apiKey: tax, action: .publish(topic: "approval.food-safety.decided")))
        #expect(foreign?.status == .forbidden && foreign?.code == "not-granted")
        #expect(foreign?.reason.contains("approval.food-safety.decided") == true, "\(String(describing: foreign?.reason))")
        // Its own decided topic is not implied for reading, nor its requests for publishing.
        #expect(refusal(await policy.decide(apiKey: tax, action: .publish(topic: "approval.tax.requested")))?.code == "not-granted")
        #expect(refusal(await policy.decide(apiKey: tax, action: .subscribe(topics: ["approval.tax.requested"]))) == nil)

        #expect(refusal(await policy.decide(apiKey: hub, action: .subscribe(topics: ["approval.tax.decided", "approval.fire-safety.decided"]))) == nil)
        let ungranted = refusal(
            await policy.decide(apiKey: hub, action: .subscribe(topics: ["approval.tax.decided", "household.birth.registered"])))
        #expect(ungranted?.status == .forbidden && ungranted?.code == "not-granted")
        #expect(ungranted?.reason.contains("read:household.birth.registered") == true, "\(String(describing: ungranted?.reason))")
        #expect(refusal(await policy.decide(apiKey: hub, action: .publish(topic: "approval.tax.decided")))?.code == "not-granted")
    }

    @Test("an applicant reads and submits only its own applications (403 not-own-application); the front desk any")
    func applicants() async throws {
        let bench = try AccessBench()
        let policy = bench.policy
        let me = Repo.resident(1)
        let someoneElse = Repo.resident(2)
        let applicant = try await bench.key("applicant-1", .applicant, subject: me)
        let desk = try await bench.key("front-desk", .downstream, "submit:*", "progress")

        #expect(refusal(await policy.decide(apiKey: applicant, action: .readApplication(applicant: me))) == nil)
        #expect(refusal(await policy.decide(apiKey: applicant, action: .readApplication(applicant: me.lowercased()))) == nil)
        #expect(refusal(await policy.decide(apiKey: applicant, action: .submitApplication(workflow: "restaurant-opening", applicant: me))) == nil)
        #expect(refusal(await policy.decide(apiKey: applicant, action: .readDataUsage(subject: me))) == nil)

        let other = refusal(await policy.decide(apiKey: applicant, action: .readApplication(applicant: someoneElse)))
        #expect(other?.status == .forbidden && other?.code == "not-own-application")
        #expect(other?.reason.contains(someoneElse) == false, "the other applicant's ID is masked in the reason")
        #expect(refusal(await policy.decide(apiKey: applicant, action: .submitApplication(workflow: "restaurant-opening", applicant: someoneElse)))?.code == "not-own-application")
        #expect(refusal(await policy.decide(apiKey: applicant, action: .readDataUsage(subject: someoneElse)))?.code == "not-own-application")
        #expect(refusal(await policy.decide(apiKey: applicant, action: .subscribe(topics: ["application.restaurant.submitted"])))?.code == "not-granted")

        #expect(refusal(await policy.decide(apiKey: desk, action: .submitApplication(workflow: "house-transfer", applicant: someoneElse))) == nil)
        #expect(refusal(await policy.decide(apiKey: desk, action: .readApplication(applicant: someoneElse))) == nil)
        #expect(refusal(await policy.decide(apiKey: desk, action: .readDataUsage(subject: someoneElse)))?.code == "not-granted")
    }

    @Test("an operator without the replay grant is refused replay; dead letters need their own grant")
    func operators() async throws {
        let bench = try AccessBench()
        let policy = bench.policy
        let dlqOnly = try await bench.key("ops-zhang", .operator, "dead-letters")
        let replayer = try await bench.key("ops-li-wei", .operator, "replay", "dead-letters")

        let refused = refusal(await policy.decide(apiKey: dlqOnly, action: .replay))
        #expect(refused?.status == .forbidden && refused?.code == "not-granted")
        #expect(refused?.reason.contains("replay") == true)
        #expect(refusal(await policy.decide(apiKey: dlqOnly, action: .deadLetters)) == nil)
        #expect(refusal(await policy.decide(apiKey: replayer, action: .replay)) == nil)
        let department = try await bench.key("tax-bureau", .department, subject: "tax", "publish:approval.tax.decided")
        #expect(refusal(await policy.decide(apiKey: department, action: .deadLetters))?.code == "not-granted")
    }

    @Test("every refusal is appended to the audit log and counted by code; allowed requests are not audited")
    func refusalsAuditedAndCounted() async throws {
        ConnectorMetrics.bootstrap()
        let before = Self.count(code: "no-key")
        let bench = try AccessBench()
        let policy = bench.policy
        let ops = try await bench.key("ops-zhang", .operator, "dead-letters")
        _ = await policy.decide(apiKey: nil, action: .replay)
        _ = await policy.decide(apiKey: ops, action: .replay)
        _ = await policy.decide(apiKey: ops, action: .deadLetters)
        let refusals = try await bench.audit.entries(matching: .init(action: AuditAction.accessRefused.rawValue))
        #expect(refusals.count == 2)
        #expect(refusals.map(\.actor) == ["anonymous", "ops-zhang"])
        #expect(refusals.map { $0.detailsValue[pointer: "/code"]?.stringValue } == ["no-key", "not-granted"])
        #expect(refusals.allSatisfy { $0.subject == "replay" })
        #expect(try await bench.audit.verify().isIntact)
        #expect(Self.count(code: "no-key") >= before + 1, "\(ConnectorMetrics.text())")
        #expect(Self.count(code: "not-granted") >= 1)
    }

    /// The value of `onewindow_access_refusals_total{code=…}` in the process's Prometheus registry.
    static func count(code: String) -> Int {
        for line in ConnectorMetrics.text().split(separator: "\n")
        where line.hasPrefix(AccessPolicy.refusalsMetric + "{") && line.contains("code=\"\(code)\"") {
            return Int(line.split(separator: " ").last.map(String.init) ?? "") ?? 0
        }
        return 0
    }
}
