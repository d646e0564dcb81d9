import Bus
import CivilTime
import EventLog
import EventSchemas
import Foundation
import GRDB
import Logging
import Metrics
import Retrying
import ServiceLifecycle
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
        /// Operations tried again after an error that may pass (the bus or department unreachable).
        public var retries = 0
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

    /// Counts a retry of one part, in `onewindow_connector_retries_total{connector,part}`.
    func retried(part: String) {
        state.withLock { $0.retries += 1 }
        Counter(label: "onewindow_connector_retries_total", dimensions: [("connector", connector), ("part", part)]).increment()
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

    /// How much of a record too large for the log its dead letter keeps, at most: 64 KiB, halved
    /// again while the log still refuses it.
    static let deadLetterKeep = 65_536

    /// Runs `operation` until it succeeds, retrying what ``ErrorDisposition`` says may succeed
    /// later — the bus or the department system unreachable — with exponential back-off (0.5 s
    /// doubling to 30 s on ``clock``), a count in `onewindow_connector_retries_total{connector,part}`,
    /// one log line when the part pauses and one when it resumes: the shared ``Retrier``.
    ///
    /// - Throws: `CancellationError` when cancelled; a ``ConnectorFailure`` for a ``ErrorDisposition/fatal``
    ///   error; the error itself when it is ``ErrorDisposition/deadLetter`` or
    ///   ``ErrorDisposition/repoll``, for the caller to handle.
    func persistently<T: Sendable>(_ part: String, _ what: String, _ operation: () async throws -> T) async throws -> T {
        let stats = self.stats
        let retrier = Retrier(clock: clock, logger: logger) { part in stats.retried(part: part) }
        return try await retrier.persistently(part, what, operation)
    }

    /// Validates and publishes a batch, dead-lettering what is refused, and counts and logs the
    /// outcomes. A record too large for the bus does not block the batch: the batch is published
    /// again one record at a time, and the record that is too large goes to the dead-letter topic
    /// as a truncated copy with its size and digest (``deadLetterTooLarge(_:part:error:)``).
    /// - Throws: `CancellationError`, or a ``ConnectorFailure`` when the bus cannot work.
    func publish(_ publications: [Publication], part: String, what: String) async throws -> [PublishOutcome] {
        let outcomes: [PublishOutcome]
        do {
            outcomes = try await persistently(part, what) {
                try await publisher.publish(publications, deadLetter: true)
            }
        } catch where ErrorDisposition.of(error) == .deadLetter {
            guard publications.count == 1 else {
                logger.notice("\(part): the bus refused a batch of \(publications.count) (\(error)); publishing it one by one")
                var all: [PublishOutcome] = []
                for publication in publications { all += try await publish([publication], part: part, what: what) }
                return all
            }
            outcomes = [try await deadLetterTooLarge(publications[0], part: part, error: error)]
        }
        stats.count(outcomes)
        for case .deadLettered(let position, let failure) in outcomes {
            logger.warning("\(part): dead-lettered to \(position): \(failure.reason)")
        }
        return outcomes
    }

    /// Sends an event the bus refused as too large to the dead-letter topic, cut to its first
    /// bytes, with its original size, its SHA-256 and the reason (see `DeadLetter.truncated`).
    func deadLetterTooLarge(_ publication: Publication, part: String, error: any Error) async throws -> PublishOutcome {
        let size = publication.event.data.count
        let tooLarge =
            "the event is \(size) bytes, more than the bus takes (\(error)); the dead letter keeps its first bytes, "
            + "its size and SHA-256 digest: fix the source record, or raise the bus's record limit and publish it again"
        // A record refused anyway keeps the reason it was refused for (the field and rule), with
        // its size said beside it: the size alone hid a 1.5 MB name's maxLength (issue 12's corpus).
        let refusal: ValidationFailure?
        do {
            _ = try publisher.validatedRecord(for: publication)
            refusal = nil
        } catch let failure as ValidationFailure {
            refusal = failure
        }
        let failure =
            refusal.map {
                ValidationFailure(
                    $0.code, "\($0.message); and \(tooLarge)", violations: $0.violations,
                    eventType: publication.event.type, eventId: publication.event.id)
            }
            ?? ValidationFailure(.recordTooLarge, tooLarge, eventType: publication.event.type, eventId: publication.event.id)
        var keeping = min(Self.deadLetterKeep, size / 2)
        while true {
            do {
                return try await persistently(part, "dead-lettering \(publication.event.id)") {
                    try await publisher.deadLetter(publication, failure: failure, keeping: keeping)
                }
            } catch where ErrorDisposition.of(error) == .deadLetter && keeping > 0 {
                keeping /= 2
            }
        }
    }

    /// Waits `duration` between polls; returns early when a graceful shutdown begins, so that the
    /// part's loop can stop after the batch it finished.
    /// - Throws: `CancellationError` when the task is cancelled.
    func idle(for duration: Duration) async throws {
        guard !Task.isShuttingDownGracefully else { return }
        do {
            try await cancelWhenGracefulShutdown { [self] in try await pause(for: duration) }
        } catch is CancellationError where Task.isShuttingDownGracefully && !Task.isCancelled {
            return
        }
    }

    /// Waits `duration` (a back-off between retries), graceful shutdown or not: the batch in flight
    /// is being finished. The one place a connector part sleeps.
    /// - Throws: `CancellationError` when the task is cancelled.
    func pause(for duration: Duration) async throws {
        try await clock.sleep(for: duration)
    }
}

