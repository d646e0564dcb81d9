import EventLog
import Foundation
import GRDB
import OrchestratorService
import TestSupport

/// Follows a running world from the outside: applications completed (the orchestrator's store),
/// tax payment rows written and published, notifications emitted and queued in the SMS outbox, and
/// the births and deaths of a ``DepartmentEventLoad`` published (by resident ID).
final class Progress {
    let world: LoadWorld
    private let watcher: any LogConsumer
    private var store: OrchestratorStore?
    private(set) var completed: Set<String> = []
    private(set) var published: Set<String> = []
    private(set) var notified: Set<String> = []
    private(set) var births: Set<String> = []
    private(set) var deaths: Set<String> = []

    init(_ world: LoadWorld, log: any EventLog) async throws {
        self.world = world
        watcher = try await log.makeConsumer(
            .group("progress-\(UUID().uuidString.prefix(8))", topics: ["tax.payment.received", "notification.sms.requested", "household.birth.registered", "household.death.registered"]))
    }

    /// Reads what came on the watched topics (up to `timeout`), tolerating a bus that is away.
    func poll(timeout: Duration = .milliseconds(200)) async {
        do {
            for record in try await watcher.poll(maxRecords: 5000, timeout: timeout) {
                let id = record.header("ce_id") ?? "?"
                switch record.topic {
                case "tax.payment.received": published.insert(id)
                case "household.birth.registered": births.insert(bodyField(record, "/child/residentId"))
                case "household.death.registered": deaths.insert(bodyField(record, "/residentId"))
                default: notified.insert(id)
                }
            }
        } catch {
            try? await Task.sleep(for: timeout)
        }
    }

    /// How many of `applications` the store has completed now.
    func completedCount(of applications: [String]) throws -> Int {
        if store == nil {
            guard FileManager.default.fileExists(atPath: world.storePath) else { return 0 }
            store = try OrchestratorStore(path: world.storePath)
        }
        for id in applications where !completed.contains(id) {
            if try store?.findCase(id)?.state.status == .completed { completed.insert(id) }
        }
        return applications.filter(completed.contains).count
    }

    /// Rows in a department table now.
    func rows(_ department: String, _ table: String) throws -> Int {
        let queue = try sharedDatabase(world.departmentDatabase(department))
        return try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }
    }

    /// Waits until every one of `applications` is completed, every tax payment row is published
    /// and every notification is in the SMS outbox, and every one of `departmentEvents`' births and
    /// deaths is published, or `limit` passed; whether it all happened.
    func drained(_ applications: [String], departmentEvents: DepartmentEventLoad? = nil, limit: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        var checked = ContinuousClock.now - .seconds(1)
        while ContinuousClock.now < deadline {
            await poll()
            guard ContinuousClock.now - checked >= .milliseconds(500) else { continue }
            checked = ContinuousClock.now
            if try completedCount(of: applications) == applications.count,
                try rows("tax", "tax_payments") <= published.count,
                try rows("sms-gateway", "sms_outbox") >= notified.count,
                // Each application's own two notifications seen on the bus (a count was met early
                // by the births' and deaths' notifications: a case is completed in the store before
                // its relay publishes the completion's notification, and the outbox was counted
                // against a bus read up to before it, so four completions' texts were not in it yet).
                applications.allSatisfy({
                    notified.contains("\($0)/sms/received") && notified.contains("\($0)/sms/completed")
                }),
                departmentEvents.map({ births.isSuperset(of: $0.births) && deaths.isSuperset(of: $0.deaths) }) ?? true
            {
                return true
            }
        }
        return false
    }

    func close() async { await watcher.close() }
}
