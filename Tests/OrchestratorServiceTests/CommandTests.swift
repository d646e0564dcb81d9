import Foundation
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
        if case .object(var object) = body {
            object["submittedAt"] = "yesterday"
            body = .object(object)
        }
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
}