/// Says yes at most once every `interval` (the first time at once): for measurements a loop takes
/// now and then, such as lag. Real time on purpose: it paces measurements, not the work. With
/// ``ConnectorContext/pause(for:)`` and `clock.now()`, the only clock reads of the connector parts.
struct Every {
    let interval: Duration
    private var last: ContinuousClock.Instant?

    init(_ interval: Duration) { self.interval = interval }

    /// Whether `interval` has passed since the last yes.
    mutating func now() -> Bool {
        let now = ContinuousClock.now
        if let last, now - last < interval { return false }
        last = now
        return true
    }
}

/// Whether a part's loop goes on: not cancelled, and no graceful shutdown under way (the batch in
/// flight has finished when the loop asks).
var partShouldContinue: Bool { !Task.isCancelled && !Task.isShuttingDownGracefully }

/// One long-running part of a connector — a source, a sink, the metrics endpoint, the periodic
/// report — as a `Service`. A part stops after the batch in flight when a graceful shutdown
/// begins; an error it cannot get past ends it with a ``ConnectorFailure`` (or, when the file does
/// not match the department's system, the ``ConnectorConfigurationError`` itself).
struct ConnectorPart: Service, CustomStringConvertible {
    let name: String
    let body: @Sendable () async throws -> Void

    var description: String { name }

    func run() async throws {
        do {
            try await body()
        } catch is CancellationError {
            return  // asked to stop (cancelled, or stopping while an operation failed): not a failure
        } catch let failure as ConnectorFailure {
            throw failure
        } catch let refused as ConnectorConfigurationError {
            throw refused  // the file must be fixed: a restart would not help
        } catch {
            throw ConnectorFailure(part: name, action: "", underlying: error)
        }
    }
}

/// One connector process: its sources, sinks, metrics endpoint and periodic report, each a
/// `Service` under one `ServiceGroup`.
///
/// ```swift
/// let configuration = try ConnectorConfiguration.load(path: "Connectors/tax.yaml")
/// let connector = try Connector(configuration: configuration, log: log, catalog: catalog)
/// let group = ServiceGroup(services: [connector], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()   // until SIGTERM: each part finishes and commits its batch, then returns
/// ```
///
/// On a graceful shutdown every part finishes the batch in flight — published and its cursor
/// saved, or delivered and its offsets committed — and closes what it opened; a part still busy
/// after ``gracefulShutdownLimit`` is cancelled (what it had not committed is read again after a
/// restart). When one part fails for good (``ErrorDisposition/fatal``: the bus closed, refused
/// credentials, a damaged file) the others are shut down gracefully and ``run()`` throws that
/// ``ConnectorFailure``.
public struct Connector: Service {
    public let configuration: ConnectorConfiguration
    public let stats: ConnectorStats
    let context: ConnectorContext

