import Bus
import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import Orchestrator
import OrchestratorService
import Synchronization
import TestSupport
import Testing

/// `onewindow orchestrator run` as a child process of a test, its standard error in a file of
/// the bench's folder (read with ``logText``).
final class OrchestratorProcess: Sendable {
    let process: ChildProcess
    let logFile: URL

    /// Starts `onewindow orchestrator run` on `bus` with `store`, the repository's catalog and
    /// rules, and `arguments` after them (`--session-timeout`, `--log-level`…).
    /// - Parameter readOnly: run it as a process that cannot write in these folders
    ///   (``ReadOnlyFiles``: as user nobody when the tests run as root); `nil`: as this process.
    init(
        executable: URL, bus: String, store: String, logFile: URL, arguments: [String] = [], readOnly: [URL]? = nil
    ) throws {
        let all =
            [
                "orchestrator", "run", "--bus", bus, "--store", store, "--catalog",
                repositoryRoot.appendingPathComponent("Topics").path, "--rules", Repo.rulesDirectory.path,
            ] + arguments
        let (program, programArguments) =
            readOnly.map { ReadOnlyFiles.command(executable, all, readOnly: $0) } ?? (executable, all)
        process = childProcess(program, programArguments)
        self.logFile = logFile
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        try handle.seekToEnd()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = handle
        try process.run()
    }

    /// What it wrote on standard error so far.
    var logText: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// The partition numbers its last `holding partitions` notice named (`nil` before the first).
    var heldPartitions: Set<Int>? {
        guard let line = logText.split(separator: "\n").last(where: { $0.contains("holding partitions ") }),
            let range = line.range(of: "holding partitions ")
        else { return nil }
        return Set(line[range.upperBound...].split(separator: ",").compactMap { Int($0) })
    }

    /// SIGKILL, and the exit awaited.
    func kill9() async throws {
        kill(process.processIdentifier, SIGKILL)
        try await waitForExit(process, timeout: .seconds(10))
    }

    /// SIGTERM, and the exit status once it stopped.
    func stop(timeout: Duration = .seconds(30)) async throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        try await waitForExit(process, timeout: timeout)
        return process.terminationStatus
    }
}

/// The departments of a test, in the test's process: reads every department's request topic and
/// the SMS topic as a consumer group of its own, keeps every request and notification it sees
/// (repeats included), and approves each request the first time its id is seen, with one batch
/// of decisions per poll (decision ids derived from request ids, so a repeated request could only
/// repeat a decision the orchestrator drops).
final class Responder: Sendable {
    /// One event as the responder saw it.
    struct Seen: Sendable {
        var id: String
        var type: String
        var data: Data
    }

    private struct State {
        var seen: [Seen] = []
        var answered: Set<String> = []
        var completed: Set<String> = []
    }

    private let state = Mutex(State())
    private let consumer: any LogConsumer
    private let publisher: Publisher
    private let clock: TestWallClock

    init(bench: Bench, group: String) async throws {
        let watched = Repo.catalog.topics(carrying: "approval.requested").map(\.name) + ["notification.sms.requested"]
        consumer = try await bench.log.makeConsumer(.group(group, topics: watched))
        publisher = bench.publisher
        clock = bench.clock
    }

    /// Every request and notification seen so far, repeats included, in the order seen.
    var seen: [Seen] { state.withLock { $0.seen } }

    /// How many distinct applications have their completion notification (template
    /// `application-completed`).
    var completedCount: Int { state.withLock { $0.completed.count } }

