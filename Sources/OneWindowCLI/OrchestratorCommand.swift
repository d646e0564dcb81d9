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
import Retrying
import ServiceLifecycle
import SharedView

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

/// `--keep-published-days` of the services with an outbox (`orchestrator run`, `citizen-services run`).
struct OutboxRetentionOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Days outbox rows stay in the store after they are published; 0 keeps them for ever.",
            discussion: "A pass at start and every hour deletes older ones, never a row not yet on the bus."))
    var keepPublishedDays: Int = OutboxRetention.defaultDays

    func validate() throws {
        guard keepPublishedDays >= 0 else {
            throw ValidationError(
                "--keep-published-days must be 0 (keep for ever) or a number of days, not \(keepPublishedDays)")
        }
    }

    /// The retention, `nil` for ever.
    var keepPublished: Duration? { keepPublishedDays == 0 ? nil : OutboxRetention.days(keepPublishedDays) }
}

/// The options a service process shares (`orchestrator run`, `citizen-services run`).
struct ServiceProcessOptions: ParsableArguments {
    @Option(help: "The rules directory.") var rules: String = "Rules"
    @Option(help: "Serve Prometheus metrics at http://127.0.0.1:PORT/metrics. Default: none.")
    var metricsPort: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"
    @Option(help: "Run the clock this many times faster than real time (demos).")
    var clockSpeed: Double = 1
    @Option(
        help: """
            Seconds the consumer group waits for a member that stopped answering (a crashed \
            process) before its partitions move. Default: 10 on the embedded bus, the Kafka \
            client's (or --kafka-config's) on Kafka.
            """)
    var sessionTimeout: Double?

    func validate() throws {
        if let sessionTimeout, !(sessionTimeout >= 0.1 && sessionTimeout <= 3600) {
            throw ValidationError("--session-timeout takes seconds from 0.1 to 3600, not \(sessionTimeout)")
        }
    }

    /// The system clock, or one running `clockSpeed` times faster.
    var clock: any WallClock { clockSpeed == 1 ? SystemWallClock() : AcceleratedClock(speed: clockSpeed) }

    /// Sends log lines to standard error and, with a metrics port, bootstraps the Prometheus
    /// registry (before any counter is made).
    func bootstrap() {
        _ = bootstrapLogging(logLevel)
        if metricsPort != nil { OrchestratorServices.bootstrapMetrics() }
    }

    /// Opens the bus with this process's session timeout; librdkafka logs at warning and above
    /// unless the log level is higher.
    func openLog(_ options: BusOptions) throws -> any EventLog {
        try options.openLog(
            create: true, kafkaLogLevel: max(Logger.Level(rawValue: logLevel) ?? .info, .warning),
            sessionTimeout: sessionTimeout.map { .milliseconds(Int64(($0 * 1000).rounded())) })
    }
}

