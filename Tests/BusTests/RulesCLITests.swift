import Foundation
import TestSupport
import Testing

/// `onewindow rules check|diff`, run as a user runs them.
@Suite("onewindow rules", .timeLimit(.minutes(3)))
struct RulesCLITests {
    /// A copy of Rules/ in a temporary folder, to break.
    func copyOfRules() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rules-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let rules = directory.appendingPathComponent("Rules")
        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("Rules"), to: rules)
        return rules
    }

    @Test func theRepositoryRulesCheck() async throws {
        let result = try await runOnewindow(["rules", "check"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("ok restaurant-opening@"), "\(result.output)")
        #expect(result.output.contains("ok house-transfer@"), "\(result.output)")
    }

    @Test func everyProblemIsListedWithItsFileAndLineAndStatus78() async throws {
        let rules = try copyOfRules()
        defer { try? FileManager.default.removeItem(at: rules.deletingLastPathComponent()) }
        let broken = repositoryRoot.appendingPathComponent("Tests/BrokenConfigFiles")
        let notifications = rules.appendingPathComponent("notifications.yaml")
        try FileManager.default.removeItem(at: notifications)
        try FileManager.default.copyItem(
            at: broken.appendingPathComponent("notifications/unknown-placeholder.yaml"), to: notifications)
        let workflow = rules.appendingPathComponent("workflows/restaurant-opening.yaml")
        try FileManager.default.removeItem(at: workflow)
        try FileManager.default.copyItem(
            at: broken.appendingPathComponent("workflows/condition-unknown-field.yaml"), to: workflow)
        let result = try await runOnewindow(["rules", "check", rules.path])
        #expect(result.status == 78, "\(result.output) \(result.error)")
        #expect(result.error.contains("notifications.yaml:10:"), "\(result.error)")
        #expect(result.error.contains("did you mean {{applicationId}}?"), "\(result.error)")
        #expect(result.error.contains("restaurant-opening.yaml:26:"), "\(result.error)")
        #expect(result.error.contains("business.floorArea is not a field"), "\(result.error)")
        #expect(result.error.contains("2 problems"), "\(result.error)")
    }

    @Test func aMissingDirectoryIsNotFound() async throws {
        let result = try await runOnewindow(["rules", "check", "no/such/Rules"])
        #expect(result.status == 66, "\(result.error)")
        #expect(result.error.contains("no rules directory"), "\(result.error)")
    }

    @Test func diffShowsWhatChanged() async throws {
        let rules = try copyOfRules()
        defer { try? FileManager.default.removeItem(at: rules.deletingLastPathComponent()) }
        let old = repositoryRoot.appendingPathComponent("Rules/workflows/restaurant-opening.yaml")
        let new = rules.appendingPathComponent("workflows/restaurant-opening.yaml")
        let text = try String(contentsOf: old, encoding: .utf8)
            .replacingOccurrences(of: "business.seats > 50", with: "business.seats > 60")
        try text.write(to: new, atomically: true, encoding: .utf8)
        let result = try await runOnewindow(["rules", "diff", old.path, new.path])
        #expect(result.status == 0, "\(result.error)")
        #expect(
            result.output.contains(
                "~ fire-inspection: condition business.areaSquareMetres > 150 or business.seats > 50 → business.areaSquareMetres > 150 or business.seats > 60"
            ), "\(result.output)")
        let same = try await runOnewindow(["rules", "diff", old.path, old.path])
        #expect(same.output.contains("no changes"), "\(same.output)")
        let other = try await runOnewindow([
            "rules", "diff", old.path,
            repositoryRoot.appendingPathComponent("Rules/workflows/house-transfer.yaml").path,
        ])
        #expect(other.status == 64, "\(other.error)")
    }
}
