import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Orchestrator
import OrchestratorService
import Synchronization
import TestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The repository's catalog, loaded once.
let catalog: TopicCatalog = {
    do {
        return try TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    } catch {
        fatalError("Topics/ does not load: \(error)")
    }
}()

/// The house transfer's steps (Rules/workflows/house-transfer.yaml), each a request id
/// `APPLICATION/request/STEP/1` and a decision of its department.
let houseTransferSteps = ["contract-filing", "valuation", "tax-clearance", "registration"]

/// A steady stream of house-transfer applications, as a window clerk submits them: nine in ten
/// through the gateway's front desk (`POST /applications`), one in ten with `onewindow publish`
/// (a given event id, `publish/APPLICATION`). A submission is retried until it is accepted, however
/// long the gateway or the bus is away: a refused connection, a 5xx, a time-out or a failed
/// command is tried again 200 ms later. An answer the client did not get may leave the application
/// on the bus and be sent again: the orchestrator takes a repeated submission with the same content
/// as the same application (counted by application id, ``Ledger``).
final class ApplicationLoad: Sendable {
    private struct State {
        var accepted: [String] = []
        var retries = 0
        var refused: [String] = []
        var stopping = false
    }
    private let state = Mutex(State())
    let world: UnsafeWorld
    let session = URLSession(configuration: .ephemeral)

    init(world: LoadWorld) { self.world = UnsafeWorld(world) }

    /// The application ids accepted so far (202 from the gateway, exit 0 from `onewindow publish`).
    var accepted: [String] { state.withLock { $0.accepted } }
    /// Attempts that failed and were tried again.
    var retries: Int { state.withLock { $0.retries } }
    /// Submissions answered with a 4xx: a bug in the test or the gateway, never retried.
    var refused: [String] { state.withLock { $0.refused } }

    /// Asks ``run(first:count:perSecond:)`` to return after the submission under way (rather than
    /// cancelling it half-way, which would leave its outcome unknown).
    func stop() { state.withLock { $0.stopping = true } }
    private var stopping: Bool { state.withLock { $0.stopping } }

    static func applicationId(_ number: Int) -> String { String(format: "HT-2026-%06d", 500_000 + number) }

    /// A valid application body: the catalog's example with its own number, submitted now.
    static func body(_ id: String) -> JSONValue {
        var application = catalog.schemas["application.house-transfer.submitted"]!.examples.first!
        application.set(.string(id), at: "/applicationId")
        application.set(.string(ChinaTime.rfc3339(Date())), at: "/submittedAt")
        return application
    }

    /// Submits `count` applications (numbers from `first`), `perSecond` a second at most, each until
    /// accepted; returns when all are, or after ``stop()``.
    func run(first: Int = 1, count: Int = 1_000_000, perSecond: Double) async {
        let interval = Duration.milliseconds(Int64(1000 / perSecond))
        let clock = ContinuousClock()
        var next = clock.now
        for number in first..<(first + count) {
            if stopping { return }
            let id = Self.applicationId(number)
            // Made once: a retry sends the very same application, as a clerk's client would (the
            // orchestrator refuses one application number with two contents).
            let application = Self.body(id)
            while true {
                let outcome = number.isMultiple(of: 10) ? await publish(id, application) : await post(id, application)
                if outcome { break }
                state.withLock { $0.retries += 1 }
                try? await Task.sleep(for: .milliseconds(200))
            }
            next = next.advanced(by: interval)
            if next > clock.now { try? await Task.sleep(until: next, clock: clock) } else { next = clock.now }
        }
    }

