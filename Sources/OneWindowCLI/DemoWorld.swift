import Bus
import CitizenServices
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

/// What the demo's stories run on: the departments' simulators deciding with their connectors,
/// the orchestrator and the citizen services — all in this process, as services of one group, on
/// one accelerated clock (``speed``: two days a second) that starts on Monday 2 March 2026 at 09:00
/// China time. The stories (``RestaurantStory``, ``BirthStory``, ``HouseTransferStory``) run one
/// after another on it: each publishes its input as its department would, follows what reaches the
/// bus (``follow(_:done:handle:)``), prints it with working days and says what is missing.
///
/// Its files are `var/demo-<department>.sqlite`, `var/demo-connector-<department>.sqlite`,
/// `var/demo-orchestrator.sqlite` and `var/demo-citizen-services.sqlite` (``files``), emptied by
/// `onewindow demo` unless `--keep`. The services log warnings only; `DEMO_DEBUG=1` in the
/// environment shows their info lines.
struct DemoWorld: Sendable {
    /// The departments that decide: the restaurant's six and the real estate centre of the house
    /// transfer. (The household registry's birth is published on the bus, as its connector would.)
    static let departments: [DepartmentID] = RestaurantStory.departments + [.realEstate]
    /// How much faster than real time the clock runs: two days a second.
    static let speed = 2 * 86_400.0
    /// When the clock starts (a Monday, 09:00 China time).
    static let start = CivilDate("2026-03-02")!.chinaTime(hour: 9)
    /// The longest a story may take in real time before it gives up.
    static let timeLimit = Duration.seconds(40)
    /// How long a story waits in real time for its next event before it gives up: twenty days on
    /// the clock, longer than any department takes to decide (fire safety's 7 working days).
    static let idleLimit = Duration.seconds(10)
    /// The files, relative to the working directory, without their `-wal`/`-shm` companions.
    static var files: [String] {
        ["var/demo-orchestrator.sqlite", "var/demo-citizen-services.sqlite"]
            + departments.flatMap { ["var/demo-\($0.rawValue).sqlite", "var/demo-connector-\($0.rawValue).sqlite"] }
    }

    let log: any EventLog
    let catalog: TopicCatalog
    let calendar: WorkingDayCalendar
    let clock: AcceleratedClock
    let orchestrator: OrchestratorEngine
    let publisher: Publisher
    let write: @Sendable (String) -> Void
    private let group: ServiceGroup
    private let running: Task<Void, any Error>
    private let ended: StopFlag

    /// Opens the departments' databases and connectors, the orchestrator's and the citizen
    /// services' stores, with the rules and connector files of the given folders, and starts them.
    static func start(
        log: any EventLog, catalog: TopicCatalog, rulesDirectory: String = "Rules",
        connectorsDirectory: String = "Connectors", write: @escaping @Sendable (String) -> Void
    ) async throws -> DemoWorld {
        var logger = Logger(label: "onewindow.demo")
        logger.logLevel = ProcessInfo.processInfo.environment["DEMO_DEBUG"] != nil ? .info : .warning
        var quiet = logger
        quiet.logLevel = .error  // not the calendar's "2027 is provisional" seven times over
        let rules = URL(fileURLWithPath: rulesDirectory)
        let calendar = try WorkingDayCalendar.load(from: rules.appendingPathComponent(RuleBook.calendarFile))
        let ruleBook = try RuleBook.load(directory: rules, catalog: catalog)
        let citizenRules = try CitizenServicesRules.load(directory: rules, catalog: catalog)
        try FileManager.default.createDirectory(atPath: "var", withIntermediateDirectories: true)

        // The departments' databases and connectors first: they take a while to open, and the
        // clock starts after. Connectors keep real time (the desks put a request's real arrival
        // time on their own clock), as they do as processes.
        var services: [any Service] = []
        var databases: [DepartmentDatabase] = []
        for department in departments {
            databases.append(try DepartmentDatabase.open(department, path: "var/demo-\(department.rawValue).sqlite"))
            var configuration = try ConnectorConfiguration.load(
                path: "\(connectorsDirectory)/\(department.rawValue).yaml")
            configuration.database = "var/demo-\(department.rawValue).sqlite"
            configuration.state = "var/demo-connector-\(department.rawValue).sqlite"
            services.append(try Connector(configuration: configuration, log: log, catalog: catalog, logger: logger))
        }
        let store = try OrchestratorStore(path: "var/demo-orchestrator.sqlite")
        let citizenStore = try CitizenStore(path: "var/demo-citizen-services.sqlite")

        // The simulators deciding, the orchestrator and the citizen services, on the clock.
        let clock = AcceleratedClock(speed: speed, start: start)
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
        let orchestrator = try OrchestratorEngine(
            store: store, rules: ruleBook, calendar: calendar, log: log, catalog: catalog, clock: clock, logger: logger)
        services += try OrchestratorServices.make(orchestrator, metricsPort: nil)
        let citizen = CitizenServicesEngine(
            store: citizenStore, rules: citizenRules, log: log, clock: clock, logger: logger)
        services += try CitizenServicesGroup.make(citizen, metricsPort: nil)

        let group = ServiceGroup(services: services, gracefulShutdownSignals: [], logger: logger)
        let ended = StopFlag()
        let running = Task {
            defer { ended.set() }
            try await group.run()
        }
        return DemoWorld(
            log: log, catalog: catalog, calendar: calendar, clock: clock, orchestrator: orchestrator,
            publisher: Publisher(log: log, catalog: catalog, name: "onewindow demo", clock: clock), write: write,
            group: group, running: running, ended: ended)
    }

