import ArgumentParser
import Bus
import EmbeddedLog
import EventLog
import EventSchemas
import Foundation
import Logging
import Retrying
import ServiceLifecycle

/// The version `onewindow --version` prints (semantic versioning; raised by hand with each release,
/// since the build cannot be assumed to run in a git checkout).
public let oneWindowVersion = "0.1.0"

/// The `onewindow` command: the root of every subcommand.
public struct OneWindowCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "onewindow",
        abstract: "OneWindow: an event hub for one-window government services.",
        discussion: """
            The bus is chosen by --bus embedded:PATH | kafka:HOST:PORT[,…] or ONEWINDOW_BUS; \
            the embedded log at var/onewindow.sqlite is the default. Only `topics apply` and \
            the long-running commands (connector run, dept-sim, demo, orchestrator run, \
            citizen-services run, view run, audit record, gateway) create an embedded log; \
            the others refuse a log that does not exist.
            Exit status: 0 ok, 1 other failure, 64 usage, 65 input refused, 66 not found \
            (file, log, group, topic, type), 69 bus unreachable, 70 internal error, 74 I/O \
            error, 75 temporary (try again), 77 not permitted, 78 configuration file wrong.
            """,
        version: oneWindowVersion,
        subcommands: [
            TopicsCommand.self, PublishCommand.self, SubscribeCommand.self, ValidateCommand.self,
            GroupsCommand.self, ReplayCommand.self, ConnectorCommand.self, DeptSimCommand.self, DemoCommand.self, RulesCommand.self,
            OrchestratorCommand.self, ApplyCommand.self, ResubmitCommand.self, StatusCommand.self,
            ApplicationsCommand.self, CitizenServicesCommand.self, ViewCommand.self, CompareCommand.self,
            DataUsageCommand.self, GrantsCommand.self, AuditCommand.self, GatewayCommand.self, DeadLetterCommand.self,
        ]
    )

    public init() {}

    /// Parses the process's arguments and runs the chosen command (what `onewindow` does).
    ///
    /// A command line that does not parse is reported by swift-argument-parser (with the usage of
    /// the subcommand concerned, status 64). An error thrown while a command runs is reported by
    /// ``fail(_:with:)``: its message, the usage of that subcommand for a usage error, and the
    /// status ``ExitStatus/of(_:)`` gives it.
    public static func runFromCommandLine(_ arguments: [String]? = nil) async {
        MallocArenas.limit()
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            exit(withError: error)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let commandType = type(of: command)
            guard !(error is CleanExit), commandPath(of: commandType) != nil else {
                // ArgumentParser's own commands (`help`) and its clean exits report themselves.
                exit(withError: error)
            }
            fail(commandType, with: error)
        }
    }
}

/// The options every command that touches the bus shares.
public struct BusOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "The bus: embedded:PATH or kafka:HOST:PORT[,HOST:PORT…]. Default: $ONEWINDOW_BUS, else embedded:var/onewindow.sqlite.")
    public var bus: String?

    @Option(
        name: .long,
        help: "A properties file of librdkafka settings (security, tuning) for a Kafka bus. Default: $ONEWINDOW_KAFKA_CONFIG.")
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
    /// - Parameter create: whether a missing embedded log is created (only `topics apply` and the
    ///   long-running processes do); otherwise a missing one is refused with its path and how to
    ///   create it (``LogError`` `.logNotFound`).
    /// - Parameters:
    ///   - create: whether an embedded log that does not exist yet is created (see `BusAddress.open`).
    ///   - kafkaLogLevel: the least level of librdkafka's own lines that is logged. Default:
    ///     `.critical`, for commands that run once and report a failure in their own error (a
    ///     refused connection would otherwise print librdkafka's lines as well); long-running
    ///     processes pass their log level. `ONEWINDOW_KAFKA_DEBUG` lowers it to `.debug`.
    ///   - sessionTimeout: how long a consumer group waits for a silent member before moving its
    ///     partitions (embedded: `EmbeddedLogConfiguration.sessionTimeout`; Kafka:
    ///     `session.timeout.ms`, with `heartbeat.interval.ms` a third of it up to 3 s, unless the
    ///     properties file sets them); `nil`: the backend's default.
    public func openLog(create: Bool, kafkaLogLevel: Logger.Level = .critical, sessionTimeout: Duration? = nil) throws
        -> any EventLog
    {
        var properties: [String: String] = [:]
        if let path = kafkaConfig ?? ProcessInfo.processInfo.environment["ONEWINDOW_KAFKA_CONFIG"], !path.isEmpty {
            // A missing file is "not found" (66) with the system's reason; a malformed one is a
            // configuration error (78), not a usage error.
            _ = try InputFile.read(path, what: "the Kafka properties file")
            do {
                properties = try PropertiesFile.load(path)
            } catch let error as BusAddressError {
                throw CommandFailure(.configuration, "\(error)")
            }
        }
        var kafkaLogger = Logger(label: "onewindow.kafka.librdkafka")
        let debugging = ProcessInfo.processInfo.environment["ONEWINDOW_KAFKA_DEBUG"].map { !$0.isEmpty } ?? false
        kafkaLogger.logLevel = debugging ? .debug : kafkaLogLevel
        var embedded = EmbeddedLogConfiguration()
        if let sessionTimeout {
            embedded.sessionTimeout = sessionTimeout
            let milliseconds = max(1, sessionTimeout.milliseconds)
            if properties["session.timeout.ms"] == nil { properties["session.timeout.ms"] = String(milliseconds) }
            if properties["heartbeat.interval.ms"] == nil {
                properties["heartbeat.interval.ms"] = String(max(1, min(3000, milliseconds / 3)))
            }
        }
        return try address().open(
            create: create, kafkaProperties: properties, embeddedConfiguration: embedded, kafkaLogger: kafkaLogger)
    }

    /// The catalog directory: `--catalog`, else `$ONEWINDOW_TOPICS`, else `./Topics`.
    public var catalogDirectory: URL {
        catalog.map { URL(fileURLWithPath: $0) } ?? TopicCatalog.defaultDirectory
    }

    /// Loads the topic catalog.
    /// - Throws: ``CommandFailure`` (not found) when the directory has no `catalog.yaml`, else
    ///   what ``TopicCatalog/load(from:)`` throws.
    public func loadCatalog() throws -> TopicCatalog {
        let directory = catalogDirectory
        let file = directory.appendingPathComponent("catalog.yaml").path
        guard FileManager.default.fileExists(atPath: file) else {
            throw CommandFailure(
                .notFound,
                "there is no topic catalog at \(file): run onewindow from the repository root, or point --catalog or ONEWINDOW_TOPICS at the Topics folder")
        }
        return try TopicCatalog.load(from: directory)
    }
}

/// Runs `body` with an open log and closes it afterwards, whatever happens.
/// - Parameter create: whether a missing embedded log is created (see ``BusOptions/openLog(create:)``).
func withLog<T>(_ options: BusOptions, create: Bool = false, _ body: (any EventLog) async throws -> T) async throws
    -> T
{
    let log = try options.openLog(create: create)
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

/// Sends every logger's lines to standard error from `level` up (an unknown name: `info`), once per
/// process, as the long-running commands (connector, orchestrator, view, dept-sim) do; personal
/// data in the lines is masked (``MaskingLogHandler``).
/// - Returns: the level set.
@discardableResult
func bootstrapLogging(_ level: String) -> Logger.Level {
    let level = Logger.Level(rawValue: level) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = MaskingLogHandler(wrapping: StreamLogHandler.standardError(label: label))
        handler.logLevel = level
        return handler
    }
    return level
}

