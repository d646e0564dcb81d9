import CivilTime
import EventLog
import EventModel
import Foundation
import Logging
import Synchronization

/// A department system at work, as `onewindow dept-sim` runs it: seed its database, generate rows
/// at a rate, and decide approval requests (or, for the SMS gateway, send queued messages) as
/// their processing time passes on its clock.
public final class DepartmentSimulator: Sendable {
    /// What the simulator does.
    public struct Options: Sendable {
        /// Seed the database with the simulated Chancheng first. Default: false.
        public var seed: Bool = false
        /// Generate rows at this many a second; `nil` generates none. Default: `nil`.
        public var rate: Double?
        /// When generating ends. Default: `.unlimited`.
        public var limit: GenerationLimit = .unlimited
        /// The generator's options (tables, bad fraction, update fraction, seed).
        public var generator = RowGenerator.Options()
        /// Decide pending approval requests (the SMS gateway: send queued messages). Default: false.
        public var decide = false
        /// How often the inbox is looked at, in real time. Default: 500 ms.
        public var decideInterval: Duration = .milliseconds(500)
        /// The working-day calendar file, read when deciding (unless the simulator is given a
        /// calendar). Default: `Rules/calendar.yaml` under the working directory.
        public var calendarFile = URL(fileURLWithPath: WorkingDayCalendar.defaultPath)

        /// The defaults: do nothing.
        public init() {}
    }

    /// The department's database.
    public let database: DepartmentDatabase
    /// What to do.
    public let options: Options
    /// The department's clock.
    public let clock: any WallClock
    /// The working days, when given rather than read from ``Options/calendarFile``.
    public let calendar: WorkingDayCalendar?
    private let logger: Logger
    private let stopped = Mutex(false)

    /// A simulator for a department's database.
    /// - Parameters:
    ///   - clock: the department's time. Default: the system clock.
    ///   - calendar: the working days. Default: read from ``Options/calendarFile`` when deciding.
    public init(
        database: DepartmentDatabase, options: Options, clock: any WallClock = .system,
        calendar: WorkingDayCalendar? = nil, logger: Logger
    ) {
        self.database = database
        self.options = options
        self.clock = clock
        self.calendar = calendar
        self.logger = logger
    }

    /// Asks the simulator to stop after the transaction under way.
    public func stop() { stopped.withLock { $0 = true } }

    /// Whether ``stop()`` was called.
    public var isStopped: Bool { stopped.withLock { $0 } }

    /// One long-running loop of the simulator: generating rows, or deciding requests (sending
    /// messages). `onewindow dept-sim` runs each as a `Service` of one `ServiceGroup`.
    public struct Loop: Sendable {
        /// `generate` or `decide`.
        public let name: String
        /// Whether the loop ends by itself (generating up to --count or --duration); the decide
        /// loop runs until ``DepartmentSimulator/stop()``.
        public let endsByItself: Bool
        /// Runs the loop until `shouldStop` says so (or, generating, until its limit); it returns
        /// after the transaction under way. Each loop takes its own `shouldStop`, so that a group
        /// of services can stop them one at a time.
        public let run: @Sendable (_ shouldStop: @escaping @Sendable () -> Bool) async throws -> Void
    }

    /// Seeds the database when asked, then returns the loops to run: generating when a rate is
    /// given, deciding when asked to.
    /// - Throws: a database error, ``DepartmentSimulatorError`` for options the department cannot
    ///   do, or `WorkingDayCalendarError` when the calendar file cannot be read.
    public func prepare() async throws -> [Loop] {
        let department = database.system.id
        if options.seed {
            let report = try await database.seed(clock: clock)
            if report.alreadySeeded {
                logger.notice("\(department): already seeded; nothing written")
            } else {
                let tables = report.rows.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(
                    separator: ", ")
                logger.notice("\(department): seeded \(tables)")
            }
        }
        let generator: RowGenerator? = try options.rate.map { _ in
            try RowGenerator(database: database, options: options.generator, clock: clock)
        }
        let desk: DecisionDesk? = options.decide && database.system.approves ? try makeDesk() : nil
        let gateway: SmsGateway? =
            options.decide && department == .smsGateway
            ? try SmsGateway(database: database, clock: clock) : nil
        if options.decide, desk == nil, gateway == nil {
            throw DepartmentSimulatorError("\(department) answers no approval requests: --decide does nothing there")
        }
        var loops: [Loop] = []
        if let generator, let rate = options.rate {
            loops.append(Loop(name: "generate", endsByItself: true) { shouldStop in
                try await self.generate(generator, rate: rate, shouldStop: shouldStop)
            })
        }
        if desk != nil || gateway != nil {
            loops.append(Loop(name: "decide", endsByItself: false) { shouldStop in
                try await self.work(desk: desk, gateway: gateway, shouldStop: shouldStop)
            })
        }
        return loops
    }

