import EmbeddedLog
import EventModel
import EventSchemas
import Foundation
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

/// The restaurant with everything as separate processes, as in production: six department
/// simulators deciding on a day-a-second clock, their six connectors, and `onewindow orchestrator
/// run`, all on one embedded bus in a temporary folder.
@Suite("The restaurant end to end with departments, connectors and the orchestrator as processes")
struct ProcessesEndToEndTests {
    static let departments = [
        "market-regulation", "food-safety", "fire-safety", "environment", "urban-management", "tax",
    ]

    @Test(.timeLimit(.minutes(4)))
    func restaurantAcrossProcesses() async throws {
        let executable = try onewindowExecutable()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-orch-e2e-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for folder in ["Topics", "Rules", "Connectors"] {
            try FileManager.default.copyItem(
                at: repositoryRoot.appendingPathComponent(folder), to: directory.appendingPathComponent(folder))
        }
        let bus = "embedded:" + directory.appendingPathComponent("bus.sqlite").path
        let store = directory.appendingPathComponent("orchestrator.sqlite").path

        var started: [Process] = []
        func start(_ name: String, _ arguments: [String]) throws -> Process {
            let process = childProcess(executable, arguments)
            process.currentDirectoryURL = directory
            let log = directory.appendingPathComponent("\(name).log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            started.append(process)
            return process
        }
        defer { for process in started where process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        let topics = try start("topics", ["topics", "apply", "--bus", bus])
        try await waitForExit(topics)
        #expect(topics.terminationStatus == 0)
        for department in Self.departments {
            _ = try start(
                "sim-\(department)", ["dept-sim", department, "--decide", "--speed", "86400", "--log-level", "warning"])
        }
        for department in Self.departments {
            let database = directory.appendingPathComponent("var/departments/\(department).sqlite").path
            for _ in 0..<200 where !FileManager.default.fileExists(atPath: database) {
                try await Task.sleep(for: .milliseconds(50))
            }
            _ = try start(
                "connector-\(department)",
                ["connector", "run", "Connectors/\(department).yaml", "--bus", bus, "--log-level", "warning"])
        }
        let orchestrator = try start(
            "orchestrator",
            ["orchestrator", "run", "--bus", bus, "--store", store, "--clock-speed", "86400", "--log-level", "warning"])

        // A large restaurant with a sign (every step) and a small one without (no fire, no sign).
        let now = Date()
        let applications = [
            ("RA-2026-100001", Repo.restaurant(id: "RA-2026-100001", submitted: now, area: 200, seats: 60, sign: true)),
            ("RA-2026-100002", Repo.restaurant(id: "RA-2026-100002", submitted: now, area: 80, seats: 20, sign: false)),
        ]
        for (id, body) in applications {
            let file = directory.appendingPathComponent("\(id).json")
            try body.serialized().write(to: file)
            let apply = try start("apply-\(id)", ["apply", "restaurant-opening", "--bus", bus, "--file", file.path])
            try await waitForExit(apply)
            #expect(apply.terminationStatus == 0)
        }

        var cases: [Case] = []
        for _ in 0..<900 {
            if FileManager.default.fileExists(atPath: store) {
                let opened = try OrchestratorStore(path: store)
                cases = try applications.compactMap { try opened.findCase($0.0)?.state }
                if cases.count == 2, cases.allSatisfy({ $0.status != .inProgress }) { break }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        kill(orchestrator.processIdentifier, SIGTERM)
        try await waitForExit(orchestrator, timeout: .seconds(30))
        #expect(orchestrator.terminationStatus == 0)
        for process in started where process.isRunning { kill(process.processIdentifier, SIGTERM) }

        #expect(
            cases.map(\.status) == [.completed, .completed],
            "\(cases.map { ($0.applicationId, $0.steps.map(\.status)) })")
        let big = try #require(cases.first)
        let small = try #require(cases.last)
        #expect(big.steps.allSatisfy { $0.status == .approved })
        #expect(small.step("fire-inspection")?.status == .skipped)
        #expect(small.step("signboard-permit")?.status == .skipped)
        // The fan-out: every step after the business licence requested at one instant, after it.
        for state in cases {
            let licence = try #require(state.step("business-licence")?.requestedAt)
            let parallel = Set(
                state.steps.filter { $0.id != "business-licence" && $0.status != .skipped }.compactMap(\.requestedAt))
            #expect(parallel.count == 1)
            #expect(parallel.allSatisfy { $0 > licence })
        }
        // Requests and notifications exactly once each, the completion notified.
        let log = try EmbeddedLog(path: directory.appendingPathComponent("bus.sqlite").path)
        var requests: [String] = []
        for department in Self.departments {
            requests += try await readTopic(log, "approval.\(department).requested").map { $0.header("ce_id") ?? "" }
        }
        #expect(requests.count == 6 + 4)
        #expect(Set(requests).count == requests.count)
        let sms = try await readTopic(log, "notification.sms.requested").map { $0.header("ce_id") ?? "" }
        #expect(Set(sms).count == sms.count)
        #expect(sms.filter { $0.contains("completed") }.count == 2)
        await log.close()
    }
}