    /// How long the parts may take to finish their batches after a graceful shutdown begins
    /// before they are cancelled: 20 seconds (under the 30 s most supervisors wait before SIGKILL).
    public static let gracefulShutdownLimit = Duration.seconds(20)

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

    /// The connector's parts, each a `Service`: every source, every sink, the periodic report,
    /// and the metrics endpoint when the file has `metrics:`.
    /// - Throws: ``ConnectorConfigurationError`` for a `listen` or `metrics` address that is not HOST:PORT.
    func parts() throws -> [any Service] {
        let context = self.context
        var parts: [any Service] = []
        // A group shuts its services down in reverse order: the metrics endpoint goes last.
        if let listen = configuration.metrics { parts.append(try ConnectorMetrics.service(on: listen, logger: context.logger)) }
        parts.append(ConnectorPart(name: "report") { try await Self.reportPeriodically(context) })
        for source in configuration.sources {
            switch source {
            case .table(let table):
                let source = TableSource(configuration: table, context: context)
                parts.append(ConnectorPart(name: source.id) { try await source.run() })
            case .webhook(let webhook): parts.append(try WebhookSource(configuration: webhook, context: context).service())
            case .fileDrop(let drop):
                let source = FileDropSource(configuration: drop, context: context)
                parts.append(ConnectorPart(name: source.id) { try await source.run() })
            }
        }
        for (index, sink) in configuration.sinks.enumerated() {
            let consumerGroup = configuration.consumerGroup(forSink: index)
            switch sink {
            case .inbox(let inbox):
                let sink = InboxSink(configuration: inbox, context: context, group: consumerGroup)
                parts.append(ConnectorPart(name: sink.id) { try await sink.receiveRequests() })
                parts.append(ConnectorPart(name: sink.decisionsPart) { try await sink.publishDecisions() })
            case .webhook(let webhook):
                let sink = WebhookSink(configuration: webhook, context: context, group: consumerGroup)
                parts.append(ConnectorPart(name: sink.id) { try await sink.run() })
            case .file(let file):
                let sink = FileSink(configuration: file, context: context, group: consumerGroup)
                parts.append(ConnectorPart(name: sink.id) { try await sink.run() })
            case .table(let table):
                let sink = TableSink(configuration: table, context: context, group: consumerGroup)
                parts.append(ConnectorPart(name: sink.id) { try await sink.run() })
            }
        }
        return parts
    }

