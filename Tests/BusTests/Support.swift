import EmbeddedLog
import EventLog
import EventSchemas
import Foundation
import TestSupport
import Testing

/// The catalog of the repository, loaded once.
let repositoryCatalog: TopicCatalog = {
    do {
        return try TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    } catch {
        fatalError("Topics/ does not load: \(error)")
    }
}()

/// A temporary directory with an embedded log in it, removed by `tearDown`.
struct TemporaryBus {
    let directory: URL
    let path: String
    let log: EmbeddedLog

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-bus-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("bus.sqlite").path
        log = try EmbeddedLog(path: path)
    }

    func tearDown() async {
        await log.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// What a finished process printed.
struct ProcessResult: Sendable {
    let status: Int32
    let output: String
    let error: String
}

/// Starts `onewindow` with arguments, in the repository root (so ./Topics is found) unless
/// `directory` says otherwise, with `environment` added to (or, for an empty value, removed from)
/// the test's own.
func startOnewindow(
    _ arguments: [String], input: Data? = nil, environment: [String: String] = [:], directory: URL? = nil
) throws -> (ChildProcess, Pipe, Pipe) {
    let process = childProcess(try onewindowExecutable(), arguments)
    process.currentDirectoryURL = directory ?? repositoryRoot
    if !environment.isEmpty {
        var merged = ProcessInfo.processInfo.environment
        for (name, value) in environment { merged[name] = value.isEmpty ? nil : value }
        process.environment = merged
    }
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    process.standardInput = try input.map(standardInput) ?? FileHandle.nullDevice
    try process.run()
    return (process, output, error)
}

/// Runs `onewindow` to the end and returns what it printed.
func runOnewindow(
    _ arguments: [String], input: Data? = nil, environment: [String: String] = [:], directory: URL? = nil,
    timeout: Duration = .seconds(60)
) async throws -> ProcessResult {
    let (process, output, error) = try startOnewindow(
        arguments, input: input, environment: environment, directory: directory)
    return await finish(process, output, error, timeout: timeout)
}

/// Waits for the process (killing it after `timeout`) and returns what it printed as text.
func finish(_ process: ChildProcess, _ output: Pipe, _ error: Pipe, timeout: Duration = .seconds(60)) async
    -> ProcessResult
{
    let result = await collect(process, output: output, error: error, timeout: timeout)
    return ProcessResult(
        status: result.status, output: String(decoding: result.output, as: UTF8.self),
        error: String(decoding: result.error, as: UTF8.self))
}

func readAll(_ log: any EventLog, topic: String) async throws -> [LogRecord] {
    try await readTopic(log, topic)
}