    /// Stops every service and waits for them; rethrows what ended the group.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await running.value
    }

    /// A consumer of `topics` in a group of its own, to follow one story from before its input.
    func watcher(_ name: String, topics: [String]) async throws -> any LogConsumer {
        try await log.makeConsumer(.group("demo-story-\(name)", topics: topics))
    }

    /// Polls `watcher` and hands each event to `handle`, which says whether it belonged to the
    /// story, until `done` says every step happened, nothing of the story came for ``idleLimit``,
    /// the whole took ``timeLimit`` or the services ended. Closes the watcher.
    func follow(
        _ watcher: any LogConsumer, done: () throws -> Bool, handle: (Event, JSONValue) throws -> Bool
    ) async throws {
        let real = ContinuousClock()
        let deadline = real.now.advanced(by: Self.timeLimit)
        var lastSeen = real.now
        do {
            while real.now < deadline, real.now - lastSeen < Self.idleLimit, !ended.isSet {
                // One poll returns its topics one after another, not in the order things happened:
                // a decision and the requests it set off, appended between two polls, came back
                // requests first (the watcher lists the request topics first), and the story
                // printed the fan-out before the decision that caused it. So each poll's events
                // are told in the order of their times (on the one clock of the demo's world),
                // in the order polled when two share an instant.
                let events = try await watcher.poll(maxRecords: 100, timeout: .milliseconds(100)).enumerated().map {
                    (index: $0.offset, event: try CloudEventsBinding.event(from: $0.element))
                }
                for (_, event) in events.sorted(by: { ($0.event.time, $0.index) < ($1.event.time, $1.index) }) {
                    if try handle(event, try JSONValue.parse(event.data)) { lastSeen = real.now }
                }
                if try done() { break }
            }
        } catch {
            await watcher.close()
            throw error
        }
        await watcher.close()
    }

    /// Waits on the clock until the office is open — a working day, 09:00 to 16:00 China time —
    /// so that a story's input arrives when a desk would take it (at most a weekend and a night:
    /// under two seconds at two days a second).
    func waitForOfficeHours() async throws {
        let time = ChinaTime.dateTime(at: clock.now())
        let workingDay = try calendar.isWorkingDay(time.date)
        if workingDay, (9..<16).contains(time.hour) { return }
        let opening = workingDay && time.hour < 9 ? time.date : try calendar.addingWorkingDays(1, to: time.date)
        try await clock.sleep(until: opening.chinaTime(hour: 9))
    }

    /// `working day 3 (2026-03-05)`: an instant counted in working days after the day `since`.
    func day(_ instant: Date, since: Date) -> String {
        let first = ChinaTime.date(at: since)
        let days = (try? calendar.workingDays(after: first, through: ChinaTime.date(at: instant))) ?? 0
        return "working day \(days) (\(ChinaTime.date(at: instant)))"
    }

    /// A new application id on the pattern of the workflow's prefix, e.g. `RA-2026-123456`.
    func applicationId(prefix: String) -> String {
        String(format: "\(prefix)-%04d-%06d", ChinaTime.date(at: clock.now()).year, Int(Date().timeIntervalSince1970 * 10) % 1_000_000)
    }
}

/// What reached the bus for one application: its requests and decisions, the text messages
/// requested for it and the orchestrator's completion record (``DemoWorld/followApplication``).
struct ApplicationTrace: Sendable {
    var requests: [JSONValue] = []
    var decisions: [JSONValue] = []
    /// The SMS templates requested for the application.
    var notifications: [String] = []
    var completion: CompletionRecord?

