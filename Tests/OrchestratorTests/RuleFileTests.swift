import ConfigFiles
import EventSchemas
import Foundation
import Orchestrator
import Testing
import TestSupport

@Suite("Rule files: loading, checking, versions, diff")
struct RuleFileTests {
    /// A temporary copy of Rules/ to break.
    static func copyOfRules() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rules-\(UUID().uuidString.prefix(8))")
        try FileManager.default.copyItem(at: rulesDirectory, to: directory)
        return directory
    }

    @Test func theRepositoryRulesLoad() throws {
        let rules = Fixtures.rules
        #expect(Set(rules.current.keys) == ["restaurant-opening", "house-transfer", "graduate-registration"])
        let restaurant = try #require(rules.current["restaurant-opening"])
        #expect(restaurant.steps.map(\.id).first == "business-licence")
        #expect(restaurant.steps.dropFirst().allSatisfy { $0.dependsOn == ["business-licence"] })
        #expect(restaurant.step("fire-inspection")?.condition != nil)
        #expect(restaurant.step("signboard-permit")?.conditionText == "business.hasOutdoorSignboard == true")
        let house = try #require(rules.current["house-transfer"])
        #expect(house.steps.map(\.dependsOn) == [[], ["contract-filing"], ["valuation"], ["tax-clearance"]])
        #expect(house.step("tax-clearance")?.passes == [StepField(step: "valuation", field: "assessedPriceFen")])
        #expect(restaurant.version.description.hasPrefix("restaurant-opening@"))
    }

    @Test(arguments: BrokenConfigFile.all(in: "workflows"))
    func aBrokenWorkflowIsRefusedWithItsLine(_ broken: BrokenConfigFile) throws {
        let url = URL(fileURLWithPath: broken.path)
        let (name, line, text) = (broken.name, broken.line, broken.message)
        do {
            _ = try RuleBook.loadWorkflow(file: url, rulesDirectory: rulesDirectory, catalog: Fixtures.catalog)
            Issue.record("\(name) was accepted")
        } catch {
            let match = error.problems.first { $0.problem.contains(text) || $0.description.contains(text) }
            #expect(match != nil, "\(name): expected '\(text)', got:\n\(error)")
            #expect(match?.line == line, "\(name): \(error)")
            #expect(match?.file == url.path)
            #expect(error.problems.count == 1, "\(name) has one problem: \(error)")
        }
    }

    @Test(arguments: BrokenConfigFile.all(in: "notifications"))
    func aBrokenNotificationFileIsRefusedWithItsLine(_ broken: BrokenConfigFile) throws {
        let (name, line, text) = (broken.name, broken.line, broken.message)
        let rules = try Self.copyOfRules()
        defer { try? FileManager.default.removeItem(at: rules) }
        let target = rules.appendingPathComponent("notifications.yaml")
        try FileManager.default.removeItem(at: target)
        try FileManager.default.copyItem(atPath: broken.path, toPath: target.path)
        do {
            _ = try RuleBook.load(directory: rules, catalog: Fixtures.catalog)
            Issue.record("\(name) was accepted")
        } catch {
            let match = error.problems.first { $0.description.contains(text) }
            #expect(match != nil, "\(name): expected '\(text)', got:\n\(error)")
            #expect(match?.line == line, "\(name): \(error)")
            #expect(match?.file.hasSuffix("notifications.yaml") == true)
        }
    }

    /// Every problem of a file is reported, not only the first.
    @Test func allProblemsOfAFileAreReported() throws {
        let text = """
            workflow: restaurant-opening
            title: 我要开餐馆
            application: application.restaurant.submitted
            applicant: {name: applicant.name, residentId: applicant.residentId, mobile: applicant.mobile}
            steps:
              - {id: a, department: market-regulation, item: business-licence, slaWorkingDays: 1, condition: business.floor > 1}
              - {id: b, department: food-safty, item: food-business-licence, slaWorkingDays: 1}
              - {id: c, department: tax, item: tax-registration, slaWorkingDays: 1, dependsOn: [x]}
            """
        let rules = try Self.copyOfRules()
        defer { try? FileManager.default.removeItem(at: rules) }
        let file = rules.appendingPathComponent("workflows/restaurant-opening.yaml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        #expect { try RuleBook.load(directory: rules, catalog: Fixtures.catalog) } throws: { error in
            let problems = (error as! RuleBookError).problems
            return problems.map(\.line) == [6, 7, 8]
        }
    }

    @Test func aChangedFileIsANewVersionAndOldVersionsStay() throws {
        let rules = try Self.copyOfRules()
        defer { try? FileManager.default.removeItem(at: rules) }
        let first = try RuleBook.load(directory: rules, catalog: Fixtures.catalog)
        #expect(first.current["restaurant-opening"]?.version == Fixtures.rules.current["restaurant-opening"]?.version)
        let file = rules.appendingPathComponent("workflows/restaurant-opening.yaml")
        let text = try String(contentsOf: file, encoding: .utf8)
        try text.replacingOccurrences(
            of:
                "slaWorkingDays: 7\n    details: [business.name, business.address, business.areaSquareMetres, business.cuisine]",
            with:
                "slaWorkingDays: 5\n    details: [business.name, business.address, business.areaSquareMetres, business.cuisine]"
        )
        .write(to: file, atomically: true, encoding: .utf8)
        let second = try first.reloaded(from: rules, catalog: Fixtures.catalog)
        let old = try #require(first.current["restaurant-opening"])
        let new = try #require(second.current["restaurant-opening"])
        #expect(old.version != new.version)
        #expect(second.workflow(version: old.version) == old, "the old version stays for its cases")
        // The house transfer did not change.
        #expect(second.current["house-transfer"]?.version == first.current["house-transfer"]?.version)
        #expect(RuleDiff.between(old, new) == [.slaChanged(step: "food-licence", from: 7, to: 5)])
    }

    @Test func theDiffNamesStepsConditionsDependenciesAndSLAs() throws {
        let rules = try Self.copyOfRules()
        defer { try? FileManager.default.removeItem(at: rules) }
        let file = rules.appendingPathComponent("workflows/restaurant-opening.yaml")
        let old = try RuleBook.loadWorkflow(file: file, rulesDirectory: rules, catalog: Fixtures.catalog)
        var text = try String(contentsOf: file, encoding: .utf8)
        text = text.replacingOccurrences(
            of: "condition: business.areaSquareMetres > 150 or business.seats > 50",
            with: "condition: business.areaSquareMetres>200")
        text = text.replacingOccurrences(
            of:
                "  - id: tax-registration\n    department: tax\n    item: tax-registration\n    dependsOn: [business-licence]",
            with:
                "  - id: tax-registration\n    department: tax\n    item: tax-registration\n    dependsOn: [business-licence, food-licence]"
        )
        // Remove the signboard step.
        let start = try #require(text.range(of: "  - id: signboard-permit"))
        let end = try #require(text.range(of: "  - id: tax-registration"))
        text.removeSubrange(start.lowerBound..<end.lowerBound)
        try text.write(to: file, atomically: true, encoding: .utf8)
        let new = try RuleBook.loadWorkflow(file: file, rulesDirectory: rules, catalog: Fixtures.catalog)
        let changes = RuleDiff.between(old, new)
        #expect(
            changes == [
                .stepRemoved("signboard-permit"),
                .conditionChanged(
                    step: "fire-inspection", from: "business.areaSquareMetres > 150 or business.seats > 50",
                    to: "business.areaSquareMetres > 200"),
                .dependenciesChanged(
                    step: "tax-registration", from: ["business-licence"], to: ["business-licence", "food-licence"]),
            ])
        #expect(changes.map(\.description)[0] == "- step signboard-permit")
        #expect(RuleDiff.between(old, old).isEmpty)
    }

    /// A store keeps a version's sources and compiles them again after a restart.
    @Test func aVersionCompilesAgainFromItsStoredSources() throws {
        let workflow = try #require(Fixtures.rules.current["house-transfer"])
        let stored = try JSONEncoder().encode(workflow.sources)
        let again = try RuleBook.compile(
            try JSONDecoder().decode(RuleSources.self, from: stored), catalog: Fixtures.catalog)
        #expect(again == workflow)
        var rules = RuleBook(workflows: [])
        rules.add(again, current: false)
        #expect(rules.workflow(version: workflow.version) != nil)
        #expect(rules.current["house-transfer"] == again, "the only version of an id is current")
    }

    /// Templates render text, not HTML: a name with & or < is sent as written.
    @Test func templatesRenderTextUnescaped() throws {
        let workflow = try #require(Fixtures.rules.current["restaurant-opening"])
        let text = try #require(workflow.notifications.templates[.received]).render([
            "applicant": ["name": "A&B <C>"], "applicationId": "RA-2026-000001", "service": ["title": "我要开餐馆"],
        ])
        #expect(text.contains("A&B <C>您好"), "\(text)")
    }

    /// The complete example of Rules/README.md loads, so the documentation stays true.
    @Test func theReadmeExampleLoads() throws {
        let readme = try String(contentsOf: rulesDirectory.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## Workflows"))
        let start = try #require(readme.range(of: "```yaml\n", range: section.upperBound..<readme.endIndex))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let rules = try Self.copyOfRules()
        defer { try? FileManager.default.removeItem(at: rules) }
        let file = rules.appendingPathComponent("workflows/house-transfer.yaml")
        try String(readme[start.upperBound..<end.lowerBound]).write(to: file, atomically: true, encoding: .utf8)
        let workflow = try RuleBook.load(directory: rules, catalog: Fixtures.catalog).current["house-transfer"]
        #expect(workflow?.steps.count == 3)
        #expect(workflow?.step("tax-clearance")?.passes.first?.description == "valuation.assessedPriceFen")
    }
}
