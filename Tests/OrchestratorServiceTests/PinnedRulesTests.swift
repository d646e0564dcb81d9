import Foundation
import Orchestrator
import OrchestratorService
import Testing

@Suite("Rule versions pinned per case across restarts")
struct PinnedRulesTests {
    @Test(
        "A case keeps its version after the workflow file changed and the orchestrator restarted; a new one takes the new rules"
    )
    func caseKeepsItsVersion() async throws {
        let bench = try await Bench()
        let rules = bench.directory.appendingPathComponent("Rules")
        try FileManager.default.copyItem(at: Repo.rulesDirectory, to: rules)
        let before = try RuleBook.load(directory: rules, catalog: Repo.catalog)
        do {
            let engine = try bench.engine(rules: before)
            try await bench.submit(Repo.restaurant(id: "RA-2026-000010"))
            try await bench.pump(engine)
        }
        // The business licence's SLA goes from 3 to 4 working days.
        let file = rules.appendingPathComponent("workflows/restaurant-opening.yaml")
        let text = try String(contentsOf: file, encoding: .utf8)
        let changed = text.replacingOccurrences(
            of: "item: business-licence\n    slaWorkingDays: 3", with: "item: business-licence\n    slaWorkingDays: 4")
        #expect(changed != text)
        try changed.write(to: file, atomically: true, encoding: .utf8)
        let after = try RuleBook.load(directory: rules, catalog: Repo.catalog)
        let oldVersion = try #require(before.current["restaurant-opening"]?.version)
        let newVersion = try #require(after.current["restaurant-opening"]?.version)
        #expect(oldVersion != newVersion)
        #expect(after.workflow(version: oldVersion) == nil)

        let engine = try bench.engine(rules: after)
        try await bench.decide("RA-2026-000010", "market-regulation", "business-licence")
        try await bench.submit(Repo.restaurant(id: "RA-2026-000011"))
        let outcome = try await bench.pump(engine)
        #expect(outcome.deadLettered == 0)
        let old = try #require(try engine.store.findCase("RA-2026-000010")?.state)
        #expect(old.ruleVersion == oldVersion)
        #expect(old.step("food-licence")?.status == .requested)
        let new = try #require(try engine.store.findCase("RA-2026-000011")?.state)
        #expect(new.ruleVersion == newVersion)
        #expect(Set(try engine.store.pinnedSources().map(\.0)) == [oldVersion, newVersion])
    }
}
