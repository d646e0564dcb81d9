import CitizenServices
import ConfigFiles
import Foundation
import Orchestrator
import TestSupport
import Testing

/// The rule files of the citizen services: the repository's load, and each broken file of
/// Tests/BrokenConfigFiles/life-events and …/repeat-visits is refused naming its line.
@Suite("Citizen services' rule files")
struct RuleFileTests {
    static let workflows: RuleBook = try! RuleBook.load(directory: Repo.rulesDirectory, catalog: Repo.catalog)

    @Test("The repository's life-events.yaml and repeat-visits.yaml load")
    func repositoryRules() throws {
        let rules = Repo.rules
        #expect(rules.lifeEvents.retirementAge == [.male: 60, .female: 55])
        #expect(rules.lifeEvents.pushes[.birth]?.services.map(\.title) == ["新生儿入户", "城乡居民医疗保险参保", "预防接种预约"])
        #expect(rules.lifeEvents.pushes[.death]?.starts == "death-aftercare")
        #expect(rules.repeatVisits.submissionWindowDays == 30)
        #expect(!rules.inputTopics.contains("application.death-aftercare.submitted"))
        #expect(rules.inputTopics.contains("application.restaurant.submitted"))
    }

    @Test(arguments: BrokenConfigFile.all(in: "life-events"))
    func aBrokenLifeEventFileIsRefusedWithItsLine(_ broken: BrokenConfigFile) throws {
        let text = try String(contentsOfFile: broken.path, encoding: .utf8)
        let error = #expect(throws: RuleBookError.self) {
            try LifeEventRules.parse(text, file: broken.path, rules: Self.workflows, catalog: Repo.catalog)
        }
        let problem = try #require(error?.problems.first)
        #expect(problem.file == broken.path)
        #expect(problem.line.map { $0 } == broken.line, "\(problem)")
        #expect(problem.description.contains(broken.message), "\(problem)")
    }

    @Test(arguments: BrokenConfigFile.all(in: "repeat-visits"))
    func aBrokenRepeatVisitFileIsRefusedWithItsLine(_ broken: BrokenConfigFile) throws {
        let text = try String(contentsOfFile: broken.path, encoding: .utf8)
        let error = #expect(throws: RuleBookError.self) { try RepeatVisitRules.parse(text, file: broken.path) }
        let problem = try #require(error?.problems.first)
        #expect(problem.line.map { $0 } == broken.line, "\(problem)")
        #expect(problem.description.contains(broken.message), "\(problem)")
    }

    /// The examples of Rules/README.md load, so the documentation stays true.
    @Test func theReadmeExamplesLoad() throws {
        let readme = try String(contentsOf: Repo.rulesDirectory.appendingPathComponent("README.md"), encoding: .utf8)
        func example(after heading: String) throws -> String {
            let section = try #require(readme.range(of: heading))
            let start = try #require(readme.range(of: "```yaml\n", range: section.upperBound..<readme.endIndex))
            let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
            return String(readme[start.upperBound..<end.lowerBound])
        }
        let lifeEvents = try LifeEventRules.parse(
            try example(after: "## Life-event pushes"), file: "Rules/README.md", rules: Self.workflows,
            catalog: Repo.catalog)
        #expect(lifeEvents.pushes[.retirement]?.starts == "pension-certification")
        let visits = try RepeatVisitRules.parse(try example(after: "## Supervision of repeat visits"), file: "Rules/README.md")
        #expect(visits == RepeatVisitRules(submissionWindowDays: 30, rejectionWindowDays: 30))
    }
}
