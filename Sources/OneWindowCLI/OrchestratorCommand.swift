import ArgumentParser
import Bus
import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import Logging
import Orchestrator
import OrchestratorService
import ServiceLifecycle

/// The store option the orchestrator's commands share.
struct StoreOption: ParsableArguments {
    @Option(name: .long, help: "The orchestrator's store (SQLite).")
    var store: String = "var/orchestrator.sqlite"
}

/// Loads the rules directory, as `rules check` does, with status 78 on a problem.
func loadRules(_ directory: String, catalog: TopicCatalog) throws -> RuleBook {
    let url = URL(fileURLWithPath: directory)
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw CommandFailure(
            .notFound,
            "there is no rules directory at \(url.path): run onewindow from the repository root or pass --rules")
    }
    do {
        return try RuleBook.load(directory: url, catalog: catalog)
    } catch {
        throw CommandFailure(
            .configuration, error.description + "\nthe rules have problems; see `onewindow rules check \(directory)`")
    }
}

/// `onewindow orchestrator run`: the orchestrator process.
struct OrchestratorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orchestrator",
        abstract: "Run the orchestrator that turns applications into parallel approvals.",
        subcommands: [Run.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Consume applications and decisions, publish requests, progress and notifications.",
            discussion: """
                Joins consumer group onewindow.orchestrator on every workflow's application topic \
                and every approval.*.decided topic, keeps its state in the store (SQLite), and \
                publishes from the store's outbox. Stops cleanly on SIGTERM or SIGINT; exits 75 \
                when the bus fails for good.
                Examples:
                  onewindow orchestrator run
                  onewindow orchestrator run --bus kafka:localhost:9092 --metrics-port 9465
                """)
        @OptionGroup var options: BusOptions
        @OptionGroup var store: StoreOption
        @Option(help: "The rules directory.") var rules: String = "Rules"
        @Option(help: "Serve Prometheus metrics at http://127.0.0.1:PORT/metrics. Default: none.")
        var metricsPort: Int?
        @Option(help: "Log level: trace, debug, info, notice, warning, error.")
        var logLevel: String = "info"
        @Option(help: "Run the clock this many times faster than real time (demos).")
        var clockSpeed: Double = 1

        func run() async throws {
            bootstrapLogging(logLevel)
            let logger = Logger(label: "onewindow.orchestrator")
            if metricsPort != nil { OrchestratorServices.bootstrapMetrics() }
            let catalog = try options.loadCatalog()
            let ruleBook = try loadRules(rules, catalog: catalog)
            let calendar = try WorkingDayCalendar.load(
                from: URL(fileURLWithPath: rules).appendingPathComponent(RuleBook.calendarFile))
            let clock: any WallClock = clockSpeed == 1 ? SystemWallClock() : AcceleratedClock(speed: clockSpeed)
            let log = try options.openLog(create: true)
            let engine = try OrchestratorEngine(
                store: OrchestratorStore(path: store.store), rules: ruleBook, calendar: calendar, log: log,
                catalog: catalog, clock: clock, logger: logger)
            let address = try options.address()
            logger.notice(
                "orchestrator starting: \(ruleBook.current.count) workflow(s), store \(store.store), bus \(address)")
            try await runServices(
                try OrchestratorServices.make(engine, metricsPort: metricsPort), log: log, logger: logger,
                state: "the store is consistent; start the orchestrator again")
            let totals = engine.stats.snapshot
            logger.notice(
                "orchestrator stopped: \(totals.inputsApplied) input(s) applied, \(totals.effectsEmitted) effect(s), \(totals.deadLettered) dead-lettered, \(totals.relayed) relayed"
            )
        }
    }
}

/// `onewindow apply WORKFLOW --file application.json`: validates and submits an application.
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Validate an application against its workflow's schema and submit it.",
        discussion: """
            The application is the JSON body of the workflow's application event \
            (`onewindow topics example application.restaurant.submitted` prints one). A refused \
            application is reported with the field and the rule it broke (status 65).
            Example:
              onewindow apply restaurant-opening --file application.json
            """)
    @OptionGroup var options: BusOptions
    @Option(help: "The rules directory.") var rules: String = "Rules"
    @Argument(help: "The workflow: restaurant-opening, house-transfer.") var workflow: String
    @Option(help: "The application's JSON file; '-' reads standard input. Default: standard input.")
    var file: String?

    func run() async throws {
        let catalog = try options.loadCatalog()
        let ruleBook = try loadRules(rules, catalog: catalog)
        guard let flow = ruleBook.current[workflow] else {
            let known = ruleBook.current.keys.sorted().joined(separator: ", ")
            throw CommandFailure(.notFound, "there is no workflow \(workflow) in \(rules); known: \(known)")
        }
        let data = try InputFile.read(file, what: "the application")
        let event = Event(type: flow.applicationType, source: "onewindow-apply", subject: nil, data: data)
        try await withLog(options) { log in
            let publisher = Publisher(log: log, catalog: catalog, name: "onewindow apply")
            do {
                let (position, published) = try await publisher.publish(event)
                print(OutputLine.published(position, published))
            } catch let failure as ValidationFailure {
                throw CommandFailure(.refused, RefusalText.describe(failure))
            }
        }
    }
}

