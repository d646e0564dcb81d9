import EmbeddedLog
import EventLog
import EventSchemas
import Connectors
import Foundation
import ServiceLifecycle
import Testing
import TestSupport

/// The repository's catalog, loaded once.
let catalog: TopicCatalog = {
    do {
        return try TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    } catch {
        fatalError("Topics/ does not load: \(error)")
    }
}()

/// A temporary folder with an embedded log holding the catalog's topics.
struct Bench: Sendable {
    let directory: URL
    let path: String
    let log: EmbeddedLog

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-hostile-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("bus.sqlite").path
        log = try EmbeddedLog(path: path)
        _ = try await log.createTopics(catalog.topicSpecs)
    }

    func file(_ name: String) -> URL { directory.appendingPathComponent(name) }

    func tearDown() async {
        await log.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// What one entry point did with the corpus, and what was wrong with it.
struct Tally: Sendable, CustomStringConvertible {
    var entryPoint: String
    var records = 0
    var accepted = 0
    var refused = 0
    var deadLettered = 0
    var problems: [String] = []

    init(_ entryPoint: String) { self.entryPoint = entryPoint }

    /// A refusal checked against the record's expectation: its code (when the entry point says
    /// one) and the field and rule the reason must name.
    mutating func refusal(_ record: HostileRecord, code: String?, reason: String, deadLettered: Bool) {
        if deadLettered { self.deadLettered += 1 } else { refused += 1 }
        guard !record.expect.accepted else {
            problems.append("\(record.label): refused, expected accepted: \(reason.prefix(300))")
            return
        }
        var wrong: [String] = []
        if let expected = record.expect.code, let code, code != expected { wrong.append("code \(code), expected \(expected)") }
        if let pointer = record.expect.pointer, !pointer.isEmpty, !reason.contains(pointer) {
            wrong.append("the reason does not name \(pointer)")
        }
        if let rule = record.expect.rule, !rule.isEmpty, rule != record.expect.code, !reason.contains(rule) {
            wrong.append("the reason does not name the rule \(rule)")
        }
        if !wrong.isEmpty { problems.append("\(record.label): \(wrong.joined(separator: "; ")): \(reason.prefix(300))") }
    }

    mutating func acceptance(_ record: HostileRecord) {
        accepted += 1
        if !record.expect.accepted {
            problems.append("\(record.label): accepted, expected refused (\(record.expect.code ?? "?") at \(record.expect.pointer ?? "?"))")
        }
    }

    var description: String {
        "\(entryPoint): \(records) record(s), \(accepted) accepted, \(refused) refused, \(deadLettered) dead-lettered"
    }

    /// Fails the test with the first problems, if any.
    func check(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(
            problems.isEmpty, "\(description); \(problems.count) problem(s):\n\(problems.prefix(25).joined(separator: "\n"))",
            sourceLocation: sourceLocation)
    }

    /// One row of the reliability report's table.
    var row: String { "| \(entryPoint) | \(records) | \(accepted) | \(refused) | \(deadLettered) | \(problems.count) |" }
}

/// Writes the figures of a run into RELIABILITY.md's section (under `make reliability` only).
func report(_ part: String, _ tallies: [Tally], seconds: Double) throws {
    let rows = tallies.map(\.row).joined(separator: "\n")
    try ReliabilityRun.report(
        part: part,
        markdown: """
            ### Hostile input: \(tallies.map(\.entryPoint).joined(separator: ", "))

            The corpus of Tests/HostileInput (scripts/hostile-corpus.py, \(HostileCorpus.all.count) records) through \
            each entry point; pass: every bad record refused or dead-lettered with a reason naming its field and rule, \
            every good one once and in order, no crash or stall, and Python reads every accepted record. \
            \(String(format: "%.1f", seconds)) s.

            | entry point | records | accepted | refused | dead-lettered | problems |
            |---|---|---|---|---|---|
            \(rows)

            """)
}

/// Checks that the good records (event ids `ids`, in corpus order) each arrived once on `topic`,
/// and in order within each partition; returns what is wrong.
func arrivedOnceInOrder(_ log: any EventLog, topics: Set<String>, ids: [String]) async throws -> [String] {
    let rank = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
    var seen: [String: Int] = [:]
    var problems: [String] = []
    for topic in topics.sorted() {
        var last: [Int: Int] = [:]
        for record in try await readTopic(log, topic) {
            guard let id = record.header("ce_id"), let position = rank[id] else { continue }
            seen[id, default: 0] += 1
            if let before = last[record.partition], before > position {
                problems.append("\(id) arrived after a later good record on \(topic)/\(record.partition)")
            }
            last[record.partition] = position
        }
    }
    for id in ids where seen[id] != 1 { problems.append("good record \(id) arrived \(seen[id] ?? 0) time(s)") }
    return problems
}

/// Runs Tests/HostileInput/read-embedded-log.py over `topics` of the log: what Python could not
/// read, and how many records it read.
func pythonReads(_ path: String, topics: Set<String>) async throws -> (records: Int, problems: [String]) {
    let script = repositoryRoot.appendingPathComponent("Tests/HostileInput/read-embedded-log.py").path
    let result = try await runProgram("python3", [script, path] + topics.sorted(), timeout: .seconds(60))
    guard result.status == 0, let answer = try? JSONValue.parse(result.output) else {
        return (0, ["the Python reader failed (\(result.status)): \(String(decoding: result.error, as: UTF8.self).prefix(500))"])
    }
    let problems = answer[pointer: "/problems"]?.arrayValue?.compactMap(\.stringValue) ?? []
    return (Int(answer[pointer: "/records"]?.int64Value ?? 0), problems)
}

/// One HTTP/1.1 request on a plain socket, `Connection: close`, headers sent as given (repeats
/// kept, which URLSession folds into one): the status and body, or `nil` when the server closed
/// the connection without an answer. Runs on a thread of its own (blocking socket calls).
func rawPost(port: Int, path: String, headers: [[String]], body: Data) async -> (status: Int, body: Data)? {
    await withCheckedContinuation { continuation in
        Thread {
            continuation.resume(returning: rawPostBlocking(port: port, path: path, headers: headers, body: body))
        }.start()
    }
}

private func rawPostBlocking(port: Int, path: String, headers: [[String]], body: Data) -> (status: Int, body: Data)? {
    guard let socket = try? connectLoopback(port: port, receiveTimeout: 30) else { return nil }
    defer { close(socket) }
    // A server that answers early (a body over its limit) stops reading: a send must not wait forever.
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\n"
    head += "Content-Length: \(body.count)\r\nConnection: close\r\n"
    for header in headers where header.count == 2 { head += "\(header[0]): \(header[1])\r\n" }
    head += "\r\n"
    var request = Data(head.utf8)
    request.append(body)
    var sent = 0
    let complete = request.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) -> Bool in
        while sent < buffer.count {
            // MSG_NOSIGNAL: a server that closes early must not kill the test with SIGPIPE.
            let written = send(socket, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
            if written <= 0 { return false }
            sent += written
        }
        return true
    }
    var response = Data()
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = recv(socket, &chunk, chunk.count, 0)
        if count <= 0 { break }
        response.append(contentsOf: chunk[0..<count])
    }
    _ = complete  // an early close still may carry an answer (431, 413): read whatever came
    guard let separator = response.range(of: Data("\r\n\r\n".utf8)),
        let statusLine = String(data: response[..<separator.lowerBound], encoding: .utf8)?.split(separator: "\r\n").first,
        let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else { return nil }
    let headerText = String(decoding: response[..<separator.lowerBound], as: UTF8.self).lowercased()
    var payload = Data(response[separator.upperBound...])
    if headerText.contains("transfer-encoding: chunked") { payload = dechunk(payload) }
    return (status, payload)
}

