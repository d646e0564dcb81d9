import ArgumentParser
import Bus
import CitizenServices
import CivilTime
import EventLog
import Foundation
import Logging
import Orchestrator
import OrchestratorService
import ServiceLifecycle

/// `onewindow citizen-services run`: the life-event pushes and the supervision of repeat visits.
struct CitizenServicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "citizen-services",
        abstract: "Run the services that come to the citizen: life-event pushes and repeat-visit supervision.",
        subcommands: [Run.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Consume births, deaths, enrolments, applications and decisions; push and supervise.",
            discussion: """
                Joins consumer group onewindow.citizen-services, keeps its state in the store \
                (SQLite) and publishes the text messages, the applications life events start and \
                the supervision alerts from the store's outbox, each once however often an event \
                is replayed. Rules: life-events.yaml and repeat-visits.yaml in the rules directory \
                (Rules/README.md). Stops cleanly on SIGTERM or SIGINT; exits 75 when the bus \
                fails for good, 78 when the rules have problems.
                Examples:
                  onewindow citizen-services run
                  onewindow citizen-services run --bus kafka:localhost:9092 --metrics-port 9466
                """)
        @OptionGroup var options: BusOptions
        @Option(help: "The citizen services' store (SQLite).") var store: String = "var/citizen-services.sqlite"
        @OptionGroup var service: ServiceProcessOptions
        @OptionGroup var retention: OutboxRetentionOption

        func run() async throws {
            service.bootstrap()
            let logger = Logger(label: "onewindow.citizen-services")
            let catalog = try options.loadCatalog()
            let rules = service.rules
            _ = try loadRules(rules, catalog: catalog)  // status 66 or 78 with the workflows' problems
            let serviceRules: CitizenServicesRules
            do {
                serviceRules = try CitizenServicesRules.load(directory: URL(fileURLWithPath: rules), catalog: catalog)
            } catch {
                throw CommandFailure(.configuration, error.description + "\nfix the rules and start again")
            }
            let clock = service.clock
            let log = try service.openLog(options)
            let engine = CitizenServicesEngine(
                store: try CitizenStore(path: store), rules: serviceRules, log: log, clock: clock, logger: logger)
            let address = try options.address()
            logger.notice("citizen services starting: store \(store), bus \(address)")
            try await runServiceGroup(
                try CitizenServicesGroup.make(
                    engine, metricsPort: service.metricsPort, keepPublished: retention.keepPublished),
                log: log, logger: logger,
                name: "citizen services")
            let totals = engine.stats.snapshot
            logger.notice(
                "citizen services stopped: \(totals.handled) event(s) handled, \(totals.messages) message(s), \(totals.applicationsStarted) application(s) started, \(totals.alerts) alert(s), \(totals.relayed) relayed"
            )
        }
    }
}
