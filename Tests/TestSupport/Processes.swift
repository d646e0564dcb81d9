import Foundation

/// Child processes for tests, without blocking Swift's cooperative pool (two threads on these
/// machines): pipes are read on threads of their own, exits are awaited with `Task.sleep`.

/// What a finished child process printed, and how it ended.
public struct ProcessOutput: Sendable {
    /// The exit status; -9 when the child had to be killed after its time-out.
    public let status: Int32
    public let output: Data
    public let error: Data
}

/// Reads a pipe to its end on a thread of its own.
public func readToEnd(_ handle: FileHandle) async -> Data {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: handle.readDataToEndOfFile()) }.start()
    }
}

/// Reads both pipes of a started process while waiting for it to exit, and kills it after
/// `timeout`, so a test expecting it to stop fails instead of hanging.
public func collect(_ process: ChildProcess, output: Pipe, error: Pipe, timeout: Duration = .seconds(60)) async
    -> ProcessOutput
{
    async let out = readToEnd(output.fileHandleForReading)
    async let err = readToEnd(error.fileHandleForReading)
    var killed = false
    if (try? await waitForExit(process, timeout: timeout)) == nil {
        killed = true
        kill(process.processIdentifier, SIGKILL)
        try? await waitForExit(process, timeout: .seconds(10))
    }
    let (outData, errData) = await (out, err)
    return ProcessOutput(status: killed ? -9 : process.terminationStatus, output: outData, error: errData)
}

/// Runs a program found on PATH to its end, with `input` on its standard input.
public func runProgram(_ program: String, _ arguments: [String], input: Data? = nil, timeout: Duration = .seconds(60))
    async throws -> ProcessOutput
{
    let process = childProcess(URL(fileURLWithPath: "/usr/bin/env"), [program] + arguments)
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    process.standardInput = try standardInput(input ?? Data())
    try process.run()
    return await collect(process, output: output, error: error, timeout: timeout)
}

/// A child's standard input holding `data`: a file already written (and unlinked), not a pipe the
/// test writes to after the start. Foundation's non-throwing `FileHandle.write` traps on `EINTR`,
/// which a child exiting meanwhile (SIGCHLD) can cause; a file needs no write after the start.
public func standardInput(_ data: Data) throws -> FileHandle {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("stdin-\(UUID().uuidString)")
    try data.write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try FileHandle(forReadingFrom: url)
}

/// Whether something accepts TCP connections on a loopback port now.
public func acceptsConnections(port: Int) -> Bool {
    let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard probe >= 0 else { return false }
    defer { close(probe) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// A child process of a test, not run yet: set its pipes and directory, then `run()`. It gets a
/// process group of its own (``ChildProcess``); `scripts/with-test-broker.sh` (what `make test`
/// runs) runs the tests under a child subreaper that stops what is left of those groups however
/// the run ends, so nothing a test started outlives a stopped run.
///
/// (Not `setpriv --pdeathsig`: the kernel sends that signal when the *thread* that started the
/// child ends, and the concurrency pool's idle threads do end, killing a test's own broker in the
/// middle of the test.)
public func childProcess(_ executable: URL, _ arguments: [String]) -> ChildProcess {
    let process = ChildProcess()
    process.executableURL = executable
    process.arguments = arguments
    return process
}

/// ``childProcess(_:_:)`` of a test world's member: run in `directory`, and, when the world's bus
/// is a Kafka broker with a client configuration file, given that file as `ONEWINDOW_KAFKA_CONFIG`.
public func childProcess(_ executable: URL, _ arguments: [String], in directory: URL, kafkaConfig: URL?) -> ChildProcess
{
    let process = childProcess(executable, arguments)
    process.currentDirectoryURL = directory
    if let kafkaConfig {
        var environment = ProcessInfo.processInfo.environment
        environment["ONEWINDOW_KAFKA_CONFIG"] = kafkaConfig.path
        process.environment = environment
    }
    return process
}

/// Waits up to ten seconds for something to accept connections on a loopback port.
public func waitForListener(_ port: Int) -> Bool {
    for _ in 0..<100 {
        if acceptsConnections(port: port) { return true }
        usleep(100_000)
    }
    return false
}

/// A Tansu broker of a test's own on a free port (the binary `make test` installed), for a test
/// that cuts its broker off or must not share topics with the tests on `make test`'s broker.
public final class TestBroker: Sendable {
    public let process: ChildProcess
    /// The port it listens on.
    public let port: Int

    /// - Parameter advertisedPort: the port it tells clients to use (a proxy's); `nil`: its own.
    public init(advertisedPort: Int? = nil) throws {
        guard let tansu = ProcessInfo.processInfo.environment["ONEWINDOW_TEST_TANSU"] else {
            throw SupportError("ONEWINDOW_TEST_TANSU is not set: run the tests with `make test`")
        }
        let port = freePort()
        self.port = port
        process = childProcess(
            URL(fileURLWithPath: tansu),
            [
                "broker", "--listener-url", "tcp://127.0.0.1:\(port)",
                "--advertised-listener-url", "tcp://127.0.0.1:\(advertisedPort ?? port)", "--storage-engine",
                "memory://tansu/",
            ])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        if waitForListener(port) { return }
        stop()
        throw SupportError("a test's own broker did not start on 127.0.0.1:\(port)")
    }

    /// A test that threw before it stopped its broker leaves no broker running behind it.
    deinit {
        if process.isRunning { stop() }
    }

    /// Kills the broker and waits (at most five seconds) for it to be gone, not longer: a broker
    /// that does not go is left to `make test`'s subreaper rather than hanging the test.
    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
    }
}
