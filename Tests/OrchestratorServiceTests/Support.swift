import Bus
import CivilTime
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import KafkaLog
import Orchestrator
import OrchestratorService
import SharedView
import TestSupport
import Testing

/// The repository's catalog, calendar and rules, loaded once.
enum Repo {
    static let catalog: TopicCatalog = try! TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    static let rulesDirectory = repositoryRoot.appendingPathComponent("Rules")
    static let calendar: WorkingDayCalendar = try! WorkingDayCalendar.load(
        from: rulesDirectory.appendingPathComponent("calendar.yaml"))
    static let rules: RuleBook = {
        do {
            return try RuleBook.load(directory: rulesDirectory, catalog: catalog)
        } catch {
            fatalError("the repository's rules do not load:\n\(error)")
        }
    }()
    /// The shared data view's kinds (Rules/shared-view.yaml), where `sharedFact:` materials are found.
    static let view: ViewRules = try! ViewRules.load(
        path: rulesDirectory.appendingPathComponent(ViewRules.fileName).path, catalog: catalog)

    /// A China-time instant: `at("2026-03-02", 9)`.
    static func at(_ day: String, _ hour: Int = 9, _ minute: Int = 0) -> Date {
        CivilDate(day)!.chinaTime(hour: hour, minute: minute)
    }

    /// A valid restaurant application; `area`, `seats` and `sign` switch the fire and signboard steps.
    static func restaurant(
        id: String, submitted: Date = at("2026-03-02", 9, 20), area: Double = 120, seats: Int = 48, sign: Bool = true
    ) -> JSONValue {
        RestaurantExample.application(id: id, submitted: submitted, area: area, seats: seats, sign: sign)
    }
}

/// An embedded bus in a temporary file, a real store beside it, a test clock and an engine; the
/// steps of the services (poll–apply–commit, relay, timers) are called one at a time.
final class Bench: Sendable {
    let directory: URL
    let log: any EventLog
    let clock: TestWallClock
    let publisher: Publisher
    let storePath: String
    /// The Kafka broker of this bench's own (`nil` on the embedded log).
    let broker: TestBroker?

    /// - Parameter kafka: on the Kafka test broker (`ONEWINDOW_TEST_KAFKA`) instead of an embedded log.
    init(start: Date = Repo.at("2026-03-02", 9, 30), kafka: Bool = false) async throws {
        // On Kafka, a broker of its own: the service reads every department's topic.
        (directory, log, broker) = try await serviceTestBus(
            prefix: "onewindow-orch", kafka: kafka, topics: Repo.catalog.topicSpecs)
        clock = TestWallClock(start)
        publisher = Publisher(log: log, catalog: Repo.catalog, name: "test", clock: clock)
        storePath = directory.appendingPathComponent("orchestrator.sqlite").path
    }

