import ArgumentParser
import Bus
import Connectors
import EventSchemas
import Foundation
import Logging
import Retrying
import ServiceLifecycle

/// `onewindow connector run|check`: one department's connector process.
struct ConnectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connector",
        abstract: "Run a connector that bridges a department's system onto the bus.",
        subcommands: [Run.self, Check.self]
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the connector of a Connectors/*.yaml file until SIGTERM or SIGINT.",
            discussion: """
                SIGTERM or SIGINT: each part finishes and commits its batch, exit status 0.
                Exit status 75: a part failed in a way retrying cannot fix (the bus closed,
                credentials refused, a damaged file); restart it under a supervisor.
                """)
        @OptionGroup var options: BusOptions
        @Argument(help: "The connector file, e.g. Connectors/household-registry.yaml.") var file: String
        @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String = "info"
        @Option(help: "Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (overrides the file's `metrics:`).")
        var metricsPort: Int?

        /// Exit statuses: 0 after SIGTERM or SIGINT (every part finished and committed its batch); a
        /// file that does not match the department's system fails like any refused input;
        /// 75 (`ConnectorFailure.exitStatus`, EX_TEMPFAIL) when a part failed for good — the bus
        /// closed or broken, credentials refused, a damaged file — with a critical log line saying
        /// why: run the connector under a supervisor that restarts it (systemd `Restart=on-failure`,
        /// Docker `restart: on-failure`, a Kubernetes Deployment).
        func run() async throws {
            let level = bootstrapLogging(logLevel)
            let logger = Logger(label: "onewindow.connector")
            var configuration = try ConnectorConfiguration.load(path: file)
            if let metricsPort { configuration.metrics = "127.0.0.1:\(metricsPort)" }
            let catalog = try options.loadCatalog()
            let log = try options.openLog(create: true, kafkaLogLevel: max(level, .warning))
            let connector = try Connector(
                configuration: configuration, log: log, catalog: catalog, logger: logger,
                bus: try options.address().cursorIdentity)
            // The connector is a Service whose parts stop gracefully on SIGTERM: each finishes and
            // commits its batch. (Wrapping it in cancelWhenGracefulShutdown would cancel them mid-batch.)
            let group = ServiceGroup(services: [connector], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            do {
                try await group.run()
            } catch let refused as ConnectorConfigurationError {
                // The file does not match the department's system (a table or column missing): a
                // restart cannot help, so this is the ordinary refused-input error, not status 75.
                await log.close()
                throw refused
            } catch {
                await log.close()
                let why = "connector \(configuration.name) stopped: \(error). Exiting with status \(ConnectorFailure.exitStatus) "
                    + "so that a supervisor restarts it (run it under systemd Restart=on-failure, Docker restart: on-failure, or Kubernetes)"
                logger.critical("\(why)")
                throw ExitCode(ConnectorFailure.exitStatus)
            }
            await log.close()
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a connector file as `run` would, without running it.",
            discussion: """
                Reports every problem, each with the file and line: an unknown or misspelt key, a value of the \
                wrong type, a department, type or topic the catalog lacks, a mapping to a field the event's \
                schema does not have, a constant or code outside the field's enum, and a table or column the \
                department's database lacks (or the database itself, with how to create it). Exit status 78 \
                (a configuration file is wrong, as for every command) when there is any.
                """)
        @OptionGroup var options: BusOptions
        @Argument(help: "The connector file.") var file: String

        func run() async throws {
            let configuration = try ConnectorConfiguration.load(path: file)
            var problems = Connector.problems(in: configuration, against: try options.loadCatalog())
            problems += try Connector.databaseProblems(in: configuration)
            guard problems.isEmpty else {
                for problem in problems { printError("\(problem)") }
                throw CommandFailure(
                    .configuration, "\(file): \(problems.count) problem(s); `connector run` would fail on them")
            }
            print(
                "\(file): connector \(configuration.name) for \(configuration.department): \(configuration.sources.count) source(s), \(configuration.sinks.count) sink(s) — ok")
        }
    }
}