    /// Runs every part until a graceful shutdown (from an enclosing `ServiceGroup`: SIGTERM in
    /// `onewindow connector run`) has let each finish its batch, until the task is cancelled, or
    /// until one part fails for good.
    /// - Throws: the ``ConnectorFailure`` of the part that failed for good.
    public func run() async throws {
        let context = self.context
        context.logger.notice(
            "connector \(configuration.name) starting: \(configuration.sources.count) source(s), \(configuration.sinks.count) sink(s)")
        var group = ServiceGroupConfiguration(
            services: try parts().map {
                // A part that returns early (nothing to do) leaves the others running; one that fails
                // for good lets the others finish their batches, then the connector stops.
                ServiceGroupConfiguration.ServiceConfiguration(
                    service: $0, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            logger: context.logger)
        group.maximumGracefulShutdownDuration = Self.gracefulShutdownLimit
        defer {
            let totals = stats.snapshot
            context.logger.notice(
                "connector \(configuration.name) stopped: \(totals.recordsIn) in, \(totals.published) published, \(totals.deadLettered) dead-lettered, \(totals.delivered) delivered, \(totals.retries) retries")
        }
        try await ServiceGroup(configuration: group).run()
    }

    private static func reportPeriodically(_ context: ConnectorContext) async throws {
        var last = context.stats.snapshot
        while partShouldContinue {
            try await context.idle(for: .seconds(10))
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
///
/// Text is read as the bytes SQLite holds: a TEXT or BLOB value that is not UTF-8 is not turned
/// into text (GRDB's copy would replace the bad bytes with U+FFFD, and a text with a NUL byte
/// would be cut short at it — data silently changed). Such a column reads as `.null` and its bytes
/// are kept in ``invalidText``; the table source and the inbox sink's decisions refuse a row when a
/// column they use is there (``utf8Problem(of:used:)``).
/// Read rows from a statement (`Row.fetchCursor`) for this to see the bytes: a row copied by
/// `Row.fetchAll` has already been decoded.
struct SourceRow: Sendable {
    let columns: [String]
    let values: [MappedValue]
    /// The columns whose value is not UTF-8 text, with their bytes (empty for almost every row).
    let invalidText: [String: Data]

    /// A value's bytes that are not UTF-8.
    private struct BadText: Error { let bytes: Data }

    init(_ row: Row) {
        var columns: [String] = []
        var values: [MappedValue] = []
        var invalid: [String: Data] = [:]
        columns.reserveCapacity(row.count)
        values.reserveCapacity(row.count)
        for (index, column) in row.columnNames.enumerated() {
            columns.append(column)
            let value: DatabaseValue = row[index]
            switch value.storage {
            case .null: values.append(.null)
            case .int64(let number): values.append(.integer(number))
            case .double(let number): values.append(.number(number))
            case .string, .blob:
                // The bytes as stored (for a TEXT value, sqlite3_column_blob gives its bytes
                // unchanged), made text where they are UTF-8 without a copy of their own: the
                // bytes are copied only for a value that is refused, and copied for real (GRDB's
                // Data does not own them and must not outlive the closure; `Data(data)` may keep
                // sharing them).
                let read = try? row.withUnsafeData(atIndex: index) { data -> Result<String, BadText> in
                    let bytes = data ?? Data()
                    return String(validating: bytes, as: UTF8.self).map { .success($0) } ?? .failure(BadText(bytes: Data([UInt8](bytes))))
                }
                switch read {
                case .success(let text): values.append(.text(text))
                case .failure(let bad):
                    values.append(.null)
                    invalid[column] = bad.bytes
                case nil:
                    values.append(.null)
                    invalid[column] = Data()
                }
            }
        }
        self.columns = columns
        self.values = values
        self.invalidText = invalid
    }

    /// A column's value, `.null` when the row has no such column.
    func mapped(_ column: String) -> MappedValue {
        guard let index = columns.firstIndex(of: column) else { return .null }
        return values[index]
    }

    /// The row as a JSON object, for dead letters: nothing of the original is lost.
    /// A column that is not UTF-8 appears as `{"base64": …}`, its bytes as they are.
    var json: JSONValue {
        var object: JSONObject = [:]
        for (column, value) in zip(columns, values) { object[column] = value.json }
        for (column, bytes) in invalidText { object[column] = .object(["base64": .string(bytes.base64EncodedString())]) }
        return .object(object)
    }

    /// Why the row is refused when a column it uses holds bytes that are not UTF-8 (rule `utf-8`),
    /// `nil` when none does: `name` names the row (`row P-3 of tax_payments`), `used` pairs each
    /// column with what it becomes (`id`, a field's pointer). The reason names the row, every such
    /// field with its column, and the first bad byte of the first with its offset.
    func utf8Problem(of name: String, used: [(column: String, use: String)]) -> String? {
        guard !invalidText.isEmpty else { return nil }
        let bad = used.filter { invalidText[$0.column] != nil }
        guard let first = bad.first, let bytes = invalidText[first.column] else { return nil }
        let offset = Self.firstInvalidByte(bytes) ?? 0
        let fields = bad.map { "\($0.use) (from column \($0.column))" }.joined(separator: ", ")
        return "\(name): \(fields): utf-8: the value is not UTF-8 text (\(bytes.count) bytes, the first bad byte "
            + "0x\(String(bytes[bytes.startIndex + min(offset, bytes.count - 1)], radix: 16)) at offset \(offset)); "
            + "it is refused rather than published with replacement characters: correct the text in the department's database"
    }

    /// Where the first byte that is not UTF-8 sits in `bytes` (its 0-based offset), `nil` when
    /// they all are.
    static func firstInvalidByte(_ bytes: Data) -> Int? {
        var iterator = bytes.makeIterator()
        var decoder = Unicode.UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += Unicode.UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }
}

/// A connector part stopped by an error it cannot get past (the shared ``FatalFailure``):
/// `onewindow connector run` exits with ``FatalFailure/exitStatus`` (75) so that a supervisor
/// restarts it.
public typealias ConnectorFailure = FatalFailure
