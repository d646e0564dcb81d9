internal import CRDKafka
import Dispatch
import EventLog
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// librdkafka's own log lines, through swift-log.
///
/// Every client OneWindow makes gets ``librdkafkaLogLine`` as its log callback (so librdkafka
/// writes nothing to standard error itself). The callback runs on librdkafka's internal threads;
/// it finds the ``Logger`` of the client's ``KafkaConfiguration`` by the client's handle, in a
/// table filled right after `rd_kafka_new` and emptied right after `rd_kafka_destroy`. A line of
/// a client not in the table yet (librdkafka may connect to the bootstrap servers, and fail,
/// while `rd_kafka_new` runs) goes to the logger of the client being created (``creating(_:_:)``),
/// and otherwise to a logger labelled ``defaultLabel``.
///
/// syslog levels map to swift-log's: 0–2 → critical, 3 → error, 4 → warning, 5 → notice,
/// 6 → info, 7 → debug. Each line carries `facility` (librdkafka's, e.g. `FAIL`, `REQTMOUT`) and
/// `client` (the client's name, e.g. `onewindow#producer-1`) as metadata.
enum LibrdkafkaLogging {
    /// The label of the default logger of librdkafka's lines.
    static let defaultLabel = "onewindow.kafka.librdkafka"

    private static let loggers = Mutex<[Int: Logger]>([:])
    /// The loggers of clients being created now, latest last, each under the number of its
    /// creation (creations on two threads can end in either order).
    private static let pending = Mutex<(next: Int, loggers: [(creation: Int, logger: Logger)])>((0, []))

    /// Runs `create` (which calls `rd_kafka_new`) with `logger` taking the lines of a client not
    /// registered yet.
    static func creating<T>(_ logger: Logger, _ create: () throws -> T) rethrows -> T {
        let creation = pending.withLock { pending in
            pending.next += 1
            pending.loggers.append((pending.next, logger))
            return pending.next
        }
        // Its own entry, wherever it is now: removing the last one took another creation's when
        // that one had started later and ended sooner.
        defer { pending.withLock { $0.loggers.removeAll { $0.creation == creation } } }
        return try create()
    }

    /// How many creations with a logger labelled `label` are under way (for tests: counting every
    /// creation would count those of the tests running beside them).
    static func creationsUnderWay(label: String) -> Int {
        pending.withLock { $0.loggers.count { $0.logger.label == label } }
    }

    /// Sends `client`'s lines to `logger` from now on.
    static func register(_ client: OpaquePointer, _ logger: Logger) {
        loggers.withLock { $0[Int(bitPattern: client)] = logger }
    }

    /// Forgets a destroyed client (call after `rd_kafka_destroy`).
    static func unregister(_ client: OpaquePointer) {
        _ = loggers.withLock { $0.removeValue(forKey: Int(bitPattern: client)) }
    }

    /// How many clients whose lines go to a logger labelled `label` are registered: made and not
    /// destroyed yet.
    static func registered(label: String) -> Int {
        loggers.withLock { $0.values.count { $0.label == label } }
    }

    static func logger(for client: OpaquePointer?) -> Logger {
        if let client, let logger = loggers.withLock({ $0[Int(bitPattern: client)] }) { return logger }
        return pending.withLock { $0.loggers.last?.logger } ?? Logger(label: defaultLabel)
    }

    static func level(syslog: Int32) -> Logger.Level {
        switch syslog {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    }
}

/// librdkafka's log callback (`rd_kafka_conf_set_log_cb`), on librdkafka's threads.
func librdkafkaLogLine(_ client: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ line: UnsafePointer<CChar>?) {
    let logger = LibrdkafkaLogging.logger(for: client)
    let swiftLevel = LibrdkafkaLogging.level(syslog: level)
    guard logger.logLevel <= swiftLevel else { return }
    var metadata: Logger.Metadata = ["facility": .string(facility.map { String(cString: $0) } ?? "")]
    if let client, let name = rd_kafka_name(client) { metadata["client"] = .string(String(cString: name)) }
    logger.log(level: swiftLevel, "\(line.map { String(cString: $0) } ?? "")", metadata: metadata)
}

/// Destroys a client and forgets its logger. Blocks (it waits for the client's threads).
func destroyClient(_ client: OpaquePointer) {
    rd_kafka_destroy(client)
    LibrdkafkaLogging.unregister(client)
}

/// The Kafka clients being destroyed: a process waits for them before it exits.
///
/// A client dropped by its last owner is closed and destroyed on its own queue, in the
/// background (closing waits for the group and the broker). A process that exits meanwhile runs
/// its exit handlers while librdkafka's threads are still inside the destroy: that crashed a
/// connector with signal 11 inside librdkafka once, at its stop after a broker outage, when
/// closing is slow. So a process that destroyed a client (`onewindow`, a test run, a benchmark,
/// a service embedding `KafkaLog`) waits for them, up to 10 s, in an `atexit` handler
/// registered at the first destruction, however it exits (`exit`, a return from `main`). That
/// handler runs before the exit handlers registered when the process started (the runtime's and
/// the libraries' own teardown), so librdkafka's threads finish while everything they call
/// still works. (A test run that ended while a test's dropped client was still being destroyed, its
/// broker already stopped, crashed with signal 11 after every test had passed, 2026-12-01.)
public enum KafkaTeardown {
    private static let inProgress = DispatchGroup()

    /// Registers the wait at exit, once (a `static let` is initialized once, thread-safely).
    private static let waitAtExit: Void = {
        atexit { KafkaTeardown.wait(upTo: .seconds(10)) }
        registered.store(true, ordering: .releasing)
    }()
    private static let registered = Atomic(false)

    /// Whether the process waits at exit for the clients being destroyed (registered by the first
    /// ``begin()``).
    static var waitsAtExit: Bool { registered.load(ordering: .acquiring) }

    /// A client's destruction started (on whatever thread will finish it).
    static func begin() {
        _ = waitAtExit
        inProgress.enter()
    }

    /// A client's destruction finished (after ``destroyClient(_:)``).
    static func end() { inProgress.leave() }

    /// Waits until every client whose destruction has started is destroyed, or `timeout`.
    /// - Returns: whether they all were.
    @discardableResult
    public static func wait(upTo timeout: Duration) -> Bool {
        inProgress.wait(timeout: .now() + .milliseconds(Int(clamping: timeout.milliseconds))) == .success
    }
}
