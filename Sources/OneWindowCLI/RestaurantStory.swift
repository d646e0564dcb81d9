import Bus
import CivilTime
import Connectors
import DepartmentSystems
import EventLog
import EventModel
import EventSchemas
import Foundation
import Logging
import Orchestrator
import OrchestratorService
import ServiceLifecycle

/// The demo's second part: a restaurant application going through the orchestrator, with the six
/// departments' simulators deciding and their connectors carrying requests and decisions — all in
/// this process, as services of one group, on one accelerated clock (``speed``: two days a second).
///
/// The application is submitted on Monday 2 March 2026 at 09:20 China time; the story prints each
/// request, decision and text message as it reaches the bus, and at the end the completion record.
/// Its files are `var/demo-<department>.sqlite`, `var/demo-connector-<department>.sqlite` and
/// `var/demo-orchestrator.sqlite` (``files``), emptied by `onewindow demo` unless `--keep`.
/// The services log warnings only; `DEMO_DEBUG=1` in the environment shows their info lines.
public struct RestaurantStory: Sendable {
    let log: any EventLog
    let catalog: TopicCatalog
    let rulesDirectory: String
    let connectorsDirectory: String
    let write: @Sendable (String) -> Void

    /// The departments of the restaurant workflow, in the order of its steps.
    public static let departments: [DepartmentID] = [
        .marketRegulation, .foodSafety, .fireSafety, .environment, .urbanManagement, .tax,
    ]
    /// How much faster than real time the story's clock runs: two days a second.
    public static let speed = 2 * 86_400.0
    /// When the story's clock starts (a Monday, 09:00 China time).
    public static let start = CivilDate("2026-03-02")!.chinaTime(hour: 9)
    /// How long the story may take in real time before it gives up.
    public static let timeLimit = Duration.seconds(40)
    /// The story's files, relative to the working directory, without their `-wal`/`-shm` companions.
    public static var files: [String] {
        ["var/demo-orchestrator.sqlite"]
            + departments.flatMap { ["var/demo-\($0.rawValue).sqlite", "var/demo-connector-\($0.rawValue).sqlite"] }
    }

    /// What happened, for tests and the exit status.
    public struct Summary: Sendable {
        /// The departments a request was seen for, and those a decision was seen from.
        public var requested: [String] = []
        public var decided: [String] = []
        /// The SMS templates requested for the application.
        public var notifications: [String] = []
        /// The completion record, when the application completed.
        public var completion: CompletionRecord?

        /// What is missing for the whole story, empty when every step happened.
        public var missing: [String] {
            var missing: [String] = []
            for department in RestaurantStory.departments.map(\.rawValue) {
                if !requested.contains(department) { missing.append("the request to \(department)") }
                if !decided.contains(department) { missing.append("the decision of \(department)") }
            }
            for template in ["application-received", "application-completed"] where !notifications.contains(template) {
                missing.append("the \(template) text message")
            }
            if completion == nil { missing.append("the completion record") }
            return missing
        }
    }

    /// A story on `log`, with the rules and connector files of the given folders.
    public init(
        log: any EventLog, catalog: TopicCatalog, rulesDirectory: String = "Rules",
        connectorsDirectory: String = "Connectors", write: @escaping @Sendable (String) -> Void
    ) {
        self.log = log
        self.catalog = catalog
        self.rulesDirectory = rulesDirectory
        self.connectorsDirectory = connectorsDirectory
        self.write = write
    }

    /// Runs the departments, connectors and orchestrator until the application completes (or the
    /// time limit), printing the story; the summary says what happened.
    public func run() async throws -> Summary {
        var logger = Logger(label: "onewindow.demo")
        logger.logLevel = ProcessInfo.processInfo.environment["DEMO_DEBUG"] != nil ? .info : .warning
        var quiet = logger
        quiet.logLevel = .error  // not the calendar's "2027 is provisional" six times over
        let rules = URL(fileURLWithPath: rulesDirectory)
        let calendar = try WorkingDayCalendar.load(from: rules.appendingPathComponent(RuleBook.calendarFile))
        let ruleBook = try RuleBook.load(directory: rules, catalog: catalog)
        try FileManager.default.createDirectory(atPath: "var", withIntermediateDirectories: true)

        // The departments' databases and connectors first: they take a while to open, and the
        // story's clock starts after. Connectors keep real time (the desks put a request's real
        // arrival time on their own clock), as they do as processes.
        var services: [any Service] = []
        var databases: [DepartmentDatabase] = []
        for department in Self.departments {
            databases.append(try DepartmentDatabase.open(department, path: "var/demo-\(department.rawValue).sqlite"))
            var configuration = try ConnectorConfiguration.load(
                path: "\(connectorsDirectory)/\(department.rawValue).yaml")
            configuration.database = "var/demo-\(department.rawValue).sqlite"
            configuration.state = "var/demo-connector-\(department.rawValue).sqlite"
            services.append(try Connector(configuration: configuration, log: log, catalog: catalog, logger: logger))
        }
        let store = try OrchestratorStore(path: "var/demo-orchestrator.sqlite")
        let watched =
            catalog.topics(carrying: "approval.requested").map(\.name)
            + catalog.topics(carrying: "approval.decided").map(\.name) + ["notification.sms.requested"]
        let id = String(format: "RA-2026-%06d", Int(Date().timeIntervalSince1970) % 1_000_000)
        let watcher = try await log.makeConsumer(.group("demo-story-\(id)", topics: watched))

        // The simulators deciding and the orchestrator, on the story's clock; all one group.
        let clock = AcceleratedClock(speed: Self.speed, start: Self.start)
        for database in databases {
            var options = DepartmentSimulator.Options()
            options.decide = true
            options.decideInterval = .milliseconds(50)
            let simulator = DepartmentSimulator(
                database: database, options: options, clock: clock, calendar: calendar, logger: quiet)
            for loop in try await simulator.prepare() {
                services.append(DepartmentSimulatorService(simulator: simulator, loop: loop))
            }
        }
        let engine = try OrchestratorEngine(
            store: store, rules: ruleBook, calendar: calendar, log: log, catalog: catalog, clock: clock, logger: logger)
        services += try OrchestratorServices.make(engine, metricsPort: nil)
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [], logger: logger)
        let ended = StopFlag()
        let running = Task {
            defer { ended.set() }
            try await group.run()
        }

