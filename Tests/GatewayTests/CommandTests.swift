import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `onewindow gateway` as a process: it starts on an embedded bus, is ready, serves metrics,
/// refuses keys until the key store is wired, and stops cleanly on SIGTERM.
@Suite struct GatewayCommandTests {
    @Test(.timeLimit(.minutes(1))) func theCommandServesAndStopsCleanly() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-gateway-cmd-\(UUID().uuidString.prefix(8).lowercased())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = freePort()
        let process = childProcess(
            try onewindowExecutable(),
            [
                "gateway", "--bus", "embedded:\(directory.path)/bus.sqlite", "--port", "\(port)",
                "--store", "\(directory.path)/gateway.sqlite", "--view", "\(directory.path)/view.sqlite",
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
        kill(process.processIdentifier, SIGTERM)
        try await waitForExit(process, timeout: .seconds(20))
        #expect(process.terminationStatus == 0)
    }
}
