import ArgumentParser
import Bus
import EventLog
import EventSchemas
import Foundation

/// The `onewindow` command: the root of every subcommand.
public struct OneWindowCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "onewindow",
        abstract: "OneWindow: an event hub for one-window government services.",
        discussion: """
            The bus is chosen by --bus embedded:PATH | kafka:HOST:PORT[,…] or ONEWINDOW_BUS; \
            the embedded log at var/onewindow.sqlite is the default.
            """,
        subcommands: [
            TopicsCommand.self, PublishCommand.self, SubscribeCommand.self, ValidateCommand.self,
            GroupsCommand.self, ConnectorCommand.self, DeptSimCommand.self, DemoCommand.self,
        ]
    )

    public init() {}

    /// Parses the process's arguments and runs the chosen command (what `onewindow` does).
    public static func runFromCommandLine() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// The options every command that touches the bus shares.
public struct BusOptions: ParsableArguments {
    @Option(name: .long, help: "The bus: embedded:PATH or kafka:HOST:PORT[,HOST:PORT…]. Default: $ONEWINDOW_BUS, else embedded:var/onewindow.sqlite.")
    public var bus: String?

    @Option(name: .long, help: "A properties file of librdkafka settings (security, tuning) for a Kafka bus. Default: $ONEWINDOW_KAFKA_CONFIG.")
    public var kafkaConfig: String?

    @Option(name: .long, help: "The topic catalog directory. Default: $ONEWINDOW_TOPICS, else ./Topics.")
    public var catalog: String?

    public init() {}

    public func validate() throws {
        do {
            _ = try BusAddress.resolve(bus)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The bus address these options name.
    public func address() throws -> BusAddress { try BusAddress.resolve(bus) }

    /// Opens the bus.
    public func openLog() throws -> any EventLog {
        var properties: [String: String] = [:]
        if let path = kafkaConfig ?? ProcessInfo.processInfo.environment["ONEWINDOW_KAFKA_CONFIG"], !path.isEmpty {
            properties = try PropertiesFile.load(path)
        }
        return try address().open(kafkaProperties: properties)
    }

    /// Loads the topic catalog.
    public func loadCatalog() throws -> TopicCatalog {
        try TopicCatalog.load(from: catalog.map { URL(fileURLWithPath: $0) } ?? TopicCatalog.defaultDirectory)
    }
}

/// Runs `body` with an open log and closes it afterwards, whatever happens.
func withLog<T>(_ options: BusOptions, _ body: (any EventLog) async throws -> T) async throws -> T {
    let log = try options.openLog()
    do {
        let result = try await body(log)
        await log.close()
        return result
    } catch {
        await log.close()
        throw error
    }
}

/// Writes a line to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
