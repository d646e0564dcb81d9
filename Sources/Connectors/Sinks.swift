import Bus
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Retrying
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The consuming half every sink shares: reads its topics as the connector's consumer group,
/// hands each record to the sink, dead-letters what is not a CloudEvent, and commits only after
/// the sink has handled the batch — so a crash delivers a record again, never loses it.
///
/// What happens on an error is ``ErrorDisposition``'s to say: a delivery that cannot succeed (a
/// constraint the row breaks, a table or column the department's database does not have) goes to
/// the dead-letter topic with the reason and the loop goes on; one that may succeed later (the
/// database busy or locked, an I/O error, the bus unreachable) pauses and retries the same record;
/// a commit refused because the group rebalanced (`groupBusy`) is not retried: the loop polls
/// again, and the records of partitions that moved are delivered again to their new owner —
/// which is why every sink's delivery is idempotent by event id or says that it is not; a closed
/// or broken bus ends the loop with a ``ConnectorFailure``.
///
/// Each handled record's offset is stored as it goes (``LogConsumer/store(_:)``), so a partition
/// taken away mid-batch hands over what was already delivered; on a graceful shutdown the batch in
/// flight is delivered and committed, then the consumer is closed (and awaited) before the loop returns.
struct SinkLoop: Sendable {
    let context: ConnectorContext
    let part: String
    let topics: [String]
    let group: String
    /// Records per poll. A sink whose records can each take long (webhooks with retries) polls
    /// fewer, so that a batch never outlasts the consumer's max.poll.interval (300 s on Kafka).
    var maxRecords = 200

