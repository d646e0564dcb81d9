import Bus
import CivilTime
import EventLog
import EventSchemas
import Foundation
import GRDB
import Logging
import Metrics
import Synchronization

/// Counts of what a connector did, for logs, metrics and tests.
public final class ConnectorStats: Sendable {
    public struct Snapshot: Sendable, Hashable {
        /// Source records read (rows, posted bodies, file lines).
        public var recordsIn = 0
        /// Events published to their topics.
        public var published = 0
        /// Records sent to the dead-letter topic.
        public var deadLettered = 0
        /// Events a sink delivered into the department's system.
        public var delivered = 0
        /// Source rows not yet published (table sources), as last measured.
        public var sourceLag = 0
        /// Records on the bus not yet handled, per sink consumer group, as last measured.
        public var sinkLag: [String: Int] = [:]
    }

    private let state = Mutex(Snapshot())
    private let recordsIn: Counter
    private let published: Counter
    private let deadLettered: Counter
    private let delivered: Counter
    private let lag: Gauge
    private let connector: String

    init(connector: String) {
        self.connector = connector
        let dimensions = [("connector", connector)]
        recordsIn = Counter(label: "onewindow_connector_records_in_total", dimensions: dimensions)
        published = Counter(label: "onewindow_connector_published_total", dimensions: dimensions)
        deadLettered = Counter(label: "onewindow_connector_dead_lettered_total", dimensions: dimensions)
        delivered = Counter(label: "onewindow_connector_delivered_total", dimensions: dimensions)
        lag = Gauge(label: "onewindow_connector_source_lag", dimensions: dimensions)
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    func read(_ count: Int) {
        state.withLock { $0.recordsIn += count }
        recordsIn.increment(by: count)
    }

    func count(_ outcomes: [PublishOutcome]) {
        var ok = 0
        var dead = 0
        for outcome in outcomes {
            if case .published = outcome { ok += 1 } else { dead += 1 }
        }
        state.withLock {
            $0.published += ok
            $0.deadLettered += dead
        }
        published.increment(by: ok)
        deadLettered.increment(by: dead)
    }

    func deadLettered(_ count: Int) {
        state.withLock { $0.deadLettered += count }
        deadLettered.increment(by: count)
    }

    func delivered(_ count: Int) {
        state.withLock { $0.delivered += count }
        delivered.increment(by: count)
    }

    func sourceLag(_ value: Int) {
        state.withLock { $0.sourceLag = value }
        lag.record(value)
    }

    /// Records a sink's consumer-group lag (EventLog.lag summed over its partitions).
    func sinkLag(group: String, _ value: Int) {
        state.withLock { $0.sinkLag[group] = value }
        Gauge(label: "onewindow_connector_sink_lag", dimensions: [("connector", connector), ("group", group)]).record(value)
    }
}

/// Everything a source or sink of one connector shares.
struct ConnectorContext: Sendable {
    let configuration: ConnectorConfiguration
    let catalog: TopicCatalog
    let log: any EventLog
    let publisher: Publisher
    let cursors: CursorStore
    let department: DatabasePool?
    let logger: Logger
    let stats: ConnectorStats
    /// Where every part reads the time and waits.
    let clock: any WallClock

