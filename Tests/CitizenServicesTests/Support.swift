import Bus
import CitizenServices
import CivilTime
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import KafkaLog
import Orchestrator
import OrchestratorService
import TestSupport

/// The repository's catalog and rules, loaded once.
enum Repo {
    static let catalog: TopicCatalog = try! TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    static let rulesDirectory = repositoryRoot.appendingPathComponent("Rules")
    static let rules: CitizenServicesRules = {
        do {
            return try CitizenServicesRules.load(directory: rulesDirectory, catalog: catalog)
        } catch {
            fatalError("the repository's rules do not load:\n\(error)")
        }
    }()

    /// A China-time instant: `at("2026-03-02", 9)`.
    static func at(_ day: String, _ hour: Int = 9, _ minute: Int = 0) -> Date {
        CivilDate(day)!.chinaTime(hour: hour, minute: minute)
    }

    /// A valid resident ID number for a birth date and sequence (odd sequence: a man).
    static func residentId(born: String, sequence: Int) -> String {
        let date = CivilDate(born)!
        return ResidentIDNumber.make(region: "440604", birthDate: (date.year, date.month, date.day), sequence: sequence)
    }
}

/// A bus (an embedded log in a temporary file, or a Kafka test broker of its own), a store beside
/// it, a test clock and a publisher playing the departments and the window.
final class Bench: Sendable {
    let directory: URL
    let log: any EventLog
    let clock: TestWallClock
    let publisher: Publisher
    let storePath: String
    let broker: TestBroker?

    init(start: Date = Repo.at("2026-03-02", 9, 30), kafka: Bool = false) async throws {
        // On Kafka, a broker of its own: the service reads every department's topic.
        (directory, log, broker) = try await serviceTestBus(
            prefix: "onewindow-citizen", kafka: kafka, topics: Repo.catalog.topicSpecs)
        clock = TestWallClock(start)
        publisher = Publisher(log: log, catalog: Repo.catalog, name: "test", clock: clock)
        storePath = directory.appendingPathComponent("citizen-services.sqlite").path
    }

    deinit {
        broker?.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// An engine on the store (opened again each time: a restart).
    func engine(rules: CitizenServicesRules = Repo.rules) throws -> CitizenServicesEngine {
        CitizenServicesEngine(store: try CitizenStore(path: storePath), rules: rules, log: log, clock: clock)
    }

    /// Publishes an event with the given id.
    @discardableResult
    func publish(_ type: String, id: String, _ body: JSONValue) async throws -> Event {
        let event = Event(
            id: id, type: type, source: "test-department", subject: nil, time: clock.now(), data: body.serialized())
        return try await publisher.publish(event).1
    }

    /// Reads the engine's topics as `group` from where the group left off (a new group reads
    /// everything: a replay), handles each batch and commits it, then relays the outbox.
    /// - Parameter records: how many records to wait for before an empty poll ends it (a Kafka
    ///   member starts fetching seconds after it joined).
    @discardableResult
    func pump(_ engine: CitizenServicesEngine, group: String = CitizenServicesEngine.group, records expected: Int = 0)
        async throws -> CitizenBatchOutcome
    {
        let consumer = try await log.makeConsumer(.group(group, topics: engine.topics))
        var total = CitizenBatchOutcome()
        var empty = 0
        var read = 0
        // An empty poll ends it once the member holds partitions and read what was expected.
        for _ in 0..<120 where empty < 2 {
            let records = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(broker == nil ? 50 : 500))
            if records.isEmpty {
                if read >= expected, !((try? await consumer.assignment()) ?? []).isEmpty { empty += 1 }
                continue
            }
            read += records.count
            let outcome = try await engine.process(records)
            total.handled += outcome.handled
            total.duplicates += outcome.duplicates
            total.messages += outcome.messages
            total.applicationsStarted += outcome.applicationsStarted
            total.alerts += outcome.alerts
            total.unreachable += outcome.unreachable
            try await consumer.commit(records)
        }
        await consumer.close()
        while try await engine.relayOnce() > 0 {}
        return total
    }

    /// Everything on a topic.
    func events(_ topic: String) async throws -> [Event] {
        try await readTopic(log, topic).map { try CloudEventsBinding.event(from: $0) }
    }
}

extension Event {
    var body: JSONValue { try! JSONValue.parse(data) }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

/// Example bodies of the triggering events.
enum Examples {
    static let mother = Repo.residentId(born: "1993-08-22", sequence: 24)
    static let father = Repo.residentId(born: "1991-03-05", sequence: 17)
    static let child = Repo.residentId(born: "2026-02-20", sequence: 13)

    static func birth(motherMobile: String? = "13802761234", fatherMobile: String? = "13902765678") -> JSONValue {
        var mother: JSONObject = ["name": "陈慧敏", "residentId": .string(Self.mother)]
        if let motherMobile { mother["mobile"] = .string(motherMobile) }
        var father: JSONObject = ["name": "李志强", "residentId": .string(Self.father)]
        if let fatherMobile { father["mobile"] = .string(fatherMobile) }
        return .object([
            "child": .object([
                "residentId": .string(child), "name": "李子轩", "gender": "male", "birthDate": "2026-02-20",
            ]),
            "mother": .object(mother), "father": .object(father), "householdNumber": "440604012345",
            "registeredAt": "2026-03-01T10:15:00+08:00", "registrationOffice": "佛山市公安局禅城分局祖庙派出所",
        ])
    }

    static let deceased = Repo.residentId(born: "1938-04-12", sequence: 31)
    static let informant = Repo.residentId(born: "1965-02-14", sequence: 31)

    static func death(informantMobile: String? = "13802769876") -> JSONValue {
        var body: JSONObject = [
            "residentId": .string(deceased), "name": "黄桂英", "dateOfDeath": "2026-02-26",
            "householdNumber": "440604009876", "registeredAt": "2026-02-28T09:40:00+08:00",
            "registrationOffice": "佛山市公安局禅城分局石湾派出所",
        ]
        if let informantMobile {
            body["informant"] = .object([
                "name": "黄志明", "residentId": .string(informant), "relationship": "子女",
                "mobile": .string(informantMobile),
            ])
        }
        return .object(body)
    }

    static func enrolment(_ residentId: String, mobile: String? = "13800138000", scheme: String = "employee-pension")
        -> JSONValue
    {
        var body: JSONObject = [
            "residentId": .string(residentId), "name": "梁淑仪", "scheme": .string(scheme),
            "effectiveFrom": "1995-07-01", "registeredAt": "1995-07-01T10:00:00+08:00",
        ]
        if let mobile { body["mobile"] = .string(mobile) }
        return .object(body)
    }
}
