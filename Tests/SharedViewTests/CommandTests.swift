import Foundation
import SharedView
import TestSupport
import Testing

@Suite("view rebuild, compare and data-usage as commands")
struct ViewCommandTests {
    @Test("compare shows each department's facts and the disagreement (exit 1); data-usage lists the comparison; rebuild finds no difference")
    func commands() async throws {
        let executable = try onewindowExecutable().path
        let bench = try await ViewBench()
        let person = Repo.resident(11)
        try await bench.publish(
            "household.move.registered", DepartmentFacts.move(person, name: "黄桂英", household: "440604012345", at: Repo.at("2025-06-01")),
            at: Repo.at("2025-06-01"), id: "move-11")
        try await bench.publish(
            "socialsecurity.pension.certified", DepartmentFacts.pension(person, name: "黄桂瑛", certified: Repo.at("2026-03-02")),
            at: Repo.at("2026-03-02"), id: "pension-11")
        try await bench.engine().process(try await bench.factRecords())
        let common = [
            "--bus", "embedded:" + bench.path("bus.sqlite"), "--view", bench.storePath, "--catalog",
            repositoryRoot.appendingPathComponent("Topics").path, "--rules", Repo.rulesDirectory.path,
        ]
        let compared = try await runProgram(executable, ["compare", person] + common)
        let text = String(decoding: compared.output, as: UTF8.self)
        #expect(compared.status == 1, "\(String(decoding: compared.error, as: UTF8.self))")
        #expect(text.contains("household-registry\n  household-record"), "\(text)")
        #expect(text.contains("social-security\n  pension-certification"), "\(text)")
        #expect(text.contains("DISAGREES name-differs"), "\(text)")
        #expect(text.contains("alert raised"), "\(text)")

        let usage = try await runProgram(executable, ["data-usage", person, "--view", bench.storePath])
        let listed = String(decoding: usage.output, as: UTF8.self)
        #expect(usage.status == 0)
        #expect(listed.contains("data-comparison") && listed.contains("move-11, pension-11"), "\(listed)")

        let rebuilt = try await runProgram(executable, ["view", "rebuild", "--into", bench.path("rebuilt.sqlite")] + common)
        #expect(rebuilt.status == 0, "\(String(decoding: rebuilt.error, as: UTF8.self))")
        #expect(String(decoding: rebuilt.output, as: UTF8.self).contains("no difference"))

        let all = try await runProgram(executable, ["compare", "--all"] + common)
        #expect(String(decoding: all.output, as: UTF8.self).contains("compared 1 subject(s)"))
        #expect(try await bench.alerts().count == 1, "compared twice, alerted once")
        let neither = try await runProgram(executable, ["compare"] + common)
        #expect(neither.status == 64)
    }
}