        var summary = Summary()
        do {
            summary = try await watch(
                watcher, engine: engine, calendar: calendar, clock: clock, id: id, groupEnded: { ended.isSet })
        } catch {
            await watcher.close()
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            throw error
        }
        await watcher.close()
        await group.triggerGracefulShutdown()
        try await running.value
        return summary
    }

    private func watch(
        _ watcher: any LogConsumer, engine: OrchestratorEngine, calendar: WorkingDayCalendar, clock: AcceleratedClock,
        id: String, groupEnded: () -> Bool
    ) async throws -> Summary {
        let submitted = clock.now()
        var application = catalog.schemas["application.restaurant.submitted"]?.examples.first ?? .object([:])
        application.set(.string(id), at: "/applicationId")
        application.set(.string(ChinaTime.rfc3339(submitted)), at: "/submittedAt")
        application.set(.number(200), at: "/business/areaSquareMetres")  // large enough for the fire inspection
        application.set(.integer(60), at: "/business/seats")
        application.set(.bool(true), at: "/business/hasOutdoorSignboard")  // and a sign to permit
        let publisher = Publisher(log: log, catalog: catalog, name: "onewindow demo", clock: clock)
        let event = Event(
            type: "application.restaurant.submitted", source: "/onewindow/front-desk", subject: nil,
            data: application.serialized())
        write("   submitted \(id), 佛山市禅城区粤味轩餐饮店 (200 m², 60 seats, an outdoor sign), on \(ChinaTime.rfc3339(submitted))")
        _ = try await publisher.publish(event)

        let submittedDay = ChinaTime.date(at: submitted)
        func day(_ instant: Date) -> String {
            let days = (try? calendar.workingDays(after: submittedDay, through: ChinaTime.date(at: instant))) ?? 0
            return "working day \(days) (\(ChinaTime.date(at: instant)))"
        }
        var summary = Summary()
        let real = ContinuousClock()
        let deadline = real.now.advanced(by: Self.timeLimit)
        while real.now < deadline, !groupEnded() {
            for record in try await watcher.poll(maxRecords: 100, timeout: .milliseconds(100)) {
                let event = try CloudEventsBinding.event(from: record)
                let body = try JSONValue.parse(event.data)
                guard body[pointer: "/applicationId"]?.stringValue == id else { continue }
                let department = body[pointer: "/department"]?.stringValue ?? "?"
                let item = body[pointer: "/item"]?.stringValue ?? "?"
                switch event.type {
                case "approval.requested":
                    summary.requested.append(department)
                    let due = body[pointer: "/dueBy"]?.stringValue ?? "?"
                    write("   → request  \(department): \(item), due \(due) — \(day(event.time))")
                case "approval.decided":
                    summary.decided.append(department)
                    let outcome = body[pointer: "/decision"]?.stringValue ?? "?"
                    let licence = body[pointer: "/licenceNumber"]?.stringValue.map { ", \($0)" } ?? ""
                    write("   ← decision \(department): \(outcome)\(licence) — \(day(event.time))")
                default:
                    let template = body[pointer: "/template"]?.stringValue ?? "?"
                    summary.notifications.append(template)
                    write("   ✉ SMS requested: \(template) to \(Masking.phone(body[pointer: "/mobile"]?.stringValue ?? "-")) — \(day(event.time))")
                }
            }
            if summary.completion == nil, let completion = try engine.store.findCase(id)?.state.completion {
                summary.completion = completion
            }
            if summary.missing.isEmpty { break }
        }
        if let completion = summary.completion {
            write(
                "\n   completed in \(completion.elapsedWorkingDays) working days; one step after another it would take \(completion.serialWorkingDays)"
            )
            for (step, days) in completion.stepWorkingDays.sorted(by: { $0.key < $1.key }) {
                write("     \(step): \(days) working day(s)")
            }
        }
        return summary
    }
}