    /// The decision desk, with the calendar given or read from ``Options/calendarFile``.
    private func makeDesk() throws -> DecisionDesk {
        let calendar = try self.calendar ?? WorkingDayCalendar.load(from: options.calendarFile)
        if !calendar.provisionalYears.isEmpty {
            let years = calendar.provisionalYears.sorted().map(String.init).joined(separator: ", ")
            logger.warning(
                "\(database.system.id): the working-day calendar \(calendar.source) is provisional for \(years) (statutory days only, not the State Council's notice yet)"
            )
        }
        return try DecisionDesk(database: database, calendar: calendar, clock: clock)
    }

    /// Seeds, then generates and decides until stopped — or, when it does not decide, until the
    /// generation limit is reached.
    /// - Throws: a database error, ``DepartmentSimulatorError`` for options the department cannot
    ///   do, or `WorkingDayCalendarError` when the calendar file cannot be read or a due date is
    ///   outside its years.
    public func run() async throws {
        let loops = try await prepare()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for loop in loops { group.addTask { try await loop.run { self.isStopped } } }
            try await group.waitForAll()
        }
        logger.notice("\(database.system.id): stopped")
    }

    private func generate(
        _ generator: RowGenerator, rate: Double, shouldStop: @escaping @Sendable () -> Bool
    ) async throws {
        let department = database.system.id
        let tables = generator.specs.map(\.table).joined(separator: ", ")
        let limit: String =
            switch options.limit {
            case .count(let count): "\(count) rows"
            case .duration(let duration): "\(duration)"
            case .unlimited: "until stopped"
            }
        let pace = rate.isFinite ? "\(rate) rows/s" : "as fast as possible"
        let fractions =
            "bad fraction \(options.generator.badFraction), update fraction \(options.generator.updateFraction)"
        logger.notice("\(department): generating \(pace) into \(tables), \(limit), \(fractions)")
        let start = ContinuousClock.now  // the real time taken, whatever the department's clock
        let logger = self.logger
        let report = try await generator.run(
            rate: rate, limit: options.limit, shouldStop: shouldStop,
            progress: { report in
                logger.info(
                    "\(department): \(report.inserted) rows inserted (\(report.bad) bad), \(report.updated) updated")
            })
        let elapsed = ContinuousClock.now - start
        let seconds = elapsed.seconds
        let perSecond = seconds > 0 ? Int(Double(report.written) / seconds) : report.written
        let took = String(format: "%.1f", seconds)
        let rows = "\(report.inserted) rows (\(report.bad) bad) and \(report.updated) updates"
        logger.notice("\(department): generated \(rows) in \(took) s, \(perSecond) rows/s")
    }

    private func work(desk: DecisionDesk?, gateway: SmsGateway?, shouldStop: @Sendable () -> Bool) async throws {
        let department = database.system.id
        if let desk {
            let days = desk.policy.processingDays
            let now = ChinaTime.rfc3339(clock.now())
            logger.notice("\(department): deciding requests after \(days) working day(s); clock at \(now)")
        } else {
            logger.notice("\(department): sending queued text messages")
        }
        while !shouldStop() {
            if let desk {
                for decided in try await desk.decideDue() {
                    let applicant = decided.applicantName.map { " for \(Masking.name($0))" } ?? ""
                    let detail =
                        switch decided.decision.outcome {
                        case .approved: decided.decision.licenceNumber.map { ", licence \($0)" } ?? ""
                        case .rejected, .needsMoreInformation: ": \(decided.decision.reason ?? "")"
                        }
                    let outcome = decided.decision.outcome.rawValue
                    let when = ChinaTime.rfc3339(decided.decidedAt)
                    let request = "\(decided.applicationId) \(decided.item)\(applicant)"
                    logger.notice("\(department): \(request) \(outcome)\(detail) at \(when)")
                }
            }
            if let gateway {
                for message in try await gateway.sendPending() {
                    let phone = Masking.phone(message.mobile)
                    logger.notice("\(department): sent \(message.template) to \(phone) (\(message.eventId))")
                }
            }
            var waited = Duration.zero
            while waited < options.decideInterval, !shouldStop() {
                try await Task.sleep(for: .milliseconds(50))
                waited += .milliseconds(50)
            }
        }
    }
}