    /// One poll: records what came and approves the requests not answered yet.
    /// - Returns: how many records came.
    @discardableResult
    func round(timeout: Duration = .milliseconds(100)) async throws -> Int {
        let records = try await consumer.poll(maxRecords: 1000, timeout: timeout)
        var decisions: [Publication] = []
        for record in records {
            let event = try CloudEventsBinding.event(from: record)
            let first = state.withLock { state in
                state.seen.append(Seen(id: event.id, type: event.type, data: event.data))
                if event.type == "notification.sms.requested",
                    event.body[pointer: "/template"]?.stringValue == "application-completed"
                {
                    state.completed.insert(event.id)
                }
                return event.type == "approval.requested" && state.answered.insert(event.id).inserted
            }
            guard first else { continue }
            let body = event.body
            let item = body[pointer: "/item"]!.stringValue!
            let decision: JSONValue = .object([
                "applicationId": body[pointer: "/applicationId"]!, "department": body[pointer: "/department"]!,
                "item": .string(item), "decision": "approved", "decidedAt": .string(ChinaTime.rfc3339(clock.now())),
                "decidedBy": "XX-0417", "licenceNumber": .string("LIC-\(item)"),
            ])
            decisions.append(
                Publication(
                    event: Event(
                        id: "re-\(event.id)", type: "approval.decided", source: "test-responder", subject: nil,
                        time: clock.now(), data: decision.serialized())))
        }
        if !decisions.isEmpty {
            let outcomes = try await publisher.publish(decisions, deadLetter: false)
            for case .deadLettered(_, let failure) in outcomes { Issue.record("a decision was refused: \(failure)") }
        }
        if !records.isEmpty { try await consumer.commit(records) }
        return records.count
    }

    func close() async { await consumer.close() }
}

/// The exactly-once check of what the orchestrator emitted, from what a reader saw.
///
/// A relay that crashed after publishing and before marking its rows sent publishes the same ids
/// again, and readers drop them by id: so a repeated *id* with the same body is allowed (and
/// counted in ``repeatedDeliveries``); what is not allowed is a missing request or notification, an
/// unexpected one, one id with two different bodies, or two ids for one request (application,
/// step) or one notification (application, named moment).
struct EmissionCheck {
    /// Every problem found, each naming the application and what is wrong.
    var problems: [String] = []
    /// Deliveries of an id seen before (the relay's republishing after a crash).
    var repeatedDeliveries = 0
    var distinctRequests = 0
    var distinctNotifications = 0

    /// - Parameters:
    ///   - applications: the application ids expected, each approved in every step of `steps`.
    ///   - steps: the steps each application must have had one request for.
    ///   - moments: the notification templates each application must have had one of.
    init(_ seen: [Responder.Seen], applications: [String], steps: [Step], moments: [String]) {
        var bodies: [String: Data] = [:]
        var requests: [String: Set<String>] = [:]  // "application item" -> ids
        var notifications: [String: Set<String>] = [:]  // "application template" -> ids
        for event in seen {
            if let body = bodies[event.id] {
                repeatedDeliveries += 1
                if body != event.data { problems.append("\(event.id) was published twice with different bodies") }
                continue
            }
            bodies[event.id] = event.data
            let json = try? JSONValue.parse(event.data)
            let application = json?[pointer: "/applicationId"]?.stringValue ?? "?"
            if event.type == "approval.requested" {
                let item = json?[pointer: "/item"]?.stringValue ?? "?"
                requests["\(application) \(item)", default: []].insert(event.id)
            } else {
                let template = json?[pointer: "/template"]?.stringValue ?? "?"
                notifications["\(application) \(template)", default: []].insert(event.id)
            }
        }
        distinctRequests = requests.values.map(\.count).reduce(0, +)
        distinctNotifications = notifications.values.map(\.count).reduce(0, +)
        var expectedRequests = Set<String>()
        var expectedNotifications = Set<String>()
        for application in applications {
            for step in steps { expectedRequests.insert("\(application) \(step.item)") }
            for moment in moments { expectedNotifications.insert("\(application) \(moment)") }
        }
        for (what, expected, got) in [
            ("request", expectedRequests, requests), ("notification", expectedNotifications, notifications),
        ] {
            for key in expected.subtracting(got.keys).sorted().prefix(10) { problems.append("no \(what) for \(key)") }
            for key in Set(got.keys).subtracting(expected).sorted().prefix(10) {
                problems.append("an unexpected \(what) for \(key)")
            }
            for (key, ids) in got where ids.count > 1 {
                problems.append("\(ids.count) \(what)s for \(key): \(ids.sorted())")
            }
        }
    }
}
