import ArgumentParser
import EventModel
import EventSchemas
import Foundation

/// `onewindow validate`: check a JSON file against an event type, without publishing.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a JSON body against an event type's schema; exit status 1 when it is refused.")

    @OptionGroup var options: BusOptions
    @Option(help: "The event type.") var type: String
    @Argument(help: "The JSON file; '-' reads standard input.") var file: String = "-"

    func run() async throws {
        let catalog = try options.loadCatalog()
        let data: Data
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            data = contents
        }
        let event = Event(type: type, source: "/onewindow/validate", subject: nil, data: data)
        do {
            let validated = try EventValidator(catalog: catalog).validate(
                event, topic: catalog.topics(carrying: type).first?.name)
            print("valid \(type) (topic \(validated.topic), key \(validated.event.subject ?? "none"))")
        } catch let failure as ValidationFailure {
            printError(failure.description)
            throw ExitCode(1)
        }
    }
}
