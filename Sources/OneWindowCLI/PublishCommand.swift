import ArgumentParser
import Bus
import EventLog
import EventModel
import EventSchemas
import Foundation

/// `onewindow publish`: validate an event against the catalog and append it.
struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish an event: a type, a subject, and a JSON body from a file or standard input.",
        discussion: """
            The body is read as `validate` reads it: from FILE, or from standard input when FILE \
            is '-' or not given. It is validated against the type's JSON Schema; a refused event \
            is reported on standard error with the failing field and rule, and the command exits \
            with status 65. With --dead-letter the refused bytes also go to the dead-letter topic \
            with the reason.
            Examples:
              onewindow publish --example household.birth.registered
              onewindow publish --type tax.payment.received payment.json
              onewindow topics example tax.payment.received --body |
                onewindow publish --type tax.payment.received -
              echo '{…}' | onewindow publish --type approval.decided \\
                --topic approval.tax.decided
            """
    )

    @OptionGroup var options: BusOptions

    @Option(help: "The event type, e.g. household.birth.registered.") var type: String?
    @Option(help: "Publish the type's schema example instead of a body (the type is this value).") var example: String?
    @Option(help: "The subject (record key); by default the body's key field named in the catalog.") var subject: String?
    @Option(help: "The topic; by default the one that carries the type (for a department's type, that department's).") var topic: String?
    @Option(help: "The CloudEvents source.") var source: String = "/onewindow/cli"
    @Option(help: "The event id; by default a new UUID (with --count, one per event).") var id: String?
    @Argument(help: "The JSON body file; '-' or none reads standard input.") var file: String?
    @Option(name: .customLong("file"), help: .hidden) var fileOption: String?
    @Option(help: "Publish this many copies (each with its own id), in batches of up to 500.") var count: Int = 1
    @Flag(help: "Send a refused event to the dead-letter topic, with the reason, instead of only refusing it.")
    var deadLetter = false

    func validate() throws {
        if type == nil && example == nil { throw ValidationError("give --type TYPE (with a body) or --example TYPE") }
        if type != nil && example != nil { throw ValidationError("give either --type or --example, not both") }
        if file != nil && fileOption != nil { throw ValidationError("give the body file once: FILE or --file FILE") }
        if example != nil && (file ?? fileOption) != nil {
            throw ValidationError("--example publishes the schema's example; it takes no body file")
        }
        if count < 1 { throw ValidationError("--count must be at least 1") }
        if count > 1 && id != nil { throw ValidationError("--id names one event; it cannot go with --count") }
    }

    func run() async throws {
        let catalog = try options.loadCatalog()
        let eventType = (type ?? example)!
        let body: Data
        if let example {
            guard catalog.schemas[example] != nil else {
                throw CommandFailure(
                    .notFound,
                    "the catalog has no event type \(example); the types are: \(catalog.eventTypes.joined(separator: ", "))")
            }
            guard let first = catalog.schemas[example]?.examples.first else {
                throw CommandFailure(.notFound, "the schema of \(example) has no example")
            }
            body = first.serialized()
        } else {
            body = try InputFile.read(file ?? fileOption)
        }
        let events = (0..<count).map { _ in
            Event(
                id: id ?? UUID().uuidString.lowercased(), type: eventType, source: source, subject: subject, data: body)
        }
        let refused = try await withLog(options) { log -> Int in
            let publisher = Publisher(log: log, catalog: catalog, name: "onewindow publish")
            var refused = 0
            for start in stride(from: 0, to: events.count, by: 500) {
                let batch = events[start..<min(start + 500, events.count)].map { Publication(event: $0, topic: topic) }
                let outcomes: [PublishOutcome]
                do {
                    outcomes = try await publisher.publish(batch, deadLetter: deadLetter)
                } catch var failure as ValidationFailure {
                    // An id the user did not give names nothing: the event was never published.
                    if id == nil { failure.eventId = nil }
                    throw CommandFailure(.refused, RefusalText.describe(failure))
                }
                for outcome in outcomes {
                    switch outcome {
                    case .published(let position, let event):
                        print(OutputLine.published(position, event))
                    case .deadLettered(let position, let failure):
                        printError(failure.description)
                        printError("sent to the dead-letter topic at \(position)")
                        refused += 1
                    }
                }
            }
            return refused
        }
        if refused > 0 {
            throw CommandFailure(.refused, "\(refused) of \(events.count) event(s) refused and sent to the dead-letter topic")
        }
    }
}

/// The text of a refused event, with where to look up the type's fields.
enum RefusalText {
    static func describe(_ failure: ValidationFailure) -> String {
        var text = failure.description
        if let type = failure.eventType, failure.code == .schemaViolation || failure.code == .missingKey {
            text += "\nthe fields of \(type) and an example body: onewindow topics example \(type)"
        }
        return text
    }
}

/// The JSON lines the CLI prints.
enum OutputLine {
    static func published(_ position: RecordPosition, _ event: Event) -> String {
        var object: JSONObject = [
            "topic": .string(position.topic), "partition": .integer(Int64(position.partition)),
            "offset": .integer(position.offset), "id": .string(event.id), "type": .string(event.type),
        ]
        if let subject = event.subject { object["subject"] = .string(subject) }
        return String(decoding: JSONValue.object(object).serialized(), as: UTF8.self)
    }

    /// A consumed record: position, key, headers, the CloudEvent attributes, and the body as JSON
    /// (or as a string when it is not JSON).
    /// - Parameter showPersonalData: print resident ID numbers, names and mobile numbers as they
    ///   are; otherwise they are masked (``PersonalData``) in the key, the headers, the subject and
    ///   the body.
    static func record(_ record: LogRecord, showPersonalData: Bool = false) -> String {
        func text(_ value: String) -> String { showPersonalData ? value : PersonalData.maskText(value) }
        var object: JSONObject = [
            "topic": .string(record.topic), "partition": .integer(Int64(record.partition)),
            "offset": .integer(record.offset), "timestamp": .string(Timestamp.format(record.timestamp)),
            "key": record.keyString.map { JSONValue.string(text($0)) } ?? .null,
        ]
        var headers: JSONObject = [:]
        for header in record.headers {
            headers[header.name] = .string(header.text.map { text($0) } ?? header.value.base64EncodedString())
        }
        object["headers"] = .object(headers)
        if let event = try? CloudEventsBinding.event(from: record) {
            var attributes: JSONObject = [
                "id": .string(event.id), "type": .string(event.type), "source": .string(event.source),
                "time": .string(Timestamp.format(event.time)), "specversion": .string(event.specVersion),
                "datacontenttype": .string(event.dataContentType),
            ]
            if let value = event.subject { attributes["subject"] = .string(text(value)) }
            if let value = event.correlationId { attributes["correlationid"] = .string(value) }
            if let value = event.causationId { attributes["causationid"] = .string(value) }
            object["event"] = .object(attributes)
        }
        if let body = try? JSONValue.parse(record.value) {
            object["data"] = showPersonalData ? body : PersonalData.mask(body)
        } else {
            object["data"] = .string(text(String(decoding: record.value, as: UTF8.self)))
        }
        return String(decoding: JSONValue.object(object).serialized(), as: UTF8.self)
    }
}
