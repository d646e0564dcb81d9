import ArgumentParser
import EventModel
import EventSchemas
import Foundation

/// `onewindow validate`: check a JSON body against an event type, without publishing.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a JSON body against an event type's schema, without publishing it.",
        discussion: """
            The body is read as `publish` reads it: from FILE, or from standard input when FILE \
            is '-' or not given. A refused body is reported with the failing field and rule, \
            and the command exits with status 65. It reads the catalog only, not the bus.
            Examples:
              onewindow validate --type household.death.registered body.json
              onewindow topics example tax.payment.received --body |
                onewindow validate --type tax.payment.received
            """)

    @OptionGroup var options: BusOptions
    @Option(help: "The event type.") var type: String
    @Option(help: "The topic; by default the one that carries the type (for a department's type, that department's).") var topic: String?
    @Argument(help: "The JSON body file; '-' or none reads standard input.") var file: String?
    @Option(name: .customLong("file"), help: .hidden) var fileOption: String?

    func validate() throws {
        if file != nil && fileOption != nil { throw ValidationError("give the body file once: FILE or --file FILE") }
    }

    func run() async throws {
        let catalog = try options.loadCatalog()
        let data = try InputFile.read(file ?? fileOption)
        // The validator wants an event with an id (an empty one is refused); this one is not the
        // user's and is never shown.
        let event = Event(id: "onewindow-validate", type: type, source: "/onewindow/validate", subject: nil, data: data)
        do {
            let validated = try EventValidator(catalog: catalog).validate(
                event, topic: topic)
            print("valid \(type) (topic \(validated.topic), key \(validated.event.subject ?? "none"))")
        } catch var failure as ValidationFailure {
            failure.eventId = nil
            throw CommandFailure(.refused, RefusalText.describe(failure))
        }
    }
}
