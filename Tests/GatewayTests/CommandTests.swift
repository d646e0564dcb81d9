import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `onewindow gateway` as a process: it starts on an embedded bus, is ready, serves metrics,
/// answers a key `onewindow grants` issued and refuses one it did not, and stops cleanly on SIGTERM
/// within seconds with an SSE subscriber connected (under one here; 4 s allowed for a loaded CI).
@Suite struct GatewayCommandTests {
    @Test(.timeLimit(.minutes(1))) func theCommandServesAndStopsCleanly() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-gateway-cmd-\(UUID().uuidString.prefix(8).lowercased())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = freePort()
        let keys = "\(directory.path)/access.sqlite", audit = "\(directory.path)/audit.sqlite"
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let issue = try await runProgram(try onewindowExecutable().path, [
            "grants", "create", "front-desk", "--kind", "downstream", "--grant", "progress", "--key-only",
            "--store", keys, "--audit", audit, "--catalog", repositoryRoot.appendingPathComponent("Topics").path,
        ])
        #expect(issue.status == 0, "\(String(decoding: issue.error, as: UTF8.self))")
        let key = String(decoding: issue.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let catalog = repositoryRoot.appendingPathComponent("Topics").path
        let reader = try await runProgram(try onewindowExecutable().path, [
            "grants", "create", "datahub", "--kind", "downstream", "--grant", "read:household.*", "--key-only",
            "--store", keys, "--audit", audit, "--catalog", catalog,
        ])
        #expect(reader.status == 0, "\(String(decoding: reader.error, as: UTF8.self))")
        let readerKey = String(decoding: reader.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let topics = try await runProgram(try onewindowExecutable().path, [
            "topics", "apply", "--bus", "embedded:\(directory.path)/bus.sqlite", "--catalog", catalog,
        ])
        #expect(topics.status == 0, "\(String(decoding: topics.error, as: UTF8.self))")
        let process = childProcess(
            try onewindowExecutable(),
            [
                "gateway", "--bus", "embedded:\(directory.path)/bus.sqlite", "--port", "\(port)",
                "--store", "\(directory.path)/gateway.sqlite", "--view", "\(directory.path)/view.sqlite",
                "--keys", keys, "--audit", audit,
                "--rules", repositoryRoot.appendingPathComponent("Rules").path,
                "--catalog", repositoryRoot.appendingPathComponent("Topics").path, "--log-level", "warning",
            ])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(waitForListener(port), "onewindow gateway did not listen on \(port)")
        let base = "http://127.0.0.1:\(port)"
        let (_, health) = try await URLSession.shared.data(from: URL(string: "\(base)/health")!)
        #expect((health as? HTTPURLResponse)?.statusCode == 200)
        let (metrics, _) = try await URLSession.shared.data(from: URL(string: "\(base)/metrics")!)
        #expect(String(decoding: metrics, as: UTF8.self).contains("onewindow_gateway_bus_up 1"))
        var request = URLRequest(url: URL(string: "\(base)/applications/RA-2026-000001")!)
        request.setValue("Bearer some-key", forHTTPHeaderField: "Authorization")
        let (_, refused) = try await URLSession.shared.data(for: request)
        #expect((refused as? HTTPURLResponse)?.statusCode == 401)
        request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        let (_, unknownApplication) = try await URLSession.shared.data(for: request)
        #expect((unknownApplication as? HTTPURLResponse)?.statusCode == 404, "the issued key is accepted")
        // A subscriber connected when SIGTERM comes: its stream ends and the process exits at once,
        // not at the stream's next keep-alive.
        let (reached, tell) = AsyncStream<Void>.makeStream()
        let subscriber = Task {
            try await SSERead.read(
                port: port, path: "/subscriptions/cmd/events?topics=household.birth.registered", key: readerKey,
                lastEventID: nil, events: 0, untilEnd: true) { tell.yield() }
        }
        for await _ in reached { break }
        let stopping = ContinuousClock.now
        kill(process.processIdentifier, SIGTERM)
        try await waitForExit(process, timeout: .seconds(20))
        let stopped = ContinuousClock.now - stopping
        #expect(process.terminationStatus == 0)
        #expect(stopped < .seconds(4), "onewindow gateway took \(stopped) to stop with a subscriber connected")
        #expect(try await subscriber.value.ended, "the subscriber's stream ended with the response")
    }
}