    func run(_ handle: @escaping @Sendable (LogRecord, Event) async throws -> Void) async throws {
        let consumer = try await context.persistently(part, "joining group \(group)") {
            try await context.log.makeConsumer(.group(group, topics: topics))
        }
        context.logger.notice("\(part): consuming \(topics.joined(separator: ", ")) as group \(group)")
        do {
            try await consume(consumer, handle)
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    private func consume(
        _ consumer: any LogConsumer, _ handle: @escaping @Sendable (LogRecord, Event) async throws -> Void
    ) async throws {
        var lagDue = Every(.seconds(5))
        while partShouldContinue {
            if lagDue.now() {
                // For the metrics only: a bus that cannot tell now is asked again next time.
                if let lag = try? await context.log.lag(group: group, topics: topics) {
                    context.stats.sinkLag(group: group, Int(lag.reduce(0) { $0 + $1.lag }))
                }
            }
            let records: [LogRecord]
            do {
                records = try await context.persistently(part, "polling the bus") {
                    try await consumer.poll(maxRecords: maxRecords, timeout: .milliseconds(500))
                }
            } catch where ErrorDisposition.of(error) == .repoll {
                context.logger.notice("\(part): group \(group) is rebalancing (\(error)); polling again")
                continue
            }
            if records.isEmpty { continue }
            for record in records {
                try await deliver(record, handle)
                consumer.store([record])
            }
            do {
                try await context.persistently(part, "committing offsets") { try await consumer.commit() }
            } catch where ErrorDisposition.of(error) == .repoll {
                // Retrying the commit cannot help (this member's generation is gone) and would keep it
                // from polling, which is what lets the rebalance finish. Offsets stored for partitions
                // still owned are committed with the next commit; the rest are the new owner's to read.
                context.logger.notice(
                    "\(part): group \(group) rebalanced before this batch was committed (\(error)); polling again — \("records whose partitions moved are delivered again by their new owner, once per event id")")
            }
        }
    }

    /// Hands one record to the sink, retrying what may pass and dead-lettering what cannot.
    private func deliver(
        _ record: LogRecord, _ handle: @escaping @Sendable (LogRecord, Event) async throws -> Void
    ) async throws {
        let event: Event
        do {
            event = try CloudEventsBinding.event(from: record)
        } catch {
            try await deadLetter(record, ValidationFailure(.invalidEnvelope, "\(error)"))
            return
        }
        do {
            try await context.persistently(part, "delivering \(event.id)") { try await handle(record, event) }
        } catch where ErrorDisposition.of(error) == .deadLetter {
            try await deadLetter(
                record,
                ValidationFailure(
                    .undeliverable, "\(part) cannot deliver it, and retrying will not help: \(error)",
                    eventType: event.type, eventId: event.id))
        }
    }

    /// Sends a consumed record to the dead-letter topic with the reason (cut to its first bytes,
    /// with its size and digest, should the log refuse it whole as too large).
    func deadLetter(_ record: LogRecord, _ failure: ValidationFailure) async throws {
        var keeping: Int?
        while true {
            do {
                let position = try await context.persistently(part, "dead-lettering") {
                    try await context.publisher.deadLetter(
                        value: record.value, key: record.key, headers: record.headers, originalTopic: record.topic,
                        failure: failure, keeping: keeping)
                }
                context.stats.deadLettered(1)
                context.logger.warning("\(part): dead-lettered \(record.position) to \(position): \(failure.reason)")
                return
            } catch where ErrorDisposition.of(error) == .deadLetter && keeping != 0 {
                keeping = min(ConnectorContext.deadLetterKeep, (keeping ?? record.value.count) / 2)
            }
        }
    }
}

/// Approval requests into the department's work queue (`approval_inbox`, once per event id), and
/// the department's decisions (`approval_decisions`, by `seq`) onto the decisions topic as
/// `approval.decided` events with ids `<department>/<decisions table>/<seq>`.
///
/// A decision's causation id is the request's event id; its correlation id is the application id,
/// which ties together everything that happens to one application. Columns the `fields` mapping
/// names become the decision's `fields`; a row whose fields cannot be mapped goes to the
/// dead-letter topic with the field and the reason.
struct InboxSink: Sendable {
    let configuration: InboxSinkConfiguration
    let context: ConnectorContext
    let group: String

    var id: String { "inbox:\(configuration.requests)" }
    /// The part that publishes the department's decisions.
    var decisionsPart: String { "decisions:\(configuration.decisionsTable)" }

    /// Delivers approval requests into the inbox table, once per event id
    /// (`ON CONFLICT (event_id) DO NOTHING`): a request delivered again after a rebalance or a
    /// crash leaves the row as it was.
    func receiveRequests() async throws {
        guard let department = context.department else { return }
        let loop = SinkLoop(context: context, part: id, topics: [configuration.requests], group: group)
        let insert = """
            INSERT INTO \(quoted(configuration.inboxTable))
            (event_id, application_id, item, service, due_by, payload, received_at, status)
            VALUES (?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT (event_id) DO NOTHING
            """
        try await loop.run { record, event in
            guard event.type == "approval.requested", let body = try? JSONValue.parse(event.data),
                case .string(let application)? = body[pointer: "/applicationId"]
            else {
                try await loop.deadLetter(
                    record, ValidationFailure(.wrongTopic, "expected approval.requested with an applicationId, got \(event.type)"))
                return
            }
            let received = Timestamp.format(context.clock.now())
            try await department.write { db in
                try db.execute(
                    sql: insert,
                    arguments: [
                        event.id, application, body[pointer: "/item"]?.stringValue, body[pointer: "/service"]?.stringValue,
                        body[pointer: "/dueBy"]?.stringValue, String(decoding: event.data, as: UTF8.self), received,
                    ])
            }
            context.stats.delivered(1)
        }
    }

    /// Publishes the department's decisions, in `seq` order, saving the cursor after each batch.
    func publishDecisions() async throws {
        guard let department = context.department else { return }
        let part = decisionsPart
        try await checkFieldColumns(department, part: part)
        var position = Int64(try await context.persistently(part, "reading the cursor") {
            try await context.cursors.position(of: part)
        } ?? "0") ?? 0
        let query = """
            SELECT d.*, i.event_id AS request_id FROM \(quoted(configuration.decisionsTable)) d
            LEFT JOIN \(quoted(configuration.inboxTable)) i ON i.application_id = d.application_id AND i.item IS d.item
            WHERE d.seq > ? ORDER BY d.seq LIMIT 200
            """
        while partShouldContinue {
            let after = position
            let rows = try await context.persistently(part, "reading \(configuration.decisionsTable)") {
                // From the statement, not copied rows: SourceRow sees the bytes of text that is not UTF-8.
                try await department.read { db in
                    try Array(Row.fetchCursor(db, sql: query, arguments: [after]).map(SourceRow.init))
                }
            }
            guard let last = rows.last, case .integer(let next) = last.mapped("seq") else {
                try await context.idle(for: configuration.interval)
                continue
            }
            context.stats.read(rows.count)
            _ = try await context.publish(rows.map(decision), part: part, what: "publishing decisions")
            try await context.persistently(part, "saving the cursor") { try await context.cursors.save(String(next), of: part) }
            position = next
        }
    }

    /// Refuses to start when a column the `fields` mapping names is not in the decisions table
    /// (its facts would silently never travel).
    /// - Throws: ``ConnectorConfigurationError`` naming the file, the table and the column.
    func checkFieldColumns(_ department: DatabasePool, part: String) async throws {
        let named = configuration.fields.compactMap { rule -> (String, String)? in
            if case .column(let column) = rule.value { return (rule.field, column) }
            return nil
        }
        guard !named.isEmpty else { return }
        let table = configuration.decisionsTable
        let columns = try await context.persistently(part, "reading the columns of \(table)") {
            try await department.read { db in
                try Row.fetchAll(db, sql: "SELECT name FROM pragma_table_info(?)", arguments: [table]).map {
                    $0["name"] as String
                }
            }
        }
        for (field, column) in named where !columns.contains(column) {
            throw ConnectorConfigurationError(
                file: context.configuration.file, location: "sinks: inbox \(configuration.requests): fields \(field)",
                problem: "table \(table) has no column \(column); its columns are \(columns.joined(separator: ", "))")
        }
    }

    /// The columns of a decision's body, each with its field.
    static let bodyColumns = [
        ("applicationId", "application_id"), ("item", "item"), ("decision", "decision"), ("reason", "reason"),
        ("decidedAt", "decided_at"), ("decidedBy", "decided_by"), ("licenceNumber", "licence_number"),
    ]

    /// The columns a decision is made of, each with what it becomes: a body field, the causation id
    /// (the request's event id, from the inbox) or a `fields` member.
    var usedColumns: [(column: String, use: String)] {
        Self.bodyColumns.map { (column: $0.1, use: $0.0) } + [(column: "request_id", use: "causationId")]
            + configuration.fields.compactMap { rule in
                if case .column(let column) = rule.value { return (column: column, use: "fields\(rule.field)") }
                return nil
            }
    }

    /// The decision of a row, or its dead letter: a row a used column of which is not UTF-8 is
    /// refused (`utf-8`, as the table source refuses one), its bytes kept as `{"base64": …}`,
    /// never published with U+FFFD in their place; the cursor moves past it like past any other.
    private func decision(_ row: SourceRow) -> Publication {
        let seq = row.mapped("seq").text ?? "?"
        let eventId = "\(context.configuration.department)/\(configuration.decisionsTable)/\(seq)"
        let application = row.mapped("application_id").text
        if let problem = row.utf8Problem(of: "decision \(seq) of \(configuration.decisionsTable)", used: usedColumns) {
            let event = Event(
                id: eventId, type: "approval.decided", source: context.configuration.eventSource, subject: application,
                time: context.clock.now(), data: row.json.serialized(), correlationId: application)
            return Publication(
                event: event, topic: configuration.decisions,
                refusal: ValidationFailure(.mappingFailed, problem, eventType: event.type, eventId: eventId))
        }
        var body: JSONObject = ["department": .string(context.configuration.department)]
        for (field, column) in Self.bodyColumns {
            if let text = row.mapped(column).text, !text.isEmpty { body[field] = .string(text) }
        }
        var refusal: ValidationFailure?
        if !configuration.fields.isEmpty {
            do {
                let fields = try BodyMapper(rules: configuration.fields).body(column: { row.mapped($0) }, path: { _ in .null })
                if let object = fields.objectValue, !object.isEmpty { body["fields"] = fields }
            } catch {
                refusal = ValidationFailure(
                    .mappingFailed, "decision \(seq) of \(configuration.decisionsTable): \(error)", eventType: "approval.decided")
            }
        }
        let event = Event(
            id: eventId, type: "approval.decided",
            source: context.configuration.eventSource, subject: application,
            time: row.mapped("decided_at").text.flatMap(Timestamp.parse) ?? context.clock.now(),
            data: JSONValue.object(body).serialized(), correlationId: application,
            causationId: row.mapped("request_id").text)
        return Publication(event: event, topic: configuration.decisions, refusal: refusal)
    }
}

/// POSTs each event to a URL in the CloudEvents HTTP binary mode (`ce-*` headers, the JSON body),
/// retrying with exponential back-off; an event still undelivered after the last try — or refused
/// with a 4xx other than 408 and 429 — goes to the dead-letter topic with the reason.
struct WebhookSink: Sendable {
    let configuration: WebhookSinkConfiguration
    let context: ConnectorContext
    let group: String

    var id: String { "webhook:\(configuration.url)" }

    func run() async throws {
        let loop = SinkLoop(
            context: context, part: id, topics: configuration.topics, group: group,
            maxRecords: configuration.recordsPerPoll)
        let session = URLSession(configuration: .ephemeral)
        try await loop.run { record, event in
            var backoff = configuration.backoff
            var lastProblem = ""
            for attempt in 0...configuration.retries {
                if attempt > 0 {
                    try await context.pause(for: backoff)
                    backoff = min(backoff * 2, .seconds(30))
                }
                switch await post(event, session: session) {
                case .delivered:
                    context.stats.delivered(1)
                    return
                case .retry(let problem):
                    lastProblem = problem
                    context.logger.info("\(id): \(event.id) attempt \(attempt + 1) failed: \(problem)")
                case .refused(let problem):
                    try await loop.deadLetter(record, ValidationFailure(.undeliverable, problem, eventType: event.type, eventId: event.id))
                    return
                }
            }
            try await loop.deadLetter(
                record,
                ValidationFailure(
                    .undeliverable,
                    "\(configuration.retries + 1) attempts to POST to \(configuration.url) failed, the last: \(lastProblem)",
                    eventType: event.type, eventId: event.id))
        }
    }

    enum Attempt {
        case delivered
        case retry(String)
        case refused(String)
    }

    func post(_ event: Event, session: URLSession) async -> Attempt {
        var request = URLRequest(url: URL(string: configuration.url)!)
        request.httpMethod = "POST"
        request.timeoutInterval = WebhookSinkConfiguration.requestTimeout
        request.httpBody = event.data
        request.setValue(event.dataContentType, forHTTPHeaderField: "Content-Type")
        request.setValue(event.id, forHTTPHeaderField: "ce-id")
        request.setValue(event.type, forHTTPHeaderField: "ce-type")
        request.setValue(event.source, forHTTPHeaderField: "ce-source")
        request.setValue(event.specVersion, forHTTPHeaderField: "ce-specversion")
        request.setValue(Timestamp.format(event.time), forHTTPHeaderField: "ce-time")
        if let subject = event.subject { request.setValue(subject, forHTTPHeaderField: "ce-subject") }
        do {
            // Not cancelled with the sink: FoundationNetworking on Linux can crash the process
            // ("a task that is not in the registry") when a request in flight is cancelled. On
            // shutdown the request ends by itself, within its timeout.
            let finalRequest = request
            let (data, response) = try await Task.detached { try await session.data(for: finalRequest) }.value
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            let text = String(decoding: data.prefix(300), as: UTF8.self)
            switch status {
            case 200..<300: return .delivered
            case 408, 429, 500...: return .retry("HTTP \(status) \(text)")
            default: return .refused("HTTP \(status) from \(configuration.url): \(text)")
            }
        } catch {
            return .retry("\(error.localizedDescription)")
        }
    }
}

/// Appends each event as one JSON line to `<directory>/<topic>-<YYYY-MM-DD>.jsonl` (the day in
/// China time), flushed to disk before the offsets are committed. After a crash a line may appear
/// twice; its `id` tells.
struct FileSink: Sendable {
    let configuration: FileSinkConfiguration
    let context: ConnectorContext
    let group: String

    var id: String { "file:\(configuration.directory)" }

    func run() async throws {
        let directory = configuration.directory
        try await BlockingIO.run { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let loop = SinkLoop(context: context, part: id, topics: configuration.topics, group: group)
        let zone = TimeZone(secondsFromGMT: 8 * 3600)!
        try await loop.run { record, event in
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            let day = calendar.dateComponents([.year, .month, .day], from: record.timestamp)
            let name = String(format: "%@-%04d-%02d-%02d.jsonl", record.topic, day.year!, day.month!, day.day!)
            let path = URL(fileURLWithPath: directory).appendingPathComponent(name).path
            var line: JSONObject = [
                "id": .string(event.id), "type": .string(event.type), "source": .string(event.source),
                "time": .string(Timestamp.format(event.time)), "topic": .string(record.topic),
                "partition": .integer(Int64(record.partition)), "offset": .integer(record.offset),
            ]
            if let subject = event.subject { line["subject"] = .string(subject) }
            line["data"] = (try? JSONValue.parse(event.data)) ?? .string(String(decoding: event.data, as: UTF8.self))
            var bytes = JSONValue.object(line).serialized()
            bytes.append(0x0A)
            let written = bytes
            // Opening, appending and fsync block: on a dispatch thread, not the cooperative pool.
            try await BlockingIO.run {
                // A file that cannot be created makes the FileHandle below throw, naming the path;
                // createFile's own result says nothing more.
                if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                defer { try? handle.close() }
                try handle.seekToEnd()
                try handle.write(contentsOf: written)
                try handle.synchronize()
            }
            context.stats.delivered(1)
        }
    }
}

/// Inserts each event as a row of a department table — the SMS gateway's outbox, say — once per
/// event id (`INSERT … ON CONFLICT DO NOTHING` on the id column).
struct TableSink: Sendable {
    let configuration: TableSinkConfiguration
    let context: ConnectorContext
    let group: String

    var id: String { "table:\(configuration.table)" }

    func run() async throws {
        guard let department = context.department else { return }
        let loop = SinkLoop(context: context, part: id, topics: configuration.topics, group: group)
        let columns = [configuration.idColumn] + configuration.columns.map(\.column)
        let sql = """
            INSERT INTO \(quoted(configuration.table)) (\(columns.map(quoted).joined(separator: ", ")))
            VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))
            ON CONFLICT (\(quoted(configuration.idColumn))) DO NOTHING
            """
        try await loop.run { record, event in
            guard let body = try? JSONValue.parse(event.data) else {
                try await loop.deadLetter(record, ValidationFailure(.invalidJSON, "the body is not JSON", eventId: event.id))
                return
            }
            var values: [(any DatabaseValueConvertible)?] = [event.id]
            for (_, source) in configuration.columns {
                switch source {
                case "$id": values.append(event.id)
                case "$type": values.append(event.type)
                case "$subject": values.append(event.subject)
                case "$time": values.append(Timestamp.format(event.time))
                default:
                    switch body[pointer: source] {
                    case .string(let text)?: values.append(text)
                    case .integer(let number)?: values.append(number)
                    case .number(let number)?: values.append(number)
                    case .bool(let flag)?: values.append(flag)
                    case nil, .null?: values.append(nil)
                    case let other?: values.append(String(decoding: other.serialized(), as: UTF8.self))
                    }
                }
            }
            let arguments = StatementArguments(values)
            try await department.write { db in try db.execute(sql: sql, arguments: arguments) }
            context.stats.delivered(1)
        }
    }
}

extension WebhookSinkConfiguration {
    /// The longest one request may take before it counts as failed, in seconds.
    static let requestTimeout: Double = 10

    /// The longest one event can take: every attempt timing out, plus the back-offs between them.
    var worstCasePerRecord: Duration {
        var total = Duration.seconds(Self.requestTimeout) * (retries + 1)
        var wait = backoff
        for _ in 0..<retries {
            total += wait
            wait = min(wait * 2, .seconds(30))
        }
        return total
    }

    /// The most an event may take, so that even one event per poll stays under Kafka's default
    /// max.poll.interval.ms of 300 s (past it the broker takes the partitions away mid-delivery).
    static let longestPerRecord = Duration.seconds(270)

    /// Events per poll: as many as fit, at worst, in 150 s — half of max.poll.interval — and at
    /// least one. With the defaults (5 retries from 200 ms: at most 66 s an event) that is 2.
    var recordsPerPoll: Int { max(1, min(200, Int(Duration.seconds(150) / worstCasePerRecord))) }
}
