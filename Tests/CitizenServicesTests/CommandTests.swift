import CitizenServices
import EventModel
import EventSchemas
import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `onewindow citizen-services run` as a process: the rules' problems with status 78; a birth on
/// the bus becomes the parents' messages, the metrics say so, and SIGTERM stops it with status 0.
@Suite("onewindow citizen-services run")
struct CommandTests {
    @Test("A rules directory without life-events.yaml is refused with status 78 naming the file")
    func missingRules() async throws {
        let bench = try await Bench()
        let rules = bench.directory.appendingPathComponent("rules")
        try FileManager.default.copyItem(at: Repo.rulesDirectory, to: rules)
        try FileManager.default.removeItem(at: rules.appendingPathComponent("life-events.yaml"))
        let result = try await runProgram(
            try onewindowExecutable().path,
            [
                "citizen-services", "run", "--rules", rules.path, "--bus",
                "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path, "--catalog",
                repositoryRoot.appendingPathComponent("Topics").path, "--store", bench.storePath,
            ])
        let message = String(decoding: result.error, as: UTF8.self)
        #expect(result.status == 78, "\(message)")
        #expect(message.contains("life-events.yaml"), "\(message)")
    }

    @Test("rules check checks life-events.yaml and repeat-visits.yaml too, naming a problem's line (78)")
    func rulesCheck() async throws {
        let bench = try await Bench()
        let rules = bench.directory.appendingPathComponent("rules")
        try FileManager.default.copyItem(at: Repo.rulesDirectory, to: rules)
        let catalog = ["--catalog", repositoryRoot.appendingPathComponent("Topics").path]
        let good = try await runProgram(try onewindowExecutable().path, ["rules", "check", rules.path] + catalog)
        #expect(good.status == 0)
        #expect(String(decoding: good.output, as: UTF8.self).contains("ok life-events.yaml: 3 life events"))
        let broken = BrokenConfigFile.all(in: "life-events").first { $0.name == "age-out-of-range.yaml" }!
        try FileManager.default.removeItem(at: rules.appendingPathComponent("life-events.yaml"))
        try FileManager.default.copyItem(
            atPath: broken.path, toPath: rules.appendingPathComponent("life-events.yaml").path)
        let refused = try await runProgram(try onewindowExecutable().path, ["rules", "check", rules.path] + catalog)
        let message = String(decoding: refused.error, as: UTF8.self)
        #expect(refused.status == 78)
        #expect(message.contains("life-events.yaml:\(broken.line):"), "\(message)")
    }

    @Test("A birth on the bus: two messages, counted on /metrics; SIGTERM stops it with 0", .timeLimit(.minutes(1)))
    func runsAndStops() async throws {
        let bench = try await Bench()
        try await bench.publish("household.birth.registered", id: "birth-cli", Examples.birth())
        let port = freePort()
        let process = childProcess(
            try onewindowExecutable(),
            [
                "citizen-services", "run", "--rules", Repo.rulesDirectory.path, "--bus",
                "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path, "--catalog",
                repositoryRoot.appendingPathComponent("Topics").path, "--store", bench.storePath, "--metrics-port",
                "\(port)", "--log-level", "warning",
            ])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var messages: [Event] = []
        var metrics = ""
        for _ in 0..<200 {
            messages = try await bench.events("notification.sms.requested")
            if messages.count == 2,
                let (data, _) = try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
            {
                metrics = String(decoding: data, as: UTF8.self)
                if metrics.contains("onewindow_citizen_services_relayed_total 2") { break }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(messages.count == 2)
        #expect(metrics.contains("onewindow_citizen_services_messages_total 2"), "\(metrics)")
        // The outbox's pruning pass ran at start (nothing is 30 days old) and is counted.
        #expect(metrics.contains("onewindow_outbox_pruned_rows_total{service=\"citizen-services\"} 0"), "\(metrics)")
        kill(process.processIdentifier, SIGTERM)
        try await waitForExit(process)
        #expect(process.terminationStatus == 0)
    }
}
