import ArgumentParser
import Bus
import EventLog
import EventModel
import EventSchemas
import Foundation

/// `onewindow demo`: the whole story on the embedded bus, in one command.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Publish department events, refuse a bad one, then follow a restaurant, a birth and a house transfer.",
        discussion: """
            First department events are published, a bad one is refused to the dead letters and a \
            downstream group reads them back. Then three stories are told while the departments' \
            simulators decide on a clock running two days a second, with their connectors, the \
            orchestrator and the citizen services, all in this process: a restaurant application \
            from submission to completion, a birth and the services pushed to the parents, and a \
            house transfer with the data flowing from the real estate centre to the tax bureau and \
            back. Each request, decision and text message is printed as it arrives, with its working \
            day, and each story's working days at its end. Exits 0 only if every step of every story \
            happened; otherwise 1, naming what is missing.
            The demo's own log is var/demo.sqlite and its other files var/demo-*.sqlite, emptied \
            on every run unless --keep; it ignores ONEWINDOW_BUS. A log named with --bus is used \
            instead for the first part, never emptied, and the stories are not told on it (they \
            would join the connectors' and the services' consumer groups there).
            """)

    @OptionGroup var options: BusOptions
    @Flag(help: "Keep an existing demo log instead of starting from an empty one.") var keep = false

    /// The demo's own log. It starts empty on every run unless --keep; a log named with --bus (or
    /// ONEWINDOW_BUS) is never emptied, since it may be a real one.
    static let demoLog = "var/demo.sqlite"

    func run() async throws {
        let address = try options.bus.map(BusAddress.init(parsing:)) ?? .embedded(path: Self.demoLog)
        if case .embedded(let path) = address, path == Self.demoLog, !keep {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
        if !keep {
            for file in DemoWorld.files {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) }
            }
        }
        var busOptions = options
        busOptions.bus = address.description
        let catalog = try options.loadCatalog()
        // The stories join the connectors' and the services' consumer groups: only on the demo's
        // own log, never on one named with --bus, which may be a real one.
        let ownLog: Bool = if case .embedded(let path) = address, path == Self.demoLog { true } else { false }
        let told: (missing: [String], restaurant: String?)? = try await withLog(busOptions, create: true) { log in
            try await DemoScenario(log: log, catalog: catalog, write: { print($0) }).run()
            guard ownLog else {
                print("\n(the stories run on the demo's own log only: they would join the connectors' groups on \(address))")
                return nil
            }
            return try await Self.tellStories(log: log, catalog: catalog)
        }
        guard let told else { return }
        guard told.missing.isEmpty else {
            throw CommandFailure(
                .failure, "not every step of the demo happened; missing: \(told.missing.joined(separator: ", "))")
        }
        print("\nEvery step happened. Try: onewindow status \(told.restaurant ?? "") --store var/demo-orchestrator.sqlite")
    }

    /// The stories, one after another on one ``DemoWorld``: what is missing of them (each item
    /// naming its story unless it is the restaurant's, the demo's first) and the restaurant's
    /// application id.
    static func tellStories(log: any EventLog, catalog: TopicCatalog) async throws
        -> (missing: [String], restaurant: String?)
    {
        let world = try await DemoWorld.start(log: log, catalog: catalog, write: { print($0) })
        var missing: [String] = []
        var restaurant: String?
        do {
            print("\n== 6. A restaurant application, the departments deciding on a clock of two days a second")
            let trace = try await RestaurantStory(world: world).run()
            missing += RestaurantStory.missing(trace)
            restaurant = trace.completion?.applicationId
            print("\n== 7. A birth: the citizen services push the newborn's services to the parents")
            missing += try await BirthStory(world: world).run().missing
            print("\n== 8. A house transfer: contract filing → valuation → tax → registration")
            missing += HouseTransferStory.missing(try await HouseTransferStory(world: world).run()).map {
                "\($0) (house transfer)"
            }
        } catch {
            try? await world.stop()
            throw error
        }
        try await world.stop()
        return (missing, restaurant)
    }
}

/// The demo's steps, callable from tests.
public struct DemoScenario: Sendable {
    let log: any EventLog
    let catalog: TopicCatalog
    let write: @Sendable (String) -> Void

    public init(log: any EventLog, catalog: TopicCatalog, write: @escaping @Sendable (String) -> Void) {
        self.log = log
        self.catalog = catalog
        self.write = write
    }

