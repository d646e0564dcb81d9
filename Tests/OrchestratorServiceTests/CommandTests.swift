import EventSchemas
import Foundation
import Orchestrator
import TestSupport
import Testing

@Suite("apply, status and applications as commands")
struct CommandTests {
    @Test(
        "apply refuses an application that breaks its schema with the field and rule (65); status and applications read the store"
    )
    func applyStatusApplications() async throws {
        let executable = try onewindowExecutable().path
        let bench = try await Bench()
        let bus = "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path
        let bad = bench.directory.appendingPathComponent("bad.json")
        var body = Repo.restaurant(id: "RA-2026-500001")
        body.set("yesterday", at: "/submittedAt")
        try body.serialized().write(to: bad)
        let refused = try await runProgram(
            executable,
            [
                "apply", "restaurant-opening", "--bus", bus, "--file", bad.path, "--catalog",
                repositoryRoot.appendingPathComponent("Topics").path,
                "--rules", Repo.rulesDirectory.path,
            ])
        let message = String(decoding: refused.error, as: UTF8.self)
        #expect(refused.status == 65, "\(message)")
        #expect(message.contains("/submittedAt"), "\(message)")

        let unknown = try await runProgram(
            executable,
            [
                "apply", "no-such-workflow", "--bus", bus, "--file", bad.path, "--catalog",
                repositoryRoot.appendingPathComponent("Topics").path, "--rules", Repo.rulesDirectory.path,
            ])
        #expect(unknown.status == 66)

        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-500002"))
        try await bench.pump(engine)
        let status = try await runProgram(
            executable,
            [
                "status", "RA-2026-500002", "--store", bench.storePath, "--catalog",
                repositoryRoot.appendingPathComponent("Topics").path, "--rules", Repo.rulesDirectory.path,
            ])
        let text = String(decoding: status.output, as: UTF8.self)
        #expect(status.status == 0, "\(String(decoding: status.error, as: UTF8.self))")
        #expect(text.contains("business-licence  requested  market-regulation"), "\(text)")
        #expect(text.contains("waits for: business-licence"), "\(text)")
        #expect(text.contains("营业执照 from business-licence.licenceNumber"), "\(text)")
        let missing = try await runProgram(executable, ["status", "RA-2026-599999", "--store", bench.storePath])
        #expect(missing.status == 66)
        let list = try await runProgram(executable, ["applications", "--store", bench.storePath])
        #expect(
            String(decoding: list.output, as: UTF8.self).contains("RA-2026-500002  restaurant-opening  1 open step(s)"))
    }

    @Test(
        "resubmit validates the corrected application like apply (65 with the field), refuses an unknown step (66) and another application's body (65), and publishes a valid one"
    )
    func resubmit() async throws {
        let executable = try onewindowExecutable().path
        let bench = try await Bench()
        let bus = "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path
        let common = [
            "--bus", bus, "--catalog", repositoryRoot.appendingPathComponent("Topics").path,
            "--rules", Repo.rulesDirectory.path,
        ]
        let id = "RA-2026-500010"
        func write(_ name: String, _ body: JSONValue) throws -> String {
            let file = bench.directory.appendingPathComponent(name)
            try body.serialized().write(to: file)
            return file.path
        }
        var broken = Repo.restaurant(id: id)
        broken.set("yesterday", at: "/submittedAt")
        let refused = try await runProgram(
            executable, ["resubmit", id, "--step", "food-licence", "--file", try write("bad.json", broken)] + common)
        let message = String(decoding: refused.error, as: UTF8.self)
        #expect(refused.status == 65, "\(message)")
        #expect(message.contains("/submittedAt"), "\(message)")

        let unknown = try await runProgram(executable, ["resubmit", id, "--step", "food-license"] + common)
        #expect(unknown.status == 66)
        #expect(String(decoding: unknown.error, as: UTF8.self).contains("food-licence"), "the known steps are listed")

        let other = try await runProgram(
            executable,
            ["resubmit", id, "--step", "food-licence", "--file", try write("other.json", Repo.restaurant(id: "RA-2026-500011"))]
                + common)
        #expect(other.status == 65)
        #expect(String(decoding: other.error, as: UTF8.self).contains("/applicationId"))

        let good = try await runProgram(
            executable,
            ["resubmit", id, "--step", "food-licence", "--file", try write("good.json", Repo.restaurant(id: id)), "--note", "已补充经营场所平面图"]
                + common)
        #expect(good.status == 0, "\(String(decoding: good.error, as: UTF8.self))")
        let published = try await bench.events(Resubmission.eventType)
        #expect(published.count == 1)
        let body = try #require(published.first?.body)
        #expect(body[pointer: "/workflow"]?.stringValue == "restaurant-opening")
        #expect(body[pointer: "/step"]?.stringValue == "food-licence")
        #expect(body[pointer: "/application"] == Repo.restaurant(id: id))
        #expect(body[pointer: "/note"]?.stringValue == "已补充经营场所平面图")
    }
}