/// `onewindow status APPLICATION_ID`: one application's steps from the store.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show an application's steps: state, department, requested, due, what it waits for.",
        discussion: """
            Reads the orchestrator's store (not the bus). Materials marked `from step.field` \
            came from an earlier step's decision instead of the applicant.
            Example:
              onewindow status RA-2026-000001 --store var/orchestrator.sqlite
            """)
    @OptionGroup var store: StoreOption
    @Option(name: .long, help: "The topic catalog directory. Default: $ONEWINDOW_TOPICS, else ./Topics.")
    var catalog: String?
    @Option(help: "The rules directory.") var rules: String = "Rules"
    @Argument(help: "The application id, e.g. RA-2026-000001.") var applicationId: String

    func run() async throws {
        let opened = try openStore(store.store)
        guard let (state, partition) = try opened.findCase(applicationId) else {
            throw CommandFailure(.notFound, "no application \(applicationId) in \(store.store)")
        }
        // The workflow the case is pinned to, for departments and materials (from the stored sources).
        var options = BusOptions()
        options.catalog = catalog
        let workflow = try? opened.withPinnedVersions(
            loadRules(rules, catalog: options.loadCatalog()), catalog: options.loadCatalog()
        ).workflow(version: state.ruleVersion)
        print(
            "\(state.applicationId)  \(state.workflow)  \(state.status.rawValue)  submitted \(ChinaTime.rfc3339(state.submittedAt))  partition \(partition)  rules \(state.ruleVersion)"
        )
        for step in state.steps {
            let definition = workflow?.step(step.id)
            var line = "  \(step.id)  \(step.status.rawValue)"
            if let definition { line += "  \(definition.department)" }
            if let requested = step.requestedAt { line += "  requested \(ChinaTime.rfc3339(requested))" }
            if let due = step.dueDate { line += "  due \(due)" }
            if step.escalated { line += "  OVERDUE" }
            print(line)
            switch step.status {
            case .waiting:
                let waits = (definition?.dependsOn ?? []).filter { state.step($0)?.isDone != true }
                print("    waits for: \(waits.joined(separator: ", "))")
            case .requested: print("    waits for: \(definition?.department ?? "the department")'s decision")
            case .awaitingResubmission: print("    waits for: the applicant's resubmission")
            default: break
            }
            let fromEarlier = (definition?.materials ?? []).compactMap { material -> String? in
                guard case .step(let field) = material.source else { return nil }
                return "\(material.name) from \(field)"
            }
            if !fromEarlier.isEmpty {
                print("    materials from earlier steps: \(fromEarlier.joined(separator: ", "))")
            }
        }
        if let completion = state.completion {
            print(
                "  completed \(ChinaTime.rfc3339(completion.completedAt)): \(completion.elapsedWorkingDays) working days, \(completion.serialWorkingDays) if serial"
            )
        }
    }
}

/// `onewindow applications`: open applications, overdue first.
struct ApplicationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "applications",
        abstract: "List open applications, overdue first, then by the next due date.",
        discussion: """
            Reads the orchestrator's store (not the bus).
            Example:
              onewindow applications --store var/orchestrator.sqlite --limit 20
            """)
    @OptionGroup var store: StoreOption
    @Option(help: "How many to list.") var limit: Int = 100

    func run() async throws {
        let opened = try openStore(store.store)
        let cases = try opened.openCases(limit: limit)
        if cases.isEmpty { print("no open applications in \(store.store)") }
        for state in cases {
            let open = state.steps.filter { $0.status == .requested || $0.status == .awaitingResubmission }
            let overdue = open.filter(\.escalated).map(\.id)
            let due = open.compactMap(\.dueDate).min()
            var line = "\(state.applicationId)  \(state.workflow)  \(open.count) open step(s)"
            if let due { line += "  next due \(due)" }
            if !overdue.isEmpty { line += "  OVERDUE: \(overdue.joined(separator: ", "))" }
            print(line)
        }
    }
}

private func openStore(_ path: String) throws -> OrchestratorStore {
    do {
        return try OrchestratorStore.openExisting(path: path)
    } catch let error as StoreError {
        throw CommandFailure(.notFound, error.description)
    }
}