    /// The event types the demo publishes, one per department. (No application: the restaurant
    /// story submits its own, and the orchestrator it runs would take up any other on this log.)
    public static let publishedTypes = [
        "household.birth.registered", "socialsecurity.enrolment.registered", "tax.payment.received",
        "realestate.contract.signed", "market.business.registered",
    ]

    /// What the demo did, for tests.
    public struct Summary: Sendable {
        public var published: Int
        public var deadLettered: Int
        public var readBack: Int
        public var lagAfterCommit: Int64
    }

    @discardableResult
    public func run() async throws -> Summary {
        write("== 1. Topics from Topics/catalog.yaml")
        let created = try await log.createTopics(catalog.topicSpecs)
        write("   \(created.count) topics created, \(catalog.topics.count - created.count) already there")

        write("\n== 2. Departments publish events (each validated against its JSON Schema)")
        let publisher = Publisher(log: log, catalog: catalog, name: "onewindow demo")
        var publications: [Publication] = []
        for type in Self.publishedTypes {
            guard let example = catalog.schemas[type]?.examples.first else { continue }
            let department = catalog.topics(carrying: type).first?.owner ?? "onewindow"
            let source = department == "onewindow" ? "/onewindow/front-desk" : "/departments/\(department)"
            publications.append(
                Publication(event: Event(type: type, source: source, subject: nil, data: example.serialized())))
        }
        var published = 0
        var refused = 0
        func show(_ outcomes: [PublishOutcome]) {
            for outcome in outcomes {
                switch outcome {
                case .published(let position, let event):
                    published += 1
                    write("   published \(event.type) key \(Masking.subject(event.subject ?? "-")) → \(position)")
                case .deadLettered(let position, let failure):
                    refused += 1
                    write("   REFUSED: \(failure.reason)")
                    write("            original bytes kept in \(position) with the reason in dl_* headers")
                }
            }
        }
        show(try await publisher.publish(publications, deadLetter: true))
        publications = []

        write("\n== 3. A bad one: a birth whose resident ID has a wrong check character")
        if let birth = catalog.schemas["household.birth.registered"]?.examples.first,
            case .string(let id)? = birth[pointer: "/child/residentId"]
        {
            let wrong: Character = id.last == "1" ? "2" : "1"
            let corrupted = String(id.dropLast()) + String(wrong)
            let text = String(decoding: birth.serialized(), as: UTF8.self).replacingOccurrences(of: id, with: corrupted)
            publications.append(
                Publication(
                    event: Event(
                        type: "household.birth.registered", source: "/departments/household-registry", subject: nil,
                        data: Data(text.utf8))))
        }
        show(try await publisher.publish(publications, deadLetter: true))

        write("\n== 4. A downstream team reads them back as consumer group demo-dashboard")
        let topics = Self.publishedTypes.compactMap { catalog.topics(carrying: $0).first?.name }
        let consumer = try await log.makeConsumer(.group("demo-dashboard", topics: topics))
        var read: [LogRecord] = []
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(30))
        while read.count < published && clock.now < deadline {
            read += try await consumer.poll(maxRecords: 100, timeout: .milliseconds(500))
        }
        for record in read {
            let event = try CloudEventsBinding.event(from: record)
            write("   \(record.position)  \(event.type)  from \(event.source)  at \(Timestamp.format(event.time))")
        }
        try await consumer.commit(read)
        await consumer.close()
        let lag = try await log.lag(group: "demo-dashboard", topics: topics).map(\.lag).reduce(0, +)
        write("   committed; the group's lag is now \(lag)")

        write("\n== 5. The dead-letter topic \(catalog.deadLetterTopic), for operators")
        for partition in 0..<(catalog.topic(named: catalog.deadLetterTopic)?.spec.partitions ?? 1) {
            let marks = try await log.watermarks(TopicPartition(catalog.deadLetterTopic, partition))
            for record in try await log.read(
                TopicPartition(catalog.deadLetterTopic, partition), from: max(marks.high - 5, marks.low), maxRecords: 5)
            {
                write("   \(record.position) code=\(record.header("dl_code") ?? "?") topic=\(record.header("dl_original_topic") ?? "?")")
                write("     reason: \(record.header("dl_reason") ?? "?")")
            }
        }
        write("   (try: onewindow subscribe --bus embedded:var/demo.sqlite --topic household.birth.registered --until-end)")
        return Summary(published: published, deadLettered: refused, readBack: read.count, lagAfterCommit: lag)
    }
}
