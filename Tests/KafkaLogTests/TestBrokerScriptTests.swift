import Foundation
import Testing
import TestSupport

/// `scripts/with-test-broker.sh` (what `make test` runs) leaves nothing running however it is
/// stopped: Ctrl-C (SIGINT), SIGTERM, or a CI time-out's SIGKILL, which no trap sees. The command
/// it runs here starts a grandchild, as `swift test` starts the processes of the tests.
@Suite("The test-broker script leaves nothing running", .serialized)
struct TestBrokerScriptTests {
    @Test("stopped midway, the broker, the command and what it started all end", arguments: [SIGINT, SIGTERM, SIGKILL])
    func stoppedMidway(signal: Int32) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("broker-script-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let started = folder.appendingPathComponent("started")

        // Started as make or a terminal starts it: ChildProcess gives it every signal at its default
        // action. (This test process may ignore SIGINT and SIGTERM, for the signal sources of
        // in-process services, and a shell cannot trap a signal it inherited as ignored.)
        let script = ChildProcess()
        script.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        script.currentDirectoryURL = repositoryRoot
        script.arguments = [
            repositoryRoot.appendingPathComponent("scripts/with-test-broker.sh").path,
            "bash", "-c",
            "sleep 600 & echo \"$! $ONEWINDOW_TEST_KAFKA_PORT\" > \(started.path).tmp && mv \(started.path).tmp \(started.path); wait",
        ]
        script.standardOutput = FileHandle.nullDevice
        script.standardError = FileHandle.nullDevice
        try script.run()

        var contents: String?
        for _ in 0..<600 where contents == nil {
            contents = try? String(contentsOf: started, encoding: .utf8)
            if contents == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let fields = try #require(contents).split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        try #require(fields.count == 2, "the command wrote its grandchild's pid and the broker's port")
        let (grandchild, port) = (fields[0], Int(fields[1]))
        #expect(isRunning(grandchild) && acceptsConnections(port: port))

        kill(script.processIdentifier, signal)
        var ended = false
        for _ in 0..<100 where !ended {
            ended = !isRunning(grandchild) && !acceptsConnections(port: port)
            if !ended { try await Task.sleep(for: .milliseconds(100)) }
        }
        if !ended { kill(grandchild, SIGKILL) }  // so a failing run leaves nothing either
        #expect(!isRunning(grandchild), "the command's child still runs 10 s after signal \(signal) to the script")
        #expect(!acceptsConnections(port: port), "the test broker still listens 10 s after signal \(signal) to the script")
        _ = try? await waitForExit(script, timeout: .seconds(10))
    }

    /// A test process that crashes leaves what it started orphaned, each in a process group of its
    /// own (as ``ChildProcess`` starts children): the script stops them when the command ends.
    @Test("a command that ends leaving a process of its own session running: the script stops it")
    func orphansOfTheCommandAreStopped() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("broker-script-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let started = folder.appendingPathComponent("started")
        let result = try await runProgram(
            repositoryRoot.appendingPathComponent("scripts/with-test-broker.sh").path,
            ["bash", "-c", "setsid sleep 600 & echo $! > \(started.path); exit 3"], timeout: .seconds(120))
        #expect(result.status == 3, "the script exits with the command's status")
        let orphan = try #require(Int32(try String(contentsOf: started, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let left = isRunning(orphan)
        if left { kill(orphan, SIGKILL) }
        #expect(!left, "the command's orphan in a session of its own still runs after the script ended")
    }
}

/// Whether a process exists and is not a zombie (a killed orphan stays a zombie until its new
/// parent reaps it, which a container's first process may never do).
private func isRunning(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return stat[stat.index(close, offsetBy: 2)] != "Z"
}