/// Runs a service process's group until SIGTERM or SIGINT, closing `log` however it ends. A loop
/// that fails for good (the bus closed or broken, the store damaged: what retrying inside could
/// not fix) shuts the others down gracefully (the batch in flight commits, the metrics server
/// stops without error lines), then the process logs one critical line and exits 75: the store is
/// consistent (offsets are committed only after its transactions, the outbox is published again
/// after a restart), so a supervisor restarting the process is the cure, as for `connector run`.
func runServiceGroup(_ services: [any Service], log: any EventLog, logger: Logger, name: String) async throws {
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(
            services: services.map {
                ServiceGroupConfiguration.ServiceConfiguration(
                    service: $0, failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    do {
        try await group.run()
    } catch {
        await log.close()
        // One line: an SQLite message can carry the statement's line breaks.
        let reason = "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
        let why = "\(name) stopped: \(reason). Exiting with status \(FatalFailure.exitStatus) "
            + "so that a supervisor restarts it (the store is consistent; run it under systemd "
            + "Restart=on-failure, Docker restart: on-failure, or Kubernetes)"
        logger.critical("\(why)")
        throw ExitCode(FatalFailure.exitStatus)
    }
    await log.close()
}

/// `onewindow orchestrator run`: the orchestrator process.
struct OrchestratorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orchestrator",
        abstract: "Run the orchestrator that turns applications into parallel approvals.",
        subcommands: [Run.self, Rebuild.self])

    struct Rebuild: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build the orchestrator's state afresh from the topics and report every difference with the live store.",
            discussion: """
                Reads the orchestrator's input topics from their first record up to the \
                onewindow.orchestrator group's committed offsets, applies them with the same rules \
                and calendar into a new store (publishing nothing), each at the instant the live \
                store applied it, and compares it with the live \
                store: per application its status, each step's state, attempt, due date and \
                decisions, the timers, the processed event ids and the outbox's event ids. Safe to \
                run beside a running orchestrator (it only reads the live store); a batch applied \
                but not yet committed at that moment shows as a difference that goes away when run \
                again.
                Exit status: 0 no difference, 1 differences (listed on standard output), 66 no \
                store or bus, 69 bus unreachable, 78 rules or catalog wrong.
                Examples:
                  onewindow orchestrator rebuild
                  onewindow orchestrator rebuild --store var/orchestrator.sqlite \\
                      --into /tmp/rebuilt.sqlite
                """)
        @OptionGroup var options: BusOptions
        @OptionGroup var store: StoreOption
        @Option(help: "The rules directory.") var rules: String = "Rules"
        @Option(help: "Where to write the rebuilt store, kept afterwards (it must not exist). Default: a temporary file, removed.")
        var into: String?
        /// The shared data view the live orchestrator looks `sharedFact:` materials up in.
        @OptionGroup var view: ViewOption

        func run() async throws {
            _ = bootstrapLogging("error")
            let live: OrchestratorStore
            do {
                live = try OrchestratorStore.openExisting(path: store.store)
            } catch let error as StoreError {
                throw CommandFailure(.notFound, error.description)
            }
            let catalog = try options.loadCatalog()
            let ruleBook = try loadRules(rules, catalog: catalog)
            let calendar = try WorkingDayCalendar.load(
                from: URL(fileURLWithPath: rules).appendingPathComponent(RuleBook.calendarFile))
            var sharedFacts: (any SharedFactLookup)? = nil
            if FileManager.default.fileExists(atPath: view.view) {
                sharedFacts = SharedViewFacts(view: try SharedViewStore.openExisting(path: view.view))
            }
            let temporary = FileManager.default.temporaryDirectory.appendingPathComponent(
                "onewindow-rebuild-\(UUID().uuidString.prefix(8).lowercased())")
            let path = into ?? temporary.appendingPathComponent("orchestrator.sqlite").path
            if into == nil { try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true) }
            defer { if into == nil { try? FileManager.default.removeItem(at: temporary) } }
            let report: RebuildReport
            do {
                report = try await withLog(options) { log in
                    try await StoreRebuild.rebuild(
                        live: live, into: path, rules: ruleBook, calendar: calendar, log: log, catalog: catalog,
                        sharedFacts: sharedFacts)
                }
            } catch let error as StoreError {
                throw CommandFailure(.failure, error.description)
            }
            print(
                "rebuilt \(report.applications) application(s) from \(report.inputsRead) input(s) and \(report.timersFired) timer firing(s)"
                    + (into.map { " into \($0)" } ?? ""))
            if let horizon = report.prunedHorizon, report.emissionsLeftOut > 0 {
                print(
                    "\(report.emissionsLeftOut) rebuilt emission(s) up to \(Timestamp.format(horizon)) not compared: "
                        + "the live store deleted its published outbox rows up to then (--keep-published-days)")
            }
            if report.differences.isEmpty {
                print("no difference with the live store \(store.store)")
                return
            }
            for difference in report.differences { print(difference) }
            throw CommandFailure(
                .failure, "\(report.differences.count) difference(s) between the live store \(store.store) and the rebuilt one")
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Consume applications and decisions, publish requests, progress and notifications.",
            discussion: """
                Joins consumer group onewindow.orchestrator on every workflow's application topic \
                and every approval.*.decided topic, keeps its state in the store (SQLite), and \
                publishes from the store's outbox. Stops cleanly on SIGTERM or SIGINT (status 0). \
                Exit status 75: the bus closed or broken, or the store damaged, which retrying \
                cannot fix; run it under a supervisor that restarts it (the store is consistent). \
                Exit status 74 at the start: the store cannot be written (a read-only file or \
                folder); the message names the file, nothing is consumed.
                Examples:
                  onewindow orchestrator run
                  onewindow orchestrator run --bus kafka:localhost:9092 --metrics-port 9465
                """)
        @OptionGroup var options: BusOptions
        @OptionGroup var store: StoreOption
        @OptionGroup var service: ServiceProcessOptions
        /// The shared data view (`view run`'s store) where `sharedFact:` materials are looked up,
        /// each lookup recorded in its usage log. When the file does not exist the orchestrator
        /// runs without it and asks applicants for those documents.
        @OptionGroup var view: ViewOption
        @OptionGroup var retention: OutboxRetentionOption

        func run() async throws {
            service.bootstrap()
            let logger = Logger(label: "onewindow.orchestrator")
            var sharedFacts: (any SharedFactLookup)? = nil
            if FileManager.default.fileExists(atPath: view.view) {
                sharedFacts = SharedViewFacts(view: try SharedViewStore.openExisting(path: view.view))
            } else {
                logger.notice(
                    "no shared data view at \(view.view): materials from the view are asked of the applicant (start view run, or pass --view)")
            }
            let catalog = try options.loadCatalog()
            let ruleBook = try loadRules(service.rules, catalog: catalog)
            let calendar = try WorkingDayCalendar.load(
                from: URL(fileURLWithPath: service.rules).appendingPathComponent(RuleBook.calendarFile))
            let clock = service.clock
            let log = try service.openLog(options)
            let engine = try OrchestratorEngine(
                store: OrchestratorStore(path: store.store), rules: ruleBook, calendar: calendar, log: log,
                catalog: catalog, clock: clock, logger: logger, sharedFacts: sharedFacts)
            let address = try options.address()
            logger.notice(
                "orchestrator starting: \(ruleBook.current.count) workflow(s), store \(store.store), bus \(address)")
            try await runServiceGroup(
                try OrchestratorServices.make(
                    engine, metricsPort: service.metricsPort, keepPublished: retention.keepPublished),
                log: log, logger: logger,
                name: "orchestrator")
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
    @Argument(help: "The workflow: restaurant-opening, house-transfer, graduate-registration.") var workflow: String
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

/// `onewindow resubmit APPLICATION_ID --step STEP [--file application.json]`: the applicant (or the
/// clerk at the window) resubmits a step a department rejected with `onRejection: resubmit` or
/// asked more of, as `application.step.resubmitted`.
struct ResubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resubmit",
        abstract: "Resubmit a step a department rejected or asked more of, optionally with a corrected application.",
        discussion: """
            Publishes application.step.resubmitted; the orchestrator requests the step again as its \
            next attempt (other steps go on as they were). The workflow is the one that has the \
            step (--workflow when several have it). A corrected application (--file) is the whole \
            application as for `apply`, with the same applicationId: it is validated against the \
            workflow's schema like `apply` (refused with the field and the rule, status 65) and \
            replaces the one the orchestrator holds. A step that does not wait for a resubmission \
            is dead-lettered by the orchestrator with the reason.
            Examples:
              onewindow resubmit RA-2026-000001 --step food-licence --file corrected.json
              onewindow resubmit HT-2026-000002 --step tax-clearance --note "已补充完税材料"
            """)
    @OptionGroup var options: BusOptions
    @Option(help: "The rules directory.") var rules: String = "Rules"
    @Argument(help: "The application id, e.g. RA-2026-000001.") var applicationId: String
    @Option(help: "The step resubmitted, e.g. food-licence (`onewindow status` lists them).") var step: String
    @Option(help: "The workflow; needed only when more than one has the step.") var workflow: String?
    @Option(help: "The corrected application's JSON file; '-' reads standard input. Default: none (unchanged).")
    var file: String?
    @Option(help: "What the applicant changed, for the department's officer.") var note: String?

    func run() async throws {
        let catalog = try options.loadCatalog()
        let ruleBook = try loadRules(rules, catalog: catalog)
        let flow = try chooseWorkflow(ruleBook)
        var body: JSONObject = [
            "applicationId": .string(applicationId), "workflow": .string(flow.id), "step": .string(step),
            "resubmittedAt": .string(ChinaTime.rfc3339(Date())),
        ]
        if let note { body["note"] = .string(note) }
        try await withLog(options) { log in
            let publisher = Publisher(log: log, catalog: catalog, name: "onewindow resubmit")
            if file != nil {
                let data = try InputFile.read(file, what: "the corrected application")
                let corrected: JSONValue
                do {
                    // Validated as the workflow's application event, exactly as `apply` validates it.
                    let event = Event(type: flow.applicationType, source: "onewindow-resubmit", subject: nil, data: data)
                    corrected = try publisher.validator.validate(event).body
                } catch let failure as ValidationFailure {
                    throw CommandFailure(
                        .refused, "the corrected application is refused: " + RefusalText.describe(failure))
                }
                let id = corrected[pointer: "/applicationId"]?.stringValue ?? "none"
                guard id == applicationId else {
                    throw CommandFailure(
                        .refused,
                        "/applicationId: the corrected application is \(id), not \(applicationId); a resubmission keeps the application's number"
                    )
                }
                body["application"] = corrected
            }
            let event = Event(
                type: Resubmission.eventType, source: "onewindow-resubmit", subject: applicationId,
                data: JSONValue.object(body).serialized())
            do {
                let (position, published) = try await publisher.publish(event)
                print(OutputLine.published(position, published))
            } catch let failure as ValidationFailure {
                throw CommandFailure(.refused, RefusalText.describe(failure))
            }
        }
    }

    /// The workflow named, or the one current workflow that has the step.
    func chooseWorkflow(_ ruleBook: RuleBook) throws -> Workflow {
        if let workflow {
            guard let flow = ruleBook.current[workflow] else {
                let known = ruleBook.current.keys.sorted().joined(separator: ", ")
                throw CommandFailure(.notFound, "there is no workflow \(workflow) in \(rules); known: \(known)")
            }
            guard flow.step(step) != nil else {
                throw CommandFailure(
                    .notFound,
                    "workflow \(workflow) has no step \(step); its steps: \(flow.steps.map(\.id).joined(separator: ", "))")
            }
            return flow
        }
        let having = ruleBook.current.values.filter { $0.step(step) != nil }.sorted { $0.id < $1.id }
        switch having.count {
        case 1: return having[0]
        case 0:
            let steps = ruleBook.current.values.sorted { $0.id < $1.id }.map {
                "\($0.id): \($0.steps.map(\.id).joined(separator: ", "))"
            }
            throw CommandFailure(
                .notFound, "no workflow has a step \(step); the steps are\n  \(steps.joined(separator: "\n  "))")
        default:
            throw CommandFailure(
                .usage,
                "workflows \(having.map(\.id).joined(separator: ", ")) all have a step \(step): name one with --workflow")
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
            came from an earlier step's decision instead of the applicant, those "from shared data" \
            from the shared data view (with the event that established them).
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
        let overdue = Set(state.overdueSteps(at: Date()).map(\.id))
        for step in state.steps {
            let definition = workflow?.step(step.id)
            var line = "  \(step.id)  \(step.status.rawValue)"
            if let definition { line += "  \(definition.department)" }
            if let requested = step.requestedAt { line += "  requested \(ChinaTime.rfc3339(requested))" }
            if let due = step.dueDate { line += "  due \(due)" }
            if overdue.contains(step.id) { line += "  OVERDUE" }
            print(line)
            switch step.status {
            case .waiting:
                let waits = workflow.map { state.waitingFor(step.id, in: $0) } ?? []
                print("    waits for: \(waits.isEmpty ? "the steps before it" : waits.joined(separator: ", "))")
            case .requested: print("    waits for: \(definition?.department ?? "the department")'s decision")
            case .awaitingResubmission: print("    waits for: the applicant's resubmission")
            case .awaitingDocuments:
                let missing =
                    (workflow?.missingDocuments(application: state.application, facts: state.facts ?? []) ?? [])
                    .filter { $0.steps.contains(step.id) }.map(\.name)
                print("    waits for the applicant's documents: \(missing.joined(separator: ", "))")
            default: break
            }
            let fromEarlier = (definition?.materials ?? []).compactMap { material -> String? in
                guard case .step(let field) = material.source else { return nil }
                return "\(material.name) from \(field)"
            }
            if !fromEarlier.isEmpty {
                print("    materials from earlier steps: \(fromEarlier.joined(separator: ", "))")
            }
            let shared = (definition?.materials ?? []).compactMap { material -> String? in
                guard let workflow,
                    let fact = workflow.fact(for: material, application: state.application, facts: state.facts ?? [])
                else { return nil }
                return "\(material.name) (\(fact.topic) \(fact.eventId))"
            }
            if !shared.isEmpty { print("    materials from shared data: \(shared.joined(separator: ", "))") }
        }
        if let completion = state.completion {
            print(
                "  completed \(ChinaTime.rfc3339(completion.completedAt)): \(completion.elapsedWorkingDays) working days, \(completion.serialWorkingDays) if serial"
            )
            if let documents = completion.documents {
                print(
                    "  documents: \(documents.submitted) handed in, \(documents.serial) if serial: \(documents.notBrought) the applicant did not have to bring"
                )
            }
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
        let now = Date()
        for state in cases {
            let open = state.steps.filter {
                [.requested, .awaitingResubmission, .awaitingDocuments].contains($0.status)
            }
            let overdue = state.overdueSteps(at: now).map(\.id)
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