    /// One POST to the front desk; whether it was accepted (a 4xx is recorded and counts as done).
    private func post(_ id: String, _ application: JSONValue) async -> Bool {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(world.value.gatewayPort)/applications")!)
        request.httpMethod = "POST"
        request.timeoutInterval = 5
        request.setValue("Bearer \(world.value.frontDeskKey)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let body: JSONValue = .object(["workflow": .string("house-transfer"), "application": application])
        request.httpBody = body.serialized()
        do {
            let (data, response) = try await session.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            if status == 202 {
                state.withLock { $0.accepted.append(id) }
                return true
            }
            if (400..<500).contains(status) {
                state.withLock { $0.refused.append("\(id): \(status) \(String(decoding: data, as: UTF8.self))") }
                return true
            }
            return false
        } catch {
            return false
        }
    }

    /// `onewindow publish` of the application with the event id `publish/ID` (the same id on a retry).
    private func publish(_ id: String, _ application: JSONValue) async -> Bool {
        let file = world.value.directory.appendingPathComponent("publish-\(id).json")
        do {
            try application.serialized().write(to: file)
            let result = try await world.value.run(
                ["publish", "--type", "application.house-transfer.submitted", "--id", "publish/\(id)", file.path]
                    + world.value.busArguments)
            guard result.status == 0 else { return false }
            state.withLock { $0.accepted.append(id) }
            return true
        } catch {
            return false
        }
    }
}

/// A ``LoadWorld`` handed to the load's task: the world is used from the test's task and the load's
/// task at once, but the load only reads its constants and runs one-shot commands.
struct UnsafeWorld: @unchecked Sendable {
    let value: LoadWorld
    init(_ value: LoadWorld) { self.value = value }
}

/// The text at `pointer` in a record's body, `?` when it has none.
func bodyField(_ record: LogRecord, _ pointer: String) -> String {
    ((try? JSONValue.parse(record.value))?[pointer: pointer]?.stringValue) ?? "?"
}

/// The topics a ``Ledger`` counts.
let countedTopics = [
    "application.house-transfer.submitted", "approval.real-estate.requested", "approval.tax.requested",
    "approval.real-estate.decided", "approval.tax.decided", "notification.sms.requested", "tax.payment.received",
    "household.birth.registered", "household.death.registered", catalog.deadLetterTopic,
]

/// Every record of `topics` on the world's bus, read as a consumer group of its own until nothing
/// came for two seconds after the last record (or `limit`).
func census(_ log: any EventLog, topics: [String] = countedTopics, limit: Duration = .seconds(90)) async throws
    -> [String: [LogRecord]]
{
    let consumer = try await log.makeConsumer(.group("census-\(UUID().uuidString.prefix(8))", topics: topics))
    var records: [String: [LogRecord]] = [:]
    var quiet = 0
    var heard = false
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline, !(heard && quiet >= 10) {
        let batch = try await consumer.poll(maxRecords: 5000, timeout: .milliseconds(200))
        for record in batch { records[record.topic, default: []].append(record) }
        if batch.isEmpty { quiet += 1 } else { heard = true; quiet = 0 }
    }
    await consumer.close()
    return records
}

/// The count after a run: what was expected, what is on the topics and in the departments'
/// databases and the orchestrator's store, by event id and application id.
///
/// - **lost**: an expected thing with no event (an application accepted but not on its topic, a
///   request, decision or notification missing, a department row not published, an application
///   not completed, a request not in the department's inbox, a text message not in the SMS outbox);
/// - **duplicated**: one thing under two event ids (two requests for one step, two decisions for one
///   request, an application submitted twice under two ids), or one id with two different bodies.
///
/// The same id on a topic more than once with the same body is not a duplicate: a process killed
/// after appending and before recording it appends again, and every reader drops a repeated id
/// (the orchestrator by its applied ids, the departments by their inbox's key, the SMS outbox by
/// its key). Those copies are counted (``copies``) and the departments' tables prove they were
/// dropped.
struct Ledger {
    struct Line {
        var what: String
        var expected: Int
        var found: Int
        var lost: [String] = []
        var duplicated: [String] = []
        var copies = 0
    }
    var lines: [Line] = []
    var deadLetters: [String] = []

    var lost: Int { lines.map(\.lost.count).reduce(0, +) }
    var duplicated: Int { lines.map(\.duplicated.count).reduce(0, +) }
    var copies: Int { lines.map(\.copies).reduce(0, +) }

    /// Everything wrong, for a failure message.
    var problems: [String] {
        lines.flatMap { line in
            line.lost.prefix(5).map { "\(line.what): lost \($0)" } + line.duplicated.prefix(5).map { "\(line.what): duplicated \($0)" }
        } + deadLetters.prefix(5).map { "dead-lettered: \($0)" }
    }