    /// The request of `item`, if it came.
    func request(_ item: String) -> JSONValue? { requests.first { $0[pointer: "/item"]?.stringValue == item } }
    /// The decision on `item`, if it came.
    func decision(_ item: String) -> JSONValue? { decisions.first { $0[pointer: "/item"]?.stringValue == item } }
    /// What is missing for an application whose steps are `expected` by the request's and
    /// decision's `field` (`department` or `item`), with its received and completed messages and
    /// its completion record; empty when every step happened.
    func missing(_ expected: [String], by field: String) -> [String] {
        var missing: [String] = []
        for name in expected {
            if !requests.contains(where: { $0[pointer: "/\(field)"]?.stringValue == name }) {
                missing.append("the request to \(name)")
            }
            if !decisions.contains(where: { $0[pointer: "/\(field)"]?.stringValue == name }) {
                missing.append("the decision of \(name)")
            }
        }
        for template in ["application-received", "application-completed"] where !notifications.contains(template) {
            missing.append("the \(template) text message")
        }
        if completion == nil { missing.append("the completion record") }
        return missing
    }
}

extension DemoWorld {
    /// Submits `application` (of `type`, with its `applicationId` set) as the front desk does and
    /// follows it to completion, printing each request, decision and text message with its working
    /// day; `note` adds to a request's or decision's line what the story wants seen (e.g. a field).
    /// `complete` says when the trace has everything the story waits for.
    func followApplication(
        _ application: JSONValue, type: String, note: (String, JSONValue) -> String = { _, _ in "" },
        complete: (ApplicationTrace) -> Bool
    ) async throws -> ApplicationTrace {
        let id = application[pointer: "/applicationId"]?.stringValue ?? ""
        let watched =
            catalog.topics(carrying: "approval.requested").map(\.name)
            + catalog.topics(carrying: "approval.decided").map(\.name) + ["notification.sms.requested"]
        let consumer = try await watcher(id, topics: watched)
        let submitted = ChinaTime.parse(application[pointer: "/submittedAt"]?.stringValue ?? "") ?? clock.now()
        _ = try await publisher.publish(
            Event(type: type, source: "/onewindow/front-desk", subject: nil, data: application.serialized()))

        var trace = ApplicationTrace()
        try await follow(
            consumer,
            done: {
                if trace.completion == nil, let completion = try orchestrator.store.findCase(id)?.state.completion {
                    trace.completion = completion
                }
                return complete(trace)
            },
            handle: { event, body in
                guard body[pointer: "/applicationId"]?.stringValue == id else { return false }
                let department = body[pointer: "/department"]?.stringValue ?? "?"
                let item = body[pointer: "/item"]?.stringValue ?? "?"
                switch event.type {
                case "approval.requested":
                    trace.requests.append(body)
                    let due = body[pointer: "/dueBy"]?.stringValue ?? "?"
                    write("   → request  \(department): \(item), due \(due)\(note(event.type, body)) — \(day(event.time, since: submitted))")
                case "approval.decided":
                    trace.decisions.append(body)
                    let outcome = body[pointer: "/decision"]?.stringValue ?? "?"
                    let licence = body[pointer: "/licenceNumber"]?.stringValue.map { ", \($0)" } ?? ""
                    write("   ← decision \(department): \(outcome)\(licence)\(note(event.type, body)) — \(day(event.time, since: submitted))")
                default:
                    let template = body[pointer: "/template"]?.stringValue ?? "?"
                    trace.notifications.append(template)
                    write("   ✉ SMS requested: \(template) to \(Masking.phone(body[pointer: "/mobile"]?.stringValue ?? "-")) — \(day(event.time, since: submitted))")
                }
                return true
            })
        if let completion = trace.completion {
            // A workflow whose steps run one after another anyway (the house transfer) has no
            // serial sum to beat: its line says so rather than compare.
            let serial =
                completion.serialWorkingDays > completion.elapsedWorkingDays
                ? "one step after another it would take \(completion.serialWorkingDays)"
                : "its steps take \(completion.serialWorkingDays) of them, one after another as the workflow orders"
            write("\n   completed in \(completion.elapsedWorkingDays) working days; \(serial)")
            for (step, days) in completion.stepWorkingDays.sorted(by: { $0.key < $1.key }) {
                write("     \(step): \(days) working day(s)")
            }
        }
        return trace
    }
}
