import Bus
import CivilTime
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import KafkaLog
import SharedView
import TestSupport

/// The repository's catalog and the view's rule files, loaded once.
enum Repo {
    static let catalog: TopicCatalog = try! TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    static let rulesDirectory = repositoryRoot.appendingPathComponent("Rules")
    static let view: ViewRules = try! ViewRules.load(
        path: rulesDirectory.appendingPathComponent("shared-view.yaml").path, catalog: catalog)
    static let comparison: ComparisonRules = try! ComparisonRules.load(
        path: rulesDirectory.appendingPathComponent("comparison.yaml").path, view: view)

    /// A China-time instant: `at("2026-03-02", 9)`.
    static func at(_ day: String, _ hour: Int = 9, _ minute: Int = 0) -> Date {
        CivilDate(day)!.chinaTime(hour: hour, minute: minute)
    }

    /// A valid resident ID (born 1980-01-01 + `number` days, Chancheng).
    static func resident(_ number: Int) -> String {
        let birth = CivilDate(daysSinceEpoch: CivilDate("1970-01-01")!.daysSinceEpoch + 3650 + number % 10_000)
        return ResidentIDNumber.make(
            region: "440604", birthDate: (birth.year, birth.month, birth.day), sequence: number / 10_000)
    }
}

/// An embedded bus in a temporary folder with the catalog's topics, a publisher of department facts
/// on a test clock, and the view's store path beside it.
final class ViewBench: Sendable {
    let directory: URL
    let log: any EventLog
    let clock: TestWallClock
    let publisher: Publisher
    let storePath: String
    /// The Kafka broker of this bench's own (`nil` on the embedded log).
    let broker: TestBroker?

    /// - Parameter kafka: on a Kafka test broker of its own (`make test` or
    ///   scripts/with-test-broker.sh provide it) instead of an embedded log.
    init(kafka: Bool = false) async throws {
        (directory, log, broker) = try await serviceTestBus(
            prefix: "onewindow-view", kafka: kafka, topics: Repo.catalog.topicSpecs)
        clock = TestWallClock(Repo.at("2026-03-02", 9, 30))
        publisher = Publisher(log: log, catalog: Repo.catalog, name: "test-department", clock: clock)
        storePath = directory.appendingPathComponent("view.sqlite").path
    }

    deinit {
        broker?.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// An engine on the view's store (opened again each time: a restart).
    func engine(comparison: Bool = true) throws -> SharedViewEngine {
        SharedViewEngine(
            store: try SharedViewStore(path: storePath), rules: Repo.view,
            comparison: comparison ? Repo.comparison : nil, log: log, catalog: Repo.catalog, clock: clock)
    }

    /// A department's fact with the event time `time` and id `id`.
    func event(_ type: String, _ body: JSONValue, at time: Date, id: String) -> Event {
        Event(id: id, type: type, source: "test-department", subject: nil, time: time, data: body.serialized())
    }

    /// Publishes a department's fact with the event time `time` and id `id`.
    @discardableResult
    func publish(_ type: String, _ body: JSONValue, at time: Date, id: String = UUID().uuidString.lowercased())
        async throws -> Event
    {
        try await publisher.publish(event(type, body, at: time, id: id)).1
    }

    /// Every record of the view's topics, group-less, up to each partition's end when called.
    func factRecords() async throws -> [LogRecord] {
        var records: [LogRecord] = []
        try await SharedViewEngine.readToEnd(log: log, topics: Repo.view.topics) { records += $0 }
        return records
    }

    /// The alerts on the supervision topic.
    func alerts() async throws -> [Event] {
        try await readTopic(log, "supervision.alert.raised").map { try CloudEventsBinding.event(from: $0) }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByDictionaryLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(uniqueKeysWithValues: elements))
    }
}
