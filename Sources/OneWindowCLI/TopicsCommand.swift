import ArgumentParser
import Bus
import EmbeddedLog
import EventLog
import EventSchemas
import Foundation

/// `onewindow topics list|describe|example|apply|maintain|check`.
struct TopicsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics",
        abstract: "The topic catalog and the topics on the bus.",
        subcommands: [List.self, Describe.self, Example.self, Apply.self, Maintain.self, Check.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the catalog's topics and whether each exists on the bus.")
        @OptionGroup var options: BusOptions

        func run() async throws {
            let catalog = try options.loadCatalog()
            let existing = Set(try await withLog(options) { try await $0.listTopics() })
            let rows = catalog.topics.map { topic in
                [
                    topic.name, topic.owner, "\(topic.spec.partitions)", CleanupText.describe(topic.spec.cleanup),
                    existing.contains(topic.name) ? "yes" : "no", topic.types.joined(separator: ","),
                ]
            }
            print(Table.render(header: ["TOPIC", "OWNER", "PARTITIONS", "CLEANUP", "ON BUS", "TYPES"], rows: rows))
            let missing = catalog.topics.filter { !existing.contains($0.name) }.count
            if missing > 0 { print("\n\(missing) topic(s) are not on the bus yet: run `onewindow topics apply`.") }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a topic (catalog entry, partitions, watermarks), or an event type's fields and example.",
            discussion: """
                A name that is an event type but no topic shows what `topics example` shows. Most \
                topics are named after the one type they carry: `topics example NAME` shows that \
                type's fields.
                """)
        @OptionGroup var options: BusOptions
        @Argument(help: "A topic name or an event type.") var topic: String

        func run() async throws {
            let catalog = try options.loadCatalog()
            let entry = catalog.topic(named: topic)
            if entry == nil, catalog.schemas[topic] != nil {
                print(try EventTypeText(type: topic, catalog: catalog, directory: options.catalogDirectory).render(catalog: catalog))
                return
            }
            let described = try await withLog(options) { try await $0.describeTopics([topic]) }.first
            guard entry != nil || described != nil else {
                throw CommandFailure(
                    .notFound,
                    "\(topic) is no topic or event type of the catalog, and no topic on the bus; `onewindow topics list` lists them")
            }
            print("topic:       \(topic)")
            if let entry {
                print("owner:       \(entry.owner) (\(catalog.departments[entry.owner] ?? ""))")
                print("description: \(entry.description)")
                print("key:         \(entry.keyPointer ?? "none")")
                print("types:       \(entry.types.isEmpty ? "raw records" : entry.types.joined(separator: ", "))")
                print("catalog:     \(entry.spec.partitions) partitions, \(CleanupText.describe(entry.spec.cleanup))")
            } else {
                print("catalog:     not in the catalog")
            }
            guard let described else {
                print("bus:         not created yet (run `onewindow topics apply`)")
                return
            }
            print("bus:         \(described.partitions.count) partitions, \(CleanupText.describe(described.spec.cleanup))")
            let rows = described.partitions.enumerated().map { index, marks in
                ["\(index)", "\(marks.low)", "\(marks.high)", "\(marks.high - marks.low)"]
            }
            print(Table.render(header: ["PARTITION", "LOW", "HIGH", "RECORDS"], rows: rows))
            for type in entry?.types ?? [] {
                print("\nfields of \(type) and an example body: onewindow topics example \(type)")
            }
        }
    }

    struct Example: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show an event type's fields (required or not, type, format, allowed values) and an example body.",
            discussion: """
                Reads only the catalog, not the bus. Examples:
                  onewindow topics example household.birth.registered
                  onewindow topics example tax.payment.received --body > payment.json
                  onewindow validate --type tax.payment.received payment.json
                """)
        @OptionGroup var options: BusOptions
        @Argument(help: "The event type, e.g. household.birth.registered.") var type: String
        @Flag(help: "Print only the example body (JSON), e.g. to start a file from it.") var body = false

        func run() async throws {
            let catalog = try options.loadCatalog()
            let text = try EventTypeText(type: type, catalog: catalog, directory: options.catalogDirectory)
            if body {
                guard let example = text.example else {
                    throw CommandFailure(.notFound, "the schema of \(type) has no example")
                }
                print(EventTypeText.pretty(example))
            } else {
                print(text.render(catalog: catalog))
            }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create every catalog topic that is not on the bus yet.")
        @OptionGroup var options: BusOptions

        func run() async throws {
            let catalog = try options.loadCatalog()
            let (created, described) = try await withLog(options, create: true) { log in
                let created = try await log.createTopics(catalog.topicSpecs)
                return (created, try await log.describeTopics(catalog.topics.map(\.name)))
            }
            for name in created { print("created \(name)") }
            for description in described {
                guard let wanted = catalog.topic(named: description.name)?.spec else { continue }
                if description.partitions.count != wanted.partitions {
                    printError(
                        "warning: \(description.name) has \(description.partitions.count) partitions on the bus, the catalog says \(wanted.partitions); partitions are never changed automatically (keys would move)")
                }
            }
            print("\(created.count) created, \(catalog.topics.count - created.count) already present")
        }
    }

    struct Maintain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run retention and compaction now (embedded bus; Kafka brokers do it themselves).")
        @OptionGroup var options: BusOptions

        func run() async throws {
            guard case .embedded(let path) = try options.address() else {
                throw CommandFailure(.usage, "a Kafka broker runs retention and compaction itself; `topics maintain` is for an embedded bus")
            }
            let report = try await withLog(options) { log in
                guard let embedded = log as? EmbeddedLog else {
                    throw CommandFailure(.internal, "the bus at \(path) did not open as an embedded log")
                }
                return try await embedded.runMaintenance()
            }
            print("expired \(report.expired) record(s), compacted away \(report.compacted)")
        }
    }
}

enum CleanupText {
    static func describe(_ policy: CleanupPolicy) -> String {
        switch policy {
        case .compact: return "compact"
        case .delete(nil): return "keep forever"
        case .delete(let retention?):
            let milliseconds = retention.milliseconds
            if milliseconds % 86_400_000 == 0 { return "retain \(milliseconds / 86_400_000)d" }
            if milliseconds % 3_600_000 == 0 { return "retain \(milliseconds / 3_600_000)h" }
            if milliseconds % 1000 == 0 { return "retain \(milliseconds / 1000)s" }
            return "retain \(milliseconds)ms"
        }
    }
}

/// A plain text table with aligned columns.
enum Table {
    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").replacing(#/ +$/#, with: "")
        }.joined(separator: "\n")
    }
}
