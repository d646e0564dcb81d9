import ArgumentParser
import Bus
import CivilTime
import ConfigFiles
import EventLog
import EventSchemas
import Foundation
import Logging
import ServiceLifecycle
import SharedView

/// The shared view's file option the view commands share.
struct ViewOption: ParsableArguments {
    @Option(name: .long, help: "The shared view's store (SQLite).")
    var view: String = "var/shared-view.sqlite"
}

/// Loads Rules/shared-view.yaml (status 78 on a problem, 66 when missing).
func loadViewRules(_ directory: String, catalog: TopicCatalog) throws -> ViewRules {
    try loadRuleFile(directory, ViewRules.fileName) { try ViewRules.load(path: $0, catalog: catalog) }
}

/// Loads Rules/comparison.yaml against the view's kinds.
func loadComparisonRules(_ directory: String, view: ViewRules) throws -> ComparisonRules {
    try loadRuleFile(directory, ComparisonRules.fileName) { try ComparisonRules.load(path: $0, view: view) }
}

private func loadRuleFile<T>(_ directory: String, _ name: String, _ load: (String) throws -> T) throws -> T {
    let path = URL(fileURLWithPath: directory).appendingPathComponent(name).path
    do {
        return try load(path)
    } catch let error as ConfigFileError {
        let missing = !FileManager.default.fileExists(atPath: path)
        throw CommandFailure(missing ? .notFound : .configuration, error.description)
    }
}

private func openView(_ path: String) throws -> SharedViewStore {
    do {
        return try SharedViewStore.openExisting(path: path)
    } catch let error as ViewStoreError {
        throw CommandFailure(.notFound, error.description)
    }
}

/// `onewindow view run | rebuild`.
struct ViewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "view",
        abstract: "Run or rebuild the shared data view (the departments' latest facts per person and company).",
        subcommands: [Run.self, Rebuild.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Consume the departments' fact topics into the shared view.",
            discussion: """
                Joins consumer group onewindow.shared-view on every topic Rules/shared-view.yaml \
                names and keeps the latest fact per subject and kind in the store. A restart \
                resumes from the committed offsets. Stops cleanly on SIGTERM or SIGINT. What may \
                pass (the bus unreachable, the store busy) is retried with back-off; what cannot \
                (the bus closed or broken, the store damaged) ends it with status 75: run it under \
                a supervisor, and a restart resumes where the last committed batch ended.
                Examples:
                  onewindow view run
                  onewindow view run --bus kafka:localhost:9092 --metrics-port 9466
                """)
        @OptionGroup var options: BusOptions
        @OptionGroup var view: ViewOption
        @Option(help: "The rules directory.") var rules: String = "Rules"
        @Option(help: "Serve Prometheus metrics at http://127.0.0.1:PORT/metrics. Default: none.")
        var metricsPort: Int?
        @Option(help: "Log level: trace, debug, info, notice, warning, error.")
        var logLevel: String = "info"

        func run() async throws {
            let level = bootstrapLogging(logLevel)
            let logger = Logger(label: "onewindow.view")
            if metricsPort != nil { SharedViewServices.bootstrapMetrics() }
            let catalog = try options.loadCatalog()
            let viewRules = try loadViewRules(rules, catalog: catalog)
            let log = try options.openLog(create: true, kafkaLogLevel: level)
            let engine = SharedViewEngine(
                store: try SharedViewStore(path: view.view), rules: viewRules, log: log, catalog: catalog,
                logger: logger)
            let address = try options.address()
            logger.notice("shared view starting: \(viewRules.kinds.count) kinds, store \(view.view), bus \(address)")
            try await runServiceGroup(
                try SharedViewServices.make(engine, metricsPort: metricsPort), log: log, logger: logger,
                name: "shared view")
            let totals = engine.stats.snapshot
            logger.notice("shared view stopped: \(totals.factsIngested) fact(s) ingested, \(totals.skipped) skipped")
        }
    }

    struct Rebuild: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build the view afresh from the topics into a new store and report how it differs from the live one.",
            discussion: """
                Reads every partition of the view's topics from its first record to its end (no \
                consumer group), writes the facts into --into, and lists each fact the new and the \
                live store do not share. Exits 1 when they differ. Run it when the live view has \
                caught up (`onewindow groups lag onewindow.shared-view`), or differences are lag.
                Example:
                  onewindow view rebuild --into var/shared-view.rebuilt.sqlite
                """)
        @OptionGroup var options: BusOptions
        @OptionGroup var view: ViewOption
        @Option(help: "The rules directory.") var rules: String = "Rules"
        @Option(help: "The new store (must not exist).") var into: String = "var/shared-view.rebuilt.sqlite"

        func run() async throws {
            let catalog = try options.loadCatalog()
            let viewRules = try loadViewRules(rules, catalog: catalog)
            let live = try openView(view.view)
            let started = ContinuousClock.now
            let (rebuilt, facts) = try await withLog(options) { log in
                do {
                    return try await SharedViewEngine.rebuild(log: log, rules: viewRules, catalog: catalog, into: into)
                } catch let error as ViewStoreError {
                    throw CommandFailure(.refused, error.description)
                }
            }
            let seconds = (ContinuousClock.now - started).seconds
            print("rebuilt \(into) from \(facts) fact event(s) in \(String(format: "%.1f", seconds)) s")
            let differences = try await rebuilt.differences(from: live)
            if differences.isEmpty {
                print("no difference from \(view.view)")
            } else {
                differences.forEach { print($0) }
                throw CommandFailure(.failure, "the rebuilt view differs from \(view.view) (\(differences.count) shown)")
            }
        }
    }
}

