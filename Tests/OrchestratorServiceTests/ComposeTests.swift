import Foundation
import OneWindowCLI
import TestSupport
import Testing

/// compose.yaml runs the orchestrator (the development machines have no Docker engine, so the file
/// is checked by reading it, as the Dockerfile is in the CLI tests).
@Suite("compose.yaml runs the orchestrator")
struct ComposeTests {
    /// The `orchestrator` service runs `orchestrator run` with a command line that parses, from
    /// the image's rules and with its store on the named volume `orchestrator` mounted at the
    /// image's `var/` (so a recreated container keeps its cases and outbox), restarted by the
    /// hub's policy when it exits 75.
    @Test func theOrchestratorServiceKeepsItsStoreOnAVolume() throws {
        let compose = try String(contentsOf: repositoryRoot.appendingPathComponent("compose.yaml"), encoding: .utf8)
        let lines = compose.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(lines.firstIndex(of: "  orchestrator:"), "compose.yaml has no orchestrator service")
        let block = lines[(start + 1)...].prefix {
            $0.hasPrefix("    ") || $0.trimmingCharacters(in: .whitespaces).hasPrefix("#")
        }
        #expect(block.contains("    <<: *hub"), "the hub's image, restart policy and bus: \(block)")
        #expect(compose.contains("restart: unless-stopped"))
        let commandLine = try #require(block.first { $0.hasPrefix("    command: ") })
        let command = try JSONDecoder().decode(
            [String].self, from: Data(commandLine.dropFirst("    command: ".count).utf8))
        #expect(Array(command.prefix(2)) == ["orchestrator", "run"])
        #expect(throws: Never.self) { _ = try OneWindowCommand.parseAsRoot(command) }
        let store = command.firstIndex(of: "--store").map { command[$0 + 1] } ?? "var/orchestrator.sqlite"
        #expect(store.hasPrefix("var/") || store.hasPrefix("/app/var/"), "the store \(store) is on the volume")
        #expect(block.contains("    volumes: [\"orchestrator:/app/var\"]"), "\(block)")
        let volumes = try #require(lines.firstIndex(of: "volumes:"))
        #expect(lines[volumes...].contains("  orchestrator:"), "the volume is declared")
        // The image's working directory is /app and it carries the rules the command reads.
        let dockerfile = try String(contentsOf: repositoryRoot.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let runtime = try #require(dockerfile.components(separatedBy: "\nFROM ").last)
        #expect(runtime.contains("WORKDIR /app"))
        #expect(runtime.contains("COPY Rules ./Rules"))
    }
}