    /// Runs `operation` until it succeeds, pausing with exponential back-off (0.5 s doubling to
    /// 30 s) while it fails — the bus or the department system unreachable — with one log line
    /// when the part pauses and one when it resumes. Cancellation ends it, and so does an error
    /// for which `permanent` says retrying cannot help: that error is thrown.
    func persistently<T: Sendable>(
        _ part: String, _ what: String, permanent: (any Error) -> Bool = { _ in false },
        _ operation: () async throws -> T
    ) async throws -> T {
        var backoff = Duration.milliseconds(500)
        var paused = false
        while true {
            do {
                let result = try await operation()
                if paused { logger.notice("\(part): \(what) works again; resuming") }
                return result
            } catch is CancellationError {
                throw CancellationError()
            } catch where permanent(error) {
                if paused { logger.notice("\(part): \(what) now fails for good; going on") }
                throw error
            } catch {
                if !paused {
                    logger.error("\(part): \(what) failed, pausing and retrying: \(error)")
                    paused = true
                } else {
                    logger.debug("\(part): still failing: \(error)")
                }
                try await clock.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }
}

/// One connector process: its sources and sinks running side by side until cancelled.
///
/// ```swift
/// let configuration = try ConnectorConfiguration.load(path: "Connectors/tax.yaml")
/// let connector = try Connector(configuration: configuration, log: log, catalog: catalog)
/// try await connector.run()   // until the task is cancelled (SIGTERM in `onewindow connector run`)
/// ```
public struct Connector: Sendable {
    public let configuration: ConnectorConfiguration
    public let stats: ConnectorStats
    let context: ConnectorContext

    /// Prepares a connector: opens its cursor store and the department's database.
    /// - Parameter bus: the bus's identity (`BusAddress.cursorIdentity`): cursors are kept per bus,
    ///   so on a bus it has not published to the connector starts from the beginning (and logs a
    ///   notice); `""`: unknown, cursors shared by every bus as before.
    /// - Throws: when a type or topic named in the file is not in the catalog, the department's
    ///   database does not exist (naming it and how to create one), or a file cannot be opened.
    public init(
        configuration: ConnectorConfiguration, log: any EventLog, catalog: TopicCatalog,
        logger: Logger = Logger(label: "onewindow.connector"), clock: any WallClock = .system, bus: String = ""
    ) throws {
        try Self.check(configuration, against: catalog)
        // Before the counters are made, so that they reach the registry the endpoint serves.
        if configuration.metrics != nil { ConnectorMetrics.bootstrap() }
        var logger = logger
        logger[metadataKey: "connector"] = "\(configuration.name)"
        let stats = ConnectorStats(connector: configuration.name)
        var department: DatabasePool?
        if let missing = Self.missingDatabase(of: configuration) { throw missing }
        if let path = configuration.database {
            var options = Configuration()
            options.busyMode = .timeout(10)
            department = try DatabasePool(path: path, configuration: options)
        }
        let cursors = try CursorStore(path: configuration.state, bus: bus, clock: clock)
        if case .startingOver(let others) = try cursors.claim() {
            logger.notice(
                "connector \(configuration.name): no cursor saved for bus \(bus) in \(configuration.state) (only for \(others.joined(separator: ", "))); starting from the beginning on this bus")
        }
        self.configuration = configuration
        self.stats = stats
        self.context = ConnectorContext(
            configuration: configuration, catalog: catalog, log: log,
            publisher: Publisher(log: log, catalog: catalog, name: "connector \(configuration.name)", clock: clock),
            cursors: cursors, department: department, logger: logger, stats: stats, clock: clock)
    }

    /// Runs every source and sink until the task is cancelled or one fails for good.
    public func run() async throws {
        let context = self.context
        context.logger.notice(
            "connector \(configuration.name) starting: \(configuration.sources.count) source(s), \(configuration.sinks.count) sink(s)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for source in configuration.sources {
                group.addTask {
                    switch source {
                    case .table(let table): try await TableSource(configuration: table, context: context).run()
                    case .webhook(let webhook): try await WebhookSource(configuration: webhook, context: context).run()
                    case .fileDrop(let drop): try await FileDropSource(configuration: drop, context: context).run()
                    }
                }
            }
            for (index, sink) in configuration.sinks.enumerated() {
                let consumerGroup = configuration.consumerGroup(forSink: index)
                group.addTask {
                    switch sink {
                    case .inbox(let inbox):
                        try await InboxSink(configuration: inbox, context: context, group: consumerGroup).run()
                    case .webhook(let webhook):
                        try await WebhookSink(configuration: webhook, context: context, group: consumerGroup).run()
                    case .file(let file):
                        try await FileSink(configuration: file, context: context, group: consumerGroup).run()
                    case .table(let table):
                        try await TableSink(configuration: table, context: context, group: consumerGroup).run()
                    }
                }
            }
            group.addTask { try await Self.reportPeriodically(context) }
            if let listen = configuration.metrics {
                group.addTask { try await ConnectorMetrics.serve(on: listen, logger: context.logger) }
            }
            do {
                // The first part to fail for good stops the connector (waitForAll would wait for the
                // others, which run until cancelled): leaving the body cancels them.
                while try await group.next() != nil {}
            } catch is CancellationError {
            } catch {
                context.logger.critical("connector \(configuration.name) stops: \(error)")
                throw error
            }
        }
        let totals = stats.snapshot
        context.logger.notice(
            "connector \(configuration.name) stopped: \(totals.recordsIn) in, \(totals.published) published, \(totals.deadLettered) dead-lettered, \(totals.delivered) delivered")
    }

    private static func reportPeriodically(_ context: ConnectorContext) async throws {
        var last = context.stats.snapshot
        while true {
            try await context.clock.sleep(for: .seconds(10))
            let now = context.stats.snapshot
            if now != last {
                context.logger.info(
                    "\(now.recordsIn) in, \(now.published) published, \(now.deadLettered) dead-lettered, \(now.delivered) delivered, source lag \(now.sourceLag)")
                last = now
            }
        }
    }

    /// Refuses a file that names departments, types, topics or fields the catalog does not have
    /// (the first of ``problems(in:against:)``).
    /// - Throws: ``ConnectorConfigurationError`` saying which, with the line.
    public static func check(_ configuration: ConnectorConfiguration, against catalog: TopicCatalog) throws {
        if let first = problems(in: configuration, against: catalog).first { throw first }
    }
}

/// A row read from a department table, copied out of GRDB so it can cross tasks.
struct SourceRow: Sendable {
    let columns: [String]
    let values: [MappedValue]

    init(_ row: Row) {
        columns = Array(row.columnNames)
        values = row.databaseValues.map { value in
            switch value.storage {
            case .null: .null
            case .int64(let number): .integer(number)
            case .double(let number): .number(number)
            case .string(let text): .text(text)
            case .blob(let data): .text(String(decoding: data, as: UTF8.self))
            }
        }
    }

    /// A column's value, `.null` when the row has no such column.
    func mapped(_ column: String) -> MappedValue {
        guard let index = columns.firstIndex(of: column) else { return .null }
        return values[index]
    }

    /// The row as a JSON object, for dead letters: nothing of the original is lost.
    var json: JSONValue {
        var object: [String: JSONValue] = [:]
        for (column, value) in zip(columns, values) { object[column] = value.json }
        return .object(object)
    }
}