/// `onewindow compare ID | --all`: data comparison.
struct CompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Put side by side what each department holds about a person or company and flag disagreements.",
        discussion: """
            Reads the shared view (recorded in its usage log as reader data-comparison) and \
            applies Rules/comparison.yaml; each new disagreement raises one \
            supervision.alert.raised on the bus (a disagreement found before is not raised again).
            Exits 1 when a rule fired.
            Examples:
              onewindow compare 440604199308220247
              onewindow compare --all
            """)
    @OptionGroup var options: BusOptions
    @OptionGroup var view: ViewOption
    @Option(help: "The rules directory.") var rules: String = "Rules"
    @Flag(help: "Compare every subject in the view and report the rate.") var all = false
    @Argument(help: "A resident ID or unified social credit code.") var subject: String?

    func validate() throws {
        if all == (subject != nil) { throw ValidationError("name one resident ID or credit code, or --all") }
    }

    func run() async throws {
        let catalog = try options.loadCatalog()
        let viewRules = try loadViewRules(rules, catalog: catalog)
        let comparison = try loadComparisonRules(rules, view: viewRules)
        let store = try openView(view.view)
        var fired = false
        try await withLog(options) { log in
            let engine = SharedViewEngine(
                store: store, rules: viewRules, comparison: comparison, log: log, catalog: catalog)
            if let subject {
                let result = try await engine.compare(subject: subject)
                print(CompareCommand.sideBySide(result, rules: comparison))
                fired = !result.discrepancies.isEmpty
            } else {
                let run = try await engine.compareAll()
                print(
                    "compared \(run.subjects) subject(s) in \(String(format: "%.1f", run.seconds)) s (\(Int(run.subjectsPerSecond)) subjects/s): \(run.discrepancies) disagreement(s), \(run.newAlerts) new alert(s)"
                )
                fired = run.discrepancies > 0
            }
        }
        if fired {
            throw CommandFailure(.failure, "the departments' data disagree (see above); each new disagreement raised a supervision alert")
        }
    }

    /// The facts by department, each with its kind, date and named fields, then each disagreement.
    static func sideBySide(_ result: SharedViewEngine.Comparison, rules: ComparisonRules) -> String {
        var lines: [String] = []
        if result.facts.isEmpty { lines.append("the shared view holds no facts about \(result.subject)") }
        let byDepartment = Dictionary(grouping: result.facts, by: \.department)
        for department in byDepartment.keys.sorted() {
            lines.append(department)
            for fact in byDepartment[department] ?? [] {
                let fields = (rules.view.kinds[fact.kind]?.fields.keys.sorted() ?? []).compactMap { field in
                    rules.value(field, of: fact).map { "\(field)=\($0)" }
                }
                let qualifier = fact.qualifier.isEmpty ? "" : " [\(fact.qualifier)]"
                lines.append(
                    "  \(fact.kind)\(qualifier)  \(ChinaTime.rfc3339(fact.time))  \(fields.joined(separator: "  "))  (\(fact.eventId))"
                )
            }
        }
        if result.discrepancies.isEmpty {
            lines.append("no disagreement")
        } else {
            for discrepancy in result.discrepancies {
                let state = result.newAlerts.contains(discrepancy.alertId) ? "alert raised" : "alerted before"
                lines.append("DISAGREES \(discrepancy.rule): \(discrepancy.details)  [\(discrepancy.alertId), \(state)]")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// `onewindow data-usage ID`: who read a person's or company's facts.
struct DataUsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data-usage",
        abstract: "List who read a person's or company's facts in the shared view, when, why and which.",
        discussion: """
            Reads the view's usage log; listing it is not itself recorded.
            Example:
              onewindow data-usage 440604199308220247
            """)
    @OptionGroup var view: ViewOption
    @Argument(help: "A resident ID or unified social credit code.") var subject: String

    func run() async throws {
        let store = try openView(view.view)
        let usage = try await store.usage(of: subject)
        if usage.isEmpty { print("no recorded reads of \(subject)'s facts in \(view.view)") }
        for read in usage {
            let what = read.kind.map { "\($0): " } ?? "all facts: "
            let ids = read.eventIds.isEmpty ? "nothing found" : read.eventIds.joined(separator: ", ")
            print("\(ChinaTime.rfc3339(read.at))  \(read.reader)  \(read.reason)  \(what)\(ids)")
        }
    }
}