    deinit {
        broker?.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// An engine on the store (opened again each time: a restart).
    func engine(rules: RuleBook = Repo.rules, store: String? = nil) throws -> OrchestratorEngine {
        try OrchestratorEngine(
            store: OrchestratorStore(path: store ?? storePath), rules: rules, calendar: Repo.calendar, log: log,
            catalog: Repo.catalog, clock: clock)
    }

    /// Publishes an application.
    @discardableResult
    func submit(_ body: JSONValue, type: String = "application.restaurant.submitted") async throws -> Event {
        let event = Event(
            id: "submit-\(body[pointer: "/applicationId"]!.stringValue!)", type: type, source: "test-window",
            subject: nil, time: clock.now(), data: body.serialized())
        return try await publisher.publish(event).1
    }

    /// Approves the approval request `event` at once, as a department would (the decision's id
    /// derived from the request's, so a repeated request gets a repeated decision).
    @discardableResult
    func approve(request event: Event) async throws -> Event {
        let body = event.body
        return try await decide(
            body[pointer: "/applicationId"]!.stringValue!, body[pointer: "/department"]!.stringValue!,
            body[pointer: "/item"]!.stringValue!, id: "re-\(event.id)")
    }

    /// Publishes a department's decision.
    @discardableResult
    func decide(
        _ applicationId: String, _ department: String, _ item: String, outcome: String = "approved", id: String? = nil
    ) async throws -> Event {
        let body = RestaurantExample.decision(
            applicationId: applicationId, department: department, item: item, outcome: outcome, decidedAt: clock.now())
        let event = Event(
            id: id ?? "decision-\(applicationId)-\(item)-\(outcome)", type: "approval.decided",
            source: "test-\(department)",
            subject: nil, time: clock.now(), data: body.serialized())
        return try await publisher.publish(event).1
    }

    /// Everything on a topic, de-duplicated by event id when asked.
    func events(_ topic: String, deduplicate: Bool = false) async throws -> [Event] {
        var seen = Set<String>()
        return try await readTopic(log, topic).map { try CloudEventsBinding.event(from: $0) }.filter {
            !deduplicate || seen.insert($0.id).inserted
        }
    }

    /// Every approval request on every department's topic.
    func requests() async throws -> [Event] {
        var all: [Event] = []
        for topic in Repo.catalog.topics(carrying: "approval.requested") { all += try await events(topic.name) }
        return all
    }

    /// Polls the orchestrator's group until nothing is left, applying each batch and committing
    /// it, then relays the outbox: what `runConsumer` and `runRelay` do, one step at a time.
    @discardableResult
    func pump(_ engine: OrchestratorEngine) async throws -> BatchOutcome {
        let total = try await apply(engine)
        while try await engine.relayOnce() > 0 {}
        return total
    }

    /// `pump` without the relay: every input waiting is applied and committed, and what it
    /// emitted stays in the outbox, unsent (for tests of the relay itself).
    @discardableResult
    func apply(_ engine: OrchestratorEngine) async throws -> BatchOutcome {
        let consumer = try await log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        var total = BatchOutcome()
        while true {
            let records = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(50))
            if records.isEmpty { break }
            total.add(try await engine.process(records))
            try await consumer.commit(records)
        }
        await consumer.close()
        return total
    }

    /// A responder that approves every request not answered yet, at once.
    func approveAll(answered: inout Set<String>, except: Set<String> = []) async throws -> Int {
        var count = 0
        for request in try await requests() where !answered.contains(request.id) {
            let body = try JSONValue.parse(request.data)
            let department = body[pointer: "/department"]!.stringValue!
            let item = body[pointer: "/item"]!.stringValue!
            answered.insert(request.id)
            if except.contains(item) { continue }
            try await decide(body[pointer: "/applicationId"]!.stringValue!, department, item, id: "re-\(request.id)")
            count += 1
        }
        return count
    }
}

/// Waits (up to a minute) until the orchestrator instances of one group hold disjoint partitions
/// that together are every partition of the input topics, and then a second more with the same
/// holdings (no rebalance still under way). Cases do not move with a partition yet, so an
/// application must start in the instance that keeps its partition: one submitted while a member
/// still reads with the assignment of the generation before (it has not polled since the other
/// joined; its in-flight batch's offsets are not committed yet) is applied in both stores.
/// `held` reads each instance's partitions (`nil` for one that holds none yet).
/// - Returns: each instance's partitions as they settled; an issue is recorded when they did not.
func settledPartitions(_ held: () -> [Set<Int>?]) async throws -> [Set<Int>] {
    let count = try #require(
        Repo.catalog.topicSpecs.first { $0.name == "application.restaurant.submitted" }?.partitions)
    func settled(_ now: [Set<Int>?]) -> [Set<Int>]? {
        let sets = now.compactMap { $0 }
        guard sets.count == now.count, sets.allSatisfy({ !$0.isEmpty }),
            sets.reduce(0, { $0 + $1.count }) == count, Set(sets.joined()).count == count
        else { return nil }
        return sets
    }
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
        if let sets = settled(held()) {
            try await Task.sleep(for: .seconds(1))
            if held() == sets { return sets }
        } else {
            try await Task.sleep(for: .milliseconds(100))
        }
    }
    Issue.record("the group's partitions did not settle in a minute: \(held())")
    return held().compactMap { $0 }
}

/// Polls the orchestrator's group until `count` records are read (not committed).
func poll(_ consumer: any LogConsumer, _ count: Int) async throws -> [LogRecord] {
    var records: [LogRecord] = []
    for _ in 0..<100 where records.count < count {
        records += try await consumer.poll(maxRecords: count - records.count, timeout: .milliseconds(100))
    }
    #expect(records.count == count)
    return records
}

extension Event {
    var body: JSONValue { try! JSONValue.parse(data) }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
