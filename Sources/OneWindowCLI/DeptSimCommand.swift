import ArgumentParser
import CivilTime
import DepartmentSystems
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// `onewindow dept-sim <department>`: a simulated department system — its own SQLite database,
/// seed data, rows generated at a rate, and decisions on approval requests after the department's
/// processing time in working days.
public struct DeptSimCommand: AsyncParsableCommand {
    /// The command's name, help and examples.
    public static let configuration = CommandConfiguration(
        commandName: "dept-sim",
        abstract: "Run a simulated department system: seed it, generate rows, decide approval requests.",
        discussion: """
            Departments: \(DepartmentID.allCases.map(\.rawValue).joined(separator: ", ")).
            Examples:
              onewindow dept-sim household-registry --seed
              onewindow dept-sim household-registry --generate 200 --duration 60 \\
                  --bad-fraction 0.01
              onewindow dept-sim tax --generate max --count 1000000 --table tax_payments
              onewindow dept-sim food-safety --decide --speed 86400   # a day a second
              onewindow dept-sim sms-gateway --decide   # "send" the queued texts
            Runs until SIGINT or SIGTERM (the transaction under way is finished, the exit status is 0), or
            until --count or --duration is reached when it does not --decide.
            """)

    @Argument(help: "The department: a department id of Topics/catalog.yaml, or sms-gateway (see above).")
    var department: String

    @Option(help: "The department's SQLite database. Default: var/departments/<department>.sqlite.")
    var db: String?

    @Flag(help: "Seed the database with the simulated Chancheng (residents, households, companies, properties) first.")
    var seed = false

    @Option(help: "Generate rows at this many a second ('max' for as fast as possible).")
    var generate: String?

    @Option(help: "Stop generating after this many rows (inserts and updates).")
    var count: Int?

    @Option(help: "Stop generating after this many seconds.")
    var duration: Double?

    @Option(help: "Generate into this source table only (repeatable). Default: every source table of the department.")
    var table: [String] = []

    @Option(
        help: "The fraction of generated rows spoiled on purpose (bad check character, NULL, not a date).")
    var badFraction: Double = 0

    @Option(help: "The fraction of generated writes that update an existing row.")
    var updateFraction: Double = 0.02

    @Option(help: "The generator's random seed. Default: the current time.")
    var randomSeed: UInt64?

    @Flag(help: "Decide pending approval requests after the processing time (sms-gateway: send queued messages).")
    var decide = false

    @Option(
        help: "Run the department's clock this many times faster than real time (86400: a day a second).")
    var speed: Double = 1

    @Option(help: "Start the department's clock at a date (YYYY-MM-DD, 09:00 China time) or an RFC 3339 instant.")
    var start: String?

    @Option(help: "The rules folder: --decide reads the working-day calendar from its calendar.yaml.")
    var rules: String = "Rules"

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    /// A command with every option at its default (ArgumentParser fills them in).
    public init() {}

    /// Refuses options that do not go together, before anything runs.
    public func validate() throws {
        guard DepartmentID(rawValue: department) != nil else {
            let departments = DepartmentID.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("'\(department)' is not a department; use one of \(departments)")
        }
        if let generate, generate != "max", (Double(generate) ?? 0) <= 0 {
            throw ValidationError("--generate takes a number of rows a second above 0, or 'max'")
        }
        if generate == nil, count != nil || duration != nil || !table.isEmpty {
            throw ValidationError("--count, --duration and --table go with --generate")
        }
        if count != nil, duration != nil { throw ValidationError("give --count or --duration, not both") }
        if let count, count <= 0 { throw ValidationError("--count must be above 0") }
        if let duration, duration <= 0 { throw ValidationError("--duration must be above 0") }
        guard (0...1).contains(badFraction), (0...1).contains(updateFraction) else {
            throw ValidationError("--bad-fraction and --update-fraction are between 0 and 1")
        }
        guard speed > 0, speed.isFinite else { throw ValidationError("--speed must be a number above 0") }
        if let start, startInstant(start) == nil {
            throw ValidationError("--start '\(start)' is not a date (YYYY-MM-DD) or an RFC 3339 instant")
        }
        guard seed || generate != nil || decide else {
            throw ValidationError("nothing to do: give --seed, --generate or --decide")
        }
    }

    /// Opens (and migrates) the database and runs the simulator until done or signalled.
    public func run() async throws {
        bootstrapLogging(logLevel)
        let logger = Logger(label: "onewindow.dept-sim")
        let id = DepartmentID(rawValue: department)!
        let path = db ?? "var/departments/\(id.rawValue).sqlite"
        let database = try DepartmentDatabase.open(id, path: path)
        logger.notice("\(id): \(database.system.name), database \(path)")
        let clock = AcceleratedClock(speed: speed, start: start.flatMap(startInstant) ?? SystemWallClock().now())
        var options = DepartmentSimulator.Options()
        options.seed = seed
        options.decide = decide
        if let generate { options.rate = generate == "max" ? .infinity : Double(generate)! }
        if let count { options.limit = .count(count) }
        if let duration { options.limit = .duration(.milliseconds(Int64(duration * 1000))) }
        options.generator = RowGenerator.Options(
            tables: table.isEmpty ? nil : table, badFraction: badFraction, updateFraction: updateFraction,
            seed: randomSeed ?? UInt64(SystemWallClock().now().timeIntervalSince1970 * 1000))
        options.calendarFile = URL(fileURLWithPath: rules).appendingPathComponent("calendar.yaml")
        let simulator = DepartmentSimulator(database: database, options: options, clock: clock, logger: logger)
        let loops = try await simulator.prepare()
        // Each loop a service of one group. The generator returns when its --count or --duration is
        // done: without a decide loop that ends the group (not as a failure); beside one, the
        // decide loop goes on until SIGTERM or SIGINT.
        let deciding = loops.contains { !$0.endsByItself }
        let services = loops.map { loop in
            ServiceGroupConfiguration.ServiceConfiguration(
                service: DepartmentSimulatorService(simulator: simulator, loop: loop),
                successTerminationBehavior: loop.endsByItself && deciding ? .ignore : .gracefullyShutdownGroup)
        }
        var configuration = ServiceGroupConfiguration(services: services, logger: logger)
        configuration.gracefulShutdownSignals = [.sigterm, .sigint]
        try await ServiceGroup(configuration: configuration).run()
        logger.notice("\(id): stopped")
    }

    private func startInstant(_ text: String) -> Date? {
        if let day = CivilDate(text) { return day.chinaTime(hour: 9) }
        return ChinaTime.parse(text)
    }
}

/// One loop of the simulator as a service: on SIGTERM or SIGINT it finishes the transaction under
/// way and returns (a graceful shutdown asks the loop to stop; it does not cancel it). Each loop
/// has its own flag: a group shuts its services down one at a time, and a service that returns
/// before its turn counts as a failure.
struct DepartmentSimulatorService: Service, CustomStringConvertible {
    let simulator: DepartmentSimulator
    let loop: DepartmentSimulator.Loop

    var description: String { "dept-sim \(loop.name)" }

    func run() async throws {
        let stopped = StopFlag()
        try await withGracefulShutdownHandler {
            try await loop.run { stopped.isSet }
        } onGracefulShutdown: {
            stopped.set()
        }
    }
}

/// A flag set once, from the graceful-shutdown handler, and read by a loop.
final class StopFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
