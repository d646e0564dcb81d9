import Foundation
import TestSupport
import Testing

/// ``ChildProcess``: what the tests rely on when they start OneWindow's processes.
@Suite("Child processes of the tests")
struct ChildProcessTests {
    /// The case that crashed Foundation's `Process.run`: more descriptors open than glibc's
    /// directory buffer holds entries, children started from a thread of their own. The child
    /// also shows that it inherits none of them (they are closed before it runs).
    @Test("With 1,400 more descriptors open, children start from a thread and inherit only their standard streams")
    func manyDescriptorsOpen() async throws {
        var opened: [Int32] = []
        defer { for descriptor in opened { close(descriptor) } }
        for _ in 0..<1_400 {
            // Not close-on-exec: only the launcher closing them keeps them from the child.
            let descriptor = open("/dev/null", O_RDONLY)
            try #require(descriptor >= 0, "cannot open /dev/null: errno \(errno)")
            opened.append(descriptor)
        }
        let listings: [Result<(status: Int32, descriptors: Set<Int32>), any Error>] = await withCheckedContinuation {
            continuation in
            Thread {
                var results: [Result<(status: Int32, descriptors: Set<Int32>), any Error>] = []
                for _ in 0..<20 {
                    results.append(
                        Result {
                            let process = childProcess(
                                URL(fileURLWithPath: "/bin/sh"), ["-c", "cd /proc/$$/fd && echo *"])
                            let output = Pipe()
                            process.standardOutput = output
                            try process.run()
                            let text = String(
                                decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                            process.waitUntilExit()
                            return (
                                process.terminationStatus,
                                Set(
                                    text.split(separator: " ").compactMap {
                                        Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
                                    })
                            )
                        })
                }
                continuation.resume(returning: results)
            }.start()
        }
        let inherited = Set(opened)
        for listing in listings {
            let (status, descriptors) = try listing.get()
            #expect(status == 0)
            #expect(descriptors.isSuperset(of: [0, 1, 2]), "the child's descriptors: \(descriptors.sorted())")
            let leaked = descriptors.intersection(inherited)
            #expect(
                leaked.isEmpty, "the child inherited \(leaked.count) of them, among them \(leaked.sorted().prefix(5))")
        }
    }

    @Test("The child runs in its directory with its environment, reads its input and says how it ended")
    func directoryEnvironmentInputAndEnd() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = childProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "pwd; echo \"$GREETING\"; cat; exit 7"])
        process.currentDirectoryURL = directory
        process.environment = ["GREETING": "你好", "PATH": "/usr/bin:/bin"]
        process.standardInput = try standardInput(Data("from the file\n".utf8))
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        #expect(process.processIdentifier > 0)
        let result = await collect(process, output: output, error: error, timeout: .seconds(30))
        #expect(result.status == 7)
        #expect(process.terminationReason == .exit)
        #expect(
            String(decoding: result.output, as: UTF8.self)
                == "\(directory.resolvingSymlinksInPath().path)\n你好\nfrom the file\n")
    }

    /// What a supervisor gives a program: no signal ignored (the test process may ignore SIGINT
    /// and SIGTERM, for its in-process services' signal sources) and none blocked (the starting
    /// thread's mask is not the child's).
    @Test("The child starts with every signal at its default action and none blocked")
    func signalsAtTheirDefaults() async throws {
        let previous = signal(SIGUSR1, SIG_IGN)  // nothing in the test process uses SIGUSR1
        defer { signal(SIGUSR1, previous) }
        let text: Result<String, any Error> = await withCheckedContinuation { continuation in
            Thread {
                var blocked = sigset_t()
                sigemptyset(&blocked)
                sigaddset(&blocked, SIGUSR1)
                sigaddset(&blocked, SIGTERM)
                pthread_sigmask(SIG_BLOCK, &blocked, nil)  // this thread's only, and it ends here
                continuation.resume(
                    returning: Result {
                        let process = childProcess(
                            URL(fileURLWithPath: "/usr/bin/grep"), ["-E", "^Sig(Blk|Ign):", "/proc/self/status"])
                        let output = Pipe()
                        process.standardOutput = output
                        try process.run()
                        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                        process.waitUntilExit()
                        return text
                    })
            }.start()
        }
        var masks: [String: UInt64] = [:]
        for line in try text.get().split(separator: "\n") {
            let parts = line.split(separator: ":")
            if parts.count == 2 {
                masks[String(parts[0])] = UInt64(parts[1].trimmingCharacters(in: .whitespaces), radix: 16)
            }
        }
        let standardSignals: UInt64 = (1 << 31) - 1  // bit n-1 is signal n
        #expect(masks["SigBlk"] == 0, "blocked: \(masks)")
        #expect(masks["SigIgn"].map { $0 & standardSignals } == 0, "ignored: \(masks)")
    }

    @Test("A child ended by a signal says so, with the signal's number")
    func endedBySignal() async throws {
        let process = childProcess(URL(fileURLWithPath: "/bin/sleep"), ["60"])
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = nil
        process.standardError = FileHandle.nullDevice
        try process.run()
        #expect(process.isRunning)
        kill(process.processIdentifier, SIGKILL)
        try await waitForExit(process, timeout: .seconds(10))
        #expect(process.terminationReason == .uncaughtSignal)
        #expect(process.terminationStatus == SIGKILL)
    }

    @Test("A program that does not exist is refused at the start, naming it")
    func missingProgram() throws {
        let process = childProcess(URL(fileURLWithPath: "/nonexistent/onewindow-test"), [])
        #expect {
            try process.run()
        } throws: { error in
            "\(error)".contains("/nonexistent/onewindow-test") && "\(error)".contains("No such file")
        }
        #expect(!process.isRunning)
    }

    @Test("A directory that does not exist is refused at the start, naming it")
    func missingDirectory() throws {
        let process = childProcess(URL(fileURLWithPath: "/bin/true"), [])
        process.currentDirectoryURL = URL(fileURLWithPath: "/nonexistent/onewindow-folder")
        #expect {
            try process.run()
        } throws: { error in
            "\(error)".contains("/nonexistent/onewindow-folder, which is not a directory")
        }
    }
}