    /// The ledger as a markdown table.
    var table: String {
        var rows = ["| what | expected | found | lost | duplicated | repeated copies dropped by id |", "|---|---:|---:|---:|---:|---:|"]
        for line in lines {
            rows.append("| \(line.what) | \(line.expected) | \(line.found) | \(line.lost.count) | \(line.duplicated.count) | \(line.copies) |")
        }
        return rows.joined(separator: "\n")
    }

    /// Counts a world after its processes stopped. `applications`: the ids the load had accepted;
    /// `departmentEvents`: the births and deaths a ``DepartmentEventLoad`` sent, counted by resident
    /// ID (two event ids for one resident is a duplicate; an event the load never sent is one too).
    init(world: LoadWorld, applications: [String], departmentEvents: DepartmentEventLoad? = nil) async throws {
        let log = try world.reader()
        let records = try await census(log)
        await log.close()

        func byId(_ topics: [String]) -> (first: [String: LogRecord], copies: Int, conflicting: [String]) {
            var first: [String: LogRecord] = [:]
            var copies = 0
            var conflicting: [String] = []
            for record in topics.flatMap({ records[$0] ?? [] }) {
                let id = record.header("ce_id") ?? "?"
                if let earlier = first[id] {
                    copies += 1
                    if earlier.value != record.value { conflicting.append("\(id) (two bodies)") }
                } else {
                    first[id] = record
                }
            }
            return (first, copies, conflicting)
        }
        let expectedApplications = Set(applications)

        // Applications: by application id; two event ids for one application is a duplicate.
        let submitted = byId(["application.house-transfer.submitted"])
        var eventsOfApplication: [String: [String]] = [:]
        for (id, record) in submitted.first { eventsOfApplication[bodyField(record, "/applicationId"), default: []].append(id) }
        lines.append(
            Line(
                what: "applications submitted (by application id)", expected: expectedApplications.count,
                found: eventsOfApplication.count,
                lost: expectedApplications.subtracting(eventsOfApplication.keys).sorted(),
                duplicated: eventsOfApplication.filter { $0.value.count > 1 }.map { "\($0.key): \($0.value.sorted())" }.sorted()
                    + submitted.conflicting,
                copies: submitted.copies))

        // Requests: one id per step, APPLICATION/request/STEP/1.
        let requests = byId(["approval.real-estate.requested", "approval.tax.requested"])
        let expectedRequests = Set(expectedApplications.flatMap { app in houseTransferSteps.map { "\(app)/request/\($0)/1" } })
        lines.append(
            Line(
                what: "approval requests emitted (by event id)", expected: expectedRequests.count,
                found: requests.first.count, lost: expectedRequests.subtracting(requests.first.keys).sorted(),
                duplicated: Set(requests.first.keys).subtracting(expectedRequests).sorted() + requests.conflicting,
                copies: requests.copies))

        // Requests as the departments received them: one inbox row per request.
        var inbox: [String: Int] = [:]
        for department in ["real-estate", "tax"] {
            let queue = try sharedDatabase(world.departmentDatabase(department))
            for row in try await queue.read({ db in
                try Row.fetchAll(db, sql: "SELECT application_id, item, count(*) AS n FROM approval_inbox GROUP BY 1, 2")
            }) {
                let copies: Int = row["n"]
                inbox["\(row["application_id"] as String) \(row["item"] as String)"] = copies
            }
        }
        let itemOfStep = [
            "contract-filing": "contract-filing", "valuation": "valuation", "tax-clearance": "tax-assessment-clearance",
            "registration": "transfer-registration",
        ]
        let expectedItems = Set(expectedApplications.flatMap { app in houseTransferSteps.map { "\(app) \(itemOfStep[$0]!)" } })
        lines.append(
            Line(
                what: "requests in the departments' inboxes", expected: expectedItems.count, found: inbox.count,
                lost: expectedItems.subtracting(inbox.keys).sorted(),
                duplicated: inbox.filter { $0.value > 1 }.map { "\($0.key) ×\($0.value)" }.sorted()))

        // Decisions: one decision id per request.
        let decisions = byId(["approval.real-estate.decided", "approval.tax.decided"])
        var decisionsOf: [String: [String]] = [:]
        for (id, record) in decisions.first {
            decisionsOf["\(bodyField(record, "/applicationId")) \(bodyField(record, "/item"))", default: []].append(id)
        }
        lines.append(
            Line(
                what: "decisions published (by request)", expected: expectedItems.count, found: decisionsOf.count,
                lost: expectedItems.subtracting(decisionsOf.keys).sorted(),
                duplicated: decisionsOf.filter { $0.value.count > 1 }.map { "\($0.key): \($0.value.sorted())" }.sorted()
                    + decisions.conflicting,
                copies: decisions.copies))

        // Notifications: received and completed, APPLICATION/sms/MOMENT; others (SLA) counted apart.
        let notifications = byId(["notification.sms.requested"])
        let expectedNotifications = Set(expectedApplications.flatMap { ["\($0)/sms/received", "\($0)/sms/completed"] })
        let otherNotifications = Set(notifications.first.keys).subtracting(expectedNotifications)
        lines.append(
            Line(
                what: "notifications emitted (by event id)", expected: expectedNotifications.count,
                found: notifications.first.count - otherNotifications.count,
                lost: expectedNotifications.subtracting(notifications.first.keys).sorted(),
                duplicated: notifications.conflicting, copies: notifications.copies))

        // Text messages in the SMS gateway's outbox: one row per notification.
        let sms = try sharedDatabase(world.departmentDatabase("sms-gateway"))
        let outbox = try await sms.read { db in try String.fetchAll(db, sql: "SELECT event_id FROM sms_outbox") }
        lines.append(
            Line(
                what: "text messages in the SMS outbox", expected: notifications.first.count, found: outbox.count,
                lost: Set(notifications.first.keys).subtracting(outbox).sorted(),
                duplicated: Dictionary(grouping: outbox, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()))

        // Applications completed, in the orchestrator's store and notified.
        let store = try OrchestratorStore(path: world.storePath)
        var completed = 0
        var notCompleted: [String] = []
        for id in expectedApplications.sorted() {
            if let state = try store.findCase(id)?.state, state.status == .completed {
                completed += 1
            } else {
                notCompleted.append("\(id) (\(try store.findCase(id)?.state.status.rawValue ?? "no case"))")
            }
        }
        lines.append(
            Line(what: "applications completed", expected: expectedApplications.count, found: completed, lost: notCompleted))

        // Department events: every payment row of the tax simulator, tax/tax_payments/ID/VERSION.
        let tax = try sharedDatabase(world.departmentDatabase("tax"))
        let rows = try await tax.read { db in
            try String.fetchAll(db, sql: "SELECT 'tax/tax_payments/' || id || '/' || version FROM tax_payments")
        }
        let payments = byId(["tax.payment.received"])
        let paymentIds = Set(payments.first.keys.filter { $0.hasPrefix("tax/tax_payments/") })
        lines.append(
            Line(
                what: "department events (tax payment rows)", expected: rows.count, found: paymentIds.count,
                lost: Set(rows).subtracting(paymentIds).sorted(),
                duplicated: paymentIds.subtracting(rows).sorted() + payments.conflicting, copies: payments.copies))

        // Department events pushed through a webhook source and a file-drop source, by resident ID.
        if let departmentEvents {
            for (what, topic, pointer, sent) in [
                ("department events by webhook (births, by child's resident ID)", "household.birth.registered",
                 "/child/residentId", departmentEvents.births),
                ("department events by file drop (deaths, by resident ID)", "household.death.registered", "/residentId",
                 departmentEvents.deaths),
            ] {
                let events = byId([topic])
                var eventsOf: [String: [String]] = [:]
                for (id, record) in events.first { eventsOf[bodyField(record, pointer), default: []].append(id) }
                let expected = Set(sent)
                lines.append(
                    Line(
                        what: what, expected: expected.count, found: expected.intersection(eventsOf.keys).count,
                        lost: expected.subtracting(eventsOf.keys).sorted(),
                        duplicated: eventsOf.filter { $0.value.count > 1 }.map { "\($0.key): \($0.value.sorted())" }.sorted()
                            + Set(eventsOf.keys).subtracting(expected).map { "\($0) (never sent)" }.sorted()
                            + events.conflicting,
                        copies: events.copies))
            }
        }

        deadLetters = (records[catalog.deadLetterTopic] ?? []).map {
            "\($0.header("dl_original_topic") ?? "?") \($0.header("ce_id") ?? "?") (\($0.header("dl_refused_by") ?? "?")): \($0.header("dl_reason") ?? "?")"
        }
    }
}