/// The body of a chunked HTTP/1.1 response.
private func dechunk(_ data: Data) -> Data {
    var result = Data()
    var rest = data[...]
    while let lineEnd = rest.range(of: Data("\r\n".utf8)) {
        let size = Int(String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? "", radix: 16) ?? 0
        if size == 0 { break }
        let start = lineEnd.upperBound
        guard rest.distance(from: start, to: rest.endIndex) >= size else { break }
        let end = rest.index(start, offsetBy: size)
        result.append(rest[start..<end])
        rest = rest[min(rest.index(end, offsetBy: 2, limitedBy: rest.endIndex) ?? rest.endIndex, rest.endIndex)...]
    }
    return result
}

/// Runs a connector file against the bench's log until `finished` holds (checked every 100 ms) or
/// `seconds` pass, then stops it gracefully; whether `finished` came to hold.
func runConnector(
    _ yaml: String, on bench: Bench, seconds: Int = 60, until finished: @Sendable () async throws -> Bool
) async throws -> Bool {
    let connector = try Connector(
        configuration: try ConnectorConfiguration.parse(yaml, file: "hostile-connector"), log: bench.log, catalog: catalog,
        logger: quiet("hostile-connector"))
    let group = ServiceGroup(services: [connector], logger: quiet("hostile-connector"))
    let running = Task { try await group.run() }
    let deadline = ContinuousClock.now + .seconds(seconds)
    var done = false
    while !done, ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(100))
        done = try await finished()
    }
    await group.triggerGracefulShutdown()
    _ = try? await running.value
    return done
}
