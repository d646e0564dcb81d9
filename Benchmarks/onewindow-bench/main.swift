// `onewindow-bench`: throughput of the embedded log against raw GRDB inserts, the connector and
// the orchestrator (and, when ONEWINDOW_BENCH_KAFKA names a broker, of the Kafka backend against
// raw librdkafka; when ONEWINDOW_BENCH_ORCHESTRATOR_KAFKA names one, of the orchestrator on it).
// Run through `make bench`, which builds in release mode and writes BENCHMARKS.md.
import EmbeddedLog
import EventLog
import EventModel
import Foundation
import GRDB
import KafkaLog
import Retrying

// As `onewindow` does (the memory run's orchestrator is this program too).
MallocArenas.limit()

struct Measurement {
    let name: String
    let events: Int
    let seconds: Double
    var eventsPerSecond: Double { Double(events) / seconds }
}

/// ~500-byte CloudEvents records: a realistic body plus the `ce_*` headers.
func makeRecords(topic: String, count: Int) -> [OutgoingRecord] {
    (0..<count).map { index in
        let id = String(format: "%06d", index % 1_000_000)
        let body = """
            {"applicationId":"RA-2025-\(id)","service":"restaurant-opening","department":"food-safety",\
            "item":"food-business-licence","dueBy":"2025-03-14","applicant":{"name":"陈美玲",\
            "residentId":"440604198803150027","mobile":"13802761234","creditCode":"91440604MA4X8K2Q1B"},\
            "materials":[{"name":"营业执照","source":"shared-data"},{"name":"场所平面图","source":"submitted"}],\
            "note":"Lot \(id), Chancheng district, Foshan"}
            """
        let event = Event(
            id: "bench-\(index)", type: "approval.requested", source: "/onewindow/orchestrator",
            subject: "RA-2025-\(id)", time: Date(timeIntervalSince1970: 1_735_689_600 + Double(index)),
            data: Data(body.utf8))
        return CloudEventsBinding.record(for: event, topic: topic)
    }
}

func time(_ body: () async throws -> Void) async rethrows -> Double {
    let clock = ContinuousClock()
    let elapsed = try await clock.measure { try await body() }
    return elapsed.seconds
}

func benchEmbeddedAppend(directory: URL, batch: Int, total: Int) async throws -> Measurement {
    let path = directory.appendingPathComponent("append-\(batch).sqlite").path
    let log = try EmbeddedLog(path: path, configuration: EmbeddedLogConfiguration(maintenanceInterval: nil))
    try await log.createTopics([TopicSpec(name: "bench.append", partitions: 6)])
    let records = makeRecords(topic: "bench.append", count: total)
    let seconds = try await time {
        for start in stride(from: 0, to: total, by: batch) {
            _ = try await log.append(Array(records[start..<min(start + batch, total)]))
        }
    }
    await log.close()
    return Measurement(name: "embedded append, batches of \(batch)", events: total, seconds: seconds)
}

/// The same rows into a bare table with the same columns and primary key, through GRDB directly:
/// what SQLite itself can do on this machine, the yardstick for the log's own overhead.
func benchRawInsert(directory: URL, batch: Int, total: Int) async throws -> Measurement {
    let path = directory.appendingPathComponent("raw-\(batch).sqlite").path
    var configuration = Configuration()
    configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL")
    }
    // The same 16 KiB pages as the log's files.
    let creator = try DatabaseQueue(path: path)
    try await creator.writeWithoutTransaction { db in
        try db.execute(sql: "PRAGMA page_size = 16384")
        try db.execute(sql: "PRAGMA journal_mode = WAL")
    }
    try creator.close()
    let pool = try DatabasePool(path: path, configuration: configuration)
    // The log's table: rows appended in rowid order, a unique index on the position.
    try await pool.write { db in
        try db.execute(
            sql: """
                CREATE TABLE raw (id INTEGER PRIMARY KEY, topic_id INTEGER, partition INTEGER, offset INTEGER,
                timestamp_ms INTEGER, key BLOB, value BLOB, headers BLOB);
                CREATE UNIQUE INDEX raw_position ON raw (topic_id, partition, offset)
                """)
    }
    let records = makeRecords(topic: "bench.raw", count: total)
    // Headers pre-encoded the simplest way (names and values joined), so only the insert is timed.
    let headerBlobs = records.map { record in
        Data(record.headers.map { "\($0.name)=\($0.text ?? "")" }.joined(separator: "\n").utf8)
    }
    let seconds = try await time {
        for start in stride(from: 0, to: total, by: batch) {
            let end = min(start + batch, total)
            try await pool.write { db in
                let statement = try db.cachedStatement(
                    sql: "INSERT INTO raw (topic_id, partition, offset, timestamp_ms, key, value, headers) VALUES (?, ?, ?, ?, ?, ?, ?)")
                for index in start..<end {
                    let record = records[index]
                    statement.setUncheckedArguments([
                        1, index % 6, index, 1_735_689_600_000 + index, record.key, record.value, headerBlobs[index],
                    ])
                    try statement.execute()
                }
            }
        }
    }
    try pool.close()
    return Measurement(name: "raw GRDB insert, batches of \(batch)", events: total, seconds: seconds)
}

func benchEmbeddedConsume(directory: URL, total: Int) async throws -> Measurement {
    let path = directory.appendingPathComponent("consume.sqlite").path
    let log = try EmbeddedLog(path: path, configuration: EmbeddedLogConfiguration(maintenanceInterval: nil))
    try await log.createTopics([TopicSpec(name: "bench.consume", partitions: 6)])
    let records = makeRecords(topic: "bench.consume", count: total)
    for start in stride(from: 0, to: total, by: 1000) {
        _ = try await log.append(Array(records[start..<min(start + 1000, total)]))
    }
    let consumer = try await log.makeConsumer(.group("bench", topics: ["bench.consume"]))
    var seen = 0
    let seconds = try await time {
        while seen < total {
            let batch = try await consumer.poll(maxRecords: 1000, timeout: .seconds(1))
            seen += batch.count
            if let last = batch.last { try await consumer.commit([last]) }
        }
    }
    await consumer.close()
    await log.close()
    return Measurement(name: "embedded consume (group, batches of 1000, commit per batch)", events: total, seconds: seconds)
}

func format(_ value: Double) -> String {
    let number = Int(value.rounded())
    var text = String(number)
    var index = text.count - 3
    while index > 0 {
        text.insert(",", at: text.index(text.startIndex, offsetBy: index))
        index -= 3
    }
    return text
}

// MARK: Main

let arguments = CommandLine.arguments
if arguments.count == 5, arguments[1] == memoryChildFlag, let applications = Int(arguments[4]) {
    try await orchestratorMemoryChild(bus: arguments[2], store: arguments[3], applications: applications)
}
let scale = Int(ProcessInfo.processInfo.environment["ONEWINDOW_BENCH_SCALE"] ?? "1") ?? 1
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-bench-\(UUID().uuidString.prefix(8))")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }

nonisolated(unsafe) var lines: [String] = []  // written only from the top-level code, in order
func report(_ line: String) {
    print(line)
    lines.append(line)
}

/// Figures `make bench` checks against the targets: "name value" lines, written to the second
/// argument's file (scripts/bench.sh reads them).
nonisolated(unsafe) var figures: [String] = []  // written only from the top-level code
nonisolated(unsafe) var phaseLines: [String] = []  // the orchestrator's phase breakdowns, likewise
func figure(_ name: String, _ value: Double) {
    figures.append("\(name) \(value)")
}

// ONEWINDOW_BENCH_PARTS picks parts of the embedded run for profiling (a comma-separated list of
// `append`, `consume`, `connector`, `orchestrator`, `latency`, `memory`, and the later parts
// `view`, `sse`, `desk`, `flood`; default: all).
// ONEWINDOW_BENCH_EVENTS overrides the event count of the batched appends and of consume,
// ONEWINDOW_BENCH_ROWS the connector's row count, so a run under callgrind stays short;
// ONEWINDOW_BENCH_WORKFLOWS the orchestrator's throughput run (applications),
// ONEWINDOW_BENCH_RATE_SECONDS the length of the fixed-rate run, ONEWINDOW_BENCH_OPEN the open
// applications of the memory run.
let environment = ProcessInfo.processInfo.environment
let parts = Set(
    (environment["ONEWINDOW_BENCH_PARTS"] ?? "append,consume,connector,orchestrator,latency,memory").split(separator: ",")
        .map(String.init))
let events = Int(environment["ONEWINDOW_BENCH_EVENTS"] ?? "") ?? 200_000 * scale
let connectorRows = Int(environment["ONEWINDOW_BENCH_ROWS"] ?? "") ?? 100_000 * scale
let workflows = Int(environment["ONEWINDOW_BENCH_WORKFLOWS"] ?? "") ?? 20_000 * scale
let rateSeconds = Int(environment["ONEWINDOW_BENCH_RATE_SECONDS"] ?? "") ?? 20
let openApplications = Int(environment["ONEWINDOW_BENCH_OPEN"] ?? "") ?? 100_000
/// The offered rate of the latency run (applications a second): 500, the target's, unless `ONEWINDOW_BENCH_RATE` says otherwise.
let offeredRate = Int(environment["ONEWINDOW_BENCH_RATE"] ?? "") ?? 500

if environment["ONEWINDOW_BENCH_ONLY_KAFKA"] == nil && environment["ONEWINDOW_BENCH_ORCHESTRATOR_KAFKA"] == nil {
    if parts.contains("append") || parts.contains("consume") {
        report("### Embedded log (SQLite, WAL) against raw GRDB inserts")
        report("")
        report("| what | events | events/s | ratio to raw insert |")
        report("|---|---:|---:|---:|")
    }
    if parts.contains("append") {
        for (batch, total) in [(1, 5_000 * scale), (100, events), (1000, events)] {
            let raw = try await benchRawInsert(directory: directory, batch: batch, total: total)
            let embedded = try await benchEmbeddedAppend(directory: directory, batch: batch, total: total)
            report("| \(raw.name) | \(format(Double(raw.events))) | \(format(raw.eventsPerSecond)) | 1.00 |")
            report(
                "| \(embedded.name) | \(format(Double(embedded.events))) | \(format(embedded.eventsPerSecond)) | \(String(format: "%.2f", embedded.eventsPerSecond / raw.eventsPerSecond)) |"
            )
            if batch == 1000 {
                figure("embedded_append_events_per_second", embedded.eventsPerSecond)
                figure("embedded_append_ratio", embedded.eventsPerSecond / raw.eventsPerSecond)
            }
        }
    }
    if parts.contains("consume") {
        let consume = try await benchEmbeddedConsume(directory: directory, total: events)
        report("| \(consume.name) | \(format(Double(consume.events))) | \(format(consume.eventsPerSecond)) | |")
        figure("embedded_consume_events_per_second", consume.eventsPerSecond)
    }
    if parts.contains("connector") {
        report("")
        report("### Connector")
        report("")
        report("| what | rows | rows/s |")
        report("|---|---:|---:|")
        let connector = try await benchConnector(directory: directory, rows: connectorRows)
        report("| \(connector.name) | \(format(Double(connector.events))) | \(format(connector.eventsPerSecond)) |")
        figure("connector_rows_per_second", connector.eventsPerSecond)
    }
    if !parts.isDisjoint(with: ["orchestrator", "latency", "memory"]) {
        report("")
        report("### Orchestrator (restaurant workflow, departments approving at once, embedded log)")
        report("")
        report("| what | applications | figure |")
        report("|---|---:|---:|")
    }
    if parts.contains("orchestrator") {
        let log = try EmbeddedLog(path: directory.appendingPathComponent("orchestrator-bus.sqlite").path)
        let run = try await benchOrchestratorThroughput(
            log: log, directory: directory, applications: workflows, name: "embedded")
        report("| completed workflows (7 inputs, 6 requests each), submission to completed | \(format(Double(run.applications))) | \(format(run.perSecond))/s |")
        report("| the same, CPU time of the whole process (orchestrator, departments, submitter) per workflow | \(format(Double(run.applications))) | \(String(format: "%.2f", run.cpuMillisecondsPerWorkflow)) ms |")
        figure("orchestrator_embedded_workflows_per_second", run.perSecond)
        figure("orchestrator_embedded_cpu_ms_per_workflow", run.cpuMillisecondsPerWorkflow)
        phaseLines.append("- throughput, embedded: \(run.phases)")
    }
    if parts.contains("latency") {
        let log = try EmbeddedLog(path: directory.appendingPathComponent("latency-bus.sqlite").path)
        let run = try await benchOrchestratorLatency(
            log: log, directory: directory, rate: offeredRate, seconds: rateSeconds)
        report("| submission to last approval request at \(run.rate)/s offered, p50 | \(format(Double(run.applications))) | \(String(format: "%.1f", run.p50)) ms |")
        report("| the same, p99 (max \(String(format: "%.1f", run.max)) ms) | \(format(Double(run.applications))) | \(String(format: "%.1f", run.p99)) ms |")
        figure("orchestrator_latency_p50_ms", run.p50)
        figure("orchestrator_latency_p99_ms", run.p99)
        phaseLines.append("- fixed rate: \(run.phases)")
        phaseLines.append("- fixed rate, the latency's stages, p50/p99 ms: \(run.stages)")
    }
    if parts.contains("memory") {
        let run = try await benchOrchestratorMemory(directory: directory, applications: openApplications)
        report("| resident memory (VmRSS) of a fresh orchestrator process, applications open (peak \(String(format: "%.0f", run.peakMB)) MB; submissions applied at \(format(Double(run.applications) / run.seconds))/s) | \(format(Double(run.applications))) | \(String(format: "%.0f", run.residentMB)) MB |")
        figure("orchestrator_open_applications", Double(run.applications))
        figure("orchestrator_resident_mb", run.residentMB)
    }
    if !parts.isDisjoint(with: ["orchestrator", "latency", "memory"]) {
        report("")
        report(
            "The real engine (consumer, relay and timer loops on its GRDB store, as `orchestrator run` runs them) and, in the same process, departments that approve every request at once (one consumer group on every `approval.<department>.requested` topic, one validated append of decisions per polled batch). Every application takes all six steps: 7 inputs (the submission, 6 decisions) and 15 outputs (6 requests, 7 progress updates, 2 notifications) each. Throughput: applications submitted in batches of 500, timed from the first submission until every case is completed in the store and the outbox is published. Latency: an open loop submitting on schedule (what is due is appended at once, never waiting for the orchestrator), each application timed with HdrHistogram from the instant it was due to the departments' read of its sixth request, one department round trip included. Memory: VmRSS of a fresh orchestrator process started on a log already holding the applications, read once every one is open in its store with its first request published, no decisions."
        )
    }
    if !phaseLines.isEmpty {
        report("")
        report("Where the orchestrator's time went (shares of the run's wall time; the loops overlap):")
        report("")
        for line in phaseLines { report(line) }
    }
}

if let bootstrap = environment["ONEWINDOW_BENCH_ORCHESTRATOR_KAFKA"] {
    var configuration = KafkaConfiguration(bootstrapServers: [bootstrap])
    configuration.properties["session.timeout.ms"] = "6000"
    configuration.properties["heartbeat.interval.ms"] = "500"
    let log = try KafkaLog(configuration: configuration)
    let count = Int(environment["ONEWINDOW_BENCH_KAFKA_WORKFLOWS"] ?? "") ?? 5_000 * scale
    let run = try await benchOrchestratorThroughput(log: log, directory: directory, applications: count, name: "kafka")
    report("### Orchestrator on the Kafka test broker (Tansu on loopback, a broker of its own)")
    report("")
    report("| what | applications | figure |")
    report("|---|---:|---:|")
    report("| completed workflows on the Kafka test broker (Tansu, loopback) | \(format(Double(run.applications))) | \(format(run.perSecond))/s |")
    report("")
    report("- throughput, Kafka: \(run.phases)")
    figure("orchestrator_kafka_workflows_per_second", run.perSecond)
}

// The shared view (issue 10): ingest, comparison and lookups. Part `view` of ONEWINDOW_BENCH_PARTS
// (run when the variable is unset); ONEWINDOW_BENCH_VIEW_RESIDENTS sets the lookup population
// (default 1,000,000), ONEWINDOW_BENCH_VIEW_FACTS the facts ingested (default 300,000).
if environment["ONEWINDOW_BENCH_ONLY_KAFKA"] == nil, environment["ONEWINDOW_BENCH_PARTS"] == nil || parts.contains("view") {
    let viewFacts = Int(environment["ONEWINDOW_BENCH_VIEW_FACTS"] ?? "") ?? 300_000 * scale
    let residents = Int(environment["ONEWINDOW_BENCH_VIEW_RESIDENTS"] ?? "") ?? 1_000_000
    report("")
    report("### Shared data view")
    report("")
    report("| what | count | per second |")
    report("|---|---:|---:|")
    let ingest = try await SharedViewBenchmark.ingest(directory: directory, facts: viewFacts)
    report("| \(ingest.name) | \(format(Double(ingest.events))) facts | \(format(ingest.eventsPerSecond)) |")
    figure("view_ingest_facts_per_second", ingest.eventsPerSecond)
    let (compared, alerts) = try await SharedViewBenchmark.compare(directory: directory, residents: min(residents, 100_000))
    report("| \(compared.name), \(format(Double(alerts))) alerts | \(format(Double(compared.events))) subjects in \(String(format: "%.1f", compared.seconds)) s | \(format(compared.eventsPerSecond)) |")
    figure("view_compare_subjects_per_second", compared.eventsPerSecond)
    let store = try await SharedViewBenchmark.seed(directory.appendingPathComponent("view-lookup.sqlite").path, residents: residents)
    let lookup = try await SharedViewBenchmark.lookup(store: store, residents: residents, reads: 10_000)
    report("")
    report("By-ID read (`latestFact`, recorded in the usage log) among \(format(Double(residents))) residents (\(format(Double(residents * 2))) facts), 10,000 random reads: median \(String(format: "%.3f", lookup.p50)) ms, p99 \(String(format: "%.3f", lookup.p99)) ms.")
    figure("view_lookup_p99_milliseconds", lookup.p99)
    figure("view_lookup_residents", Double(residents))
}

// SSE fan-out (issue 11). Part `sse` of ONEWINDOW_BENCH_PARTS (run when the variable is unset);
// ONEWINDOW_BENCH_SSE_SUBSCRIBERS (default 100), ONEWINDOW_BENCH_SSE_EVENTS the burst (default
// 20,000), ONEWINDOW_BENCH_SSE_RATE the fixed rate (default 1,000 events/s) and
// ONEWINDOW_BENCH_SSE_SECONDS its length (default 10).
if environment["ONEWINDOW_BENCH_ONLY_KAFKA"] == nil, environment["ONEWINDOW_BENCH_PARTS"] == nil || parts.contains("sse") {
    let subscribers = Int(environment["ONEWINDOW_BENCH_SSE_SUBSCRIBERS"] ?? "") ?? 100
    let burst = Int(environment["ONEWINDOW_BENCH_SSE_EVENTS"] ?? "") ?? 20_000 * scale
    let rate = Int(environment["ONEWINDOW_BENCH_SSE_RATE"] ?? "") ?? 1_000
    let seconds = Int(environment["ONEWINDOW_BENCH_SSE_SECONDS"] ?? "") ?? 10
    let run = try await benchSSEFanOut(directory: directory, subscribers: subscribers, burst: burst, rate: rate, seconds: seconds)
    report("")
    report("### Subscriptions: SSE fan-out on loopback")
    report("")
    report("| what | events | figure |")
    report("|---|---:|---:|")
    report("| delivered to \(run.subscribers) SSE subscribers in total, a burst of \(format(Double(run.burst))) appended at once (\(String(format: "%.2f", run.burstSeconds)) s) | \(format(Double(run.burst * run.subscribers))) | \(format(run.deliveredPerSecond))/s |")
    report("| the same, CPU per delivered event (of which the SSE clients' parsing) | \(format(Double(run.burst * run.subscribers))) | \(String(format: "%.1f", run.burstCPUPerEvent * 1e6)) µs (\(String(format: "%.1f", run.burstClientCPUPerEvent * 1e6)) µs) |")
    report("| \(format(Double(run.rate))) events/s appended to each of \(run.subscribers) (\(format(Double(run.rate * run.subscribers))) deliveries/s offered): delivered, from the first append to the last delivery | \(format(Double(run.latencyEvents))) | \(format(run.latencyDeliveredPerSecond))/s |")
    report("| the same, last delivery after the last append (a backlog if long) | | \(String(format: "%.1f", run.drainMilliseconds)) ms |")
    report("| the same, CPU per delivered event (of which the SSE clients' parsing) | | \(String(format: "%.1f", run.latencyCPUPerEvent * 1e6)) µs (\(String(format: "%.1f", run.latencyClientCPUPerEvent * 1e6)) µs) |")
    report("| the same, append to a subscriber's parse, p50 | \(format(Double(run.latencyEvents))) | \(String(format: "%.1f", run.p50)) ms |")
    report("| the same, p99 (max \(String(format: "%.1f", run.max)) ms) | \(format(Double(run.latencyEvents))) | \(String(format: "%.1f", run.p99)) ms |")
    report("")
    report("Load average (1 min) \(String(format: "%.1f", run.loadBefore)) at the start, \(String(format: "%.1f", run.loadAfter)) at the end (2 cores).")
    report("")
    report("One embedded log (a topic of 6 partitions, ~500-byte CloudEvents), the subscription hub behind a Hummingbird server serving `ServerSentEventStream` (the gateway's SSE body), and the subscribers as plain-socket HTTP/1.1 clients in threads of their own in the same process, each parsing every `data:` line. Events are redacted (the form a subscriber without the personal-data grant gets). The latency is each event's time from its append (appended every 5 ms at the fixed rate) to a subscriber's parse of it, at every subscriber, in an HdrHistogram; it is a fan-out time only while the drain stays short (the system keeps up with the rate), else it is the backlog's wait.")
    figure("sse_delivered_events_per_second", run.deliveredPerSecond)
    figure("sse_latency_p99_ms", run.p99)
    figure("sse_latency_delivered_events_per_second", run.latencyDeliveredPerSecond)
    figure("sse_latency_drain_ms", run.drainMilliseconds)
    figure("sse_cpu_microseconds_per_event", run.latencyCPUPerEvent * 1e6)
    figure("sse_subscribers", Double(run.subscribers))
}

// The front desk through HTTP (issue 11). Part `desk` of ONEWINDOW_BENCH_PARTS (run when the
// variable is unset); ONEWINDOW_BENCH_DESK_CLIENTS the numbers of concurrent clients, a run each
// (default "16,64": a few busy counters, and a desk saturated by a district's many), and
// ONEWINDOW_BENCH_DESK_SUBMISSIONS the applications posted in each run (default 20,000).
if environment["ONEWINDOW_BENCH_ONLY_KAFKA"] == nil, environment["ONEWINDOW_BENCH_PARTS"] == nil || parts.contains("desk") {
    let clientCounts = (environment["ONEWINDOW_BENCH_DESK_CLIENTS"] ?? "16,64").split(separator: ",").compactMap { Int($0) }
    let submissions = Int(environment["ONEWINDOW_BENCH_DESK_SUBMISSIONS"] ?? "") ?? 20_000 * scale
    var runs: [FrontDeskResult] = []
    for clients in clientCounts {
        let runDirectory = directory.appendingPathComponent("desk-\(clients)")
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        runs.append(try await benchFrontDesk(directory: runDirectory, clients: clients, submissions: submissions))
    }
    report("")
    report("### Front desk through HTTP")
    report("")
    report("| what | submissions | figure |")
    report("|---|---:|---:|")
    for run in runs {
        report("| restaurant applications accepted (202) through `POST /applications`, \(run.clients) concurrent clients (\(String(format: "%.2f", run.seconds)) s) | \(format(Double(run.accepted))) | \(format(run.acceptedPerSecond))/s |")
        report("| the same, latency of one submission, p50 | \(format(Double(run.submissions))) | \(String(format: "%.1f", run.p50)) ms |")
        report("| the same, p99 (max \(String(format: "%.1f", run.max)) ms) | \(format(Double(run.submissions))) | \(String(format: "%.1f", run.p99)) ms |")
        report("| process CPU per submission, gateway and clients (\(String(format: "%.2f", run.cpuSeconds)) s of CPU) | \(format(Double(run.submissions))) | \(String(format: "%.3f", run.cpuMillisecondsPerSubmission)) ms |")
        report("| the same without the clients' threads: the gateway's CPU per submission | \(format(Double(run.submissions))) | \(String(format: "%.3f", run.gatewayCPUMillisecondsPerSubmission)) ms |")
    }
    report("")
    report("A real gateway (`Gateway` with its HTTP server and progress loop, as `onewindow gateway` runs it) on an embedded log, asking the real key store and access policy for a front-desk key on every request; each submission a distinct restaurant application (~1 KB of JSON), validated against its schema and appended. The clients are plain-socket HTTP/1.1 keep-alive connections in threads of their own in the same process, one request at a time each; latency is from sending a request to reading its whole answer. Each number of clients is a run of its own, on a fresh log; the desk's capacity is the rate of the run whose clients keep it busy (the larger number), the smaller shows the latency at a lighter load.")
    for run in runs {
        if run.accepted < run.submissions {
            report("")
            report("**\(format(Double(run.submissions - run.accepted))) submissions were not accepted with \(run.clients) clients**; the first answer: \(run.firstRefusal ?? "?")")
        }
        if run.recordsOnTopic != Int64(run.accepted) {
            report("")
            report("**\(run.recordsOnTopic) records on application.restaurant.submitted for \(run.accepted) accepted submissions with \(run.clients) clients.**")
        }
    }
    // The figures: the first run's as before (comparable with earlier runs), the busiest run's
    // rate as the desk's capacity.
    if let first = runs.first, let busiest = runs.max(by: { $0.clients < $1.clients }) {
        figure("desk_clients", Double(first.clients))
        figure("desk_accepted_per_second", first.acceptedPerSecond)
        figure("desk_accepted_fraction", Double(runs.map(\.accepted).reduce(0, +)) / Double(max(1, runs.map(\.submissions).reduce(0, +))))
        figure("desk_latency_p50_ms", first.p50)
        figure("desk_latency_p99_ms", first.p99)
        figure("desk_cpu_ms_per_submission", first.cpuMillisecondsPerSubmission)
        figure("desk_gateway_cpu_ms_per_submission", first.gatewayCPUMillisecondsPerSubmission)
        figure("desk_capacity_per_second", busiest.acceptedPerSecond)
        figure("desk_capacity_clients", Double(busiest.clients))
        figure("desk_capacity_latency_p99_ms", busiest.p99)
        figure("desk_capacity_cpu_ms_per_submission", busiest.cpuMillisecondsPerSubmission)
    }
}

// Floods (issue 12): refusing garbage against accepting good events through the validated
// publisher. Part `flood` of ONEWINDOW_BENCH_PARTS (run when the variable is unset);
// ONEWINDOW_BENCH_FLOOD_EVENTS the events of each stream (default 50,000).
if environment["ONEWINDOW_BENCH_ONLY_KAFKA"] == nil, environment["ONEWINDOW_BENCH_PARTS"] == nil || parts.contains("flood") {
    let count = Int(environment["ONEWINDOW_BENCH_FLOOD_EVENTS"] ?? "") ?? 50_000 * scale
    // ONEWINDOW_BENCH_FLOOD_PROFILE=good or garbage: only the publisher's work on that stream, for
    // about ten seconds, to run under `perf record` (nothing is reported); good+log or garbage+log:
    // the whole publication, the log's append included.
    if let stream = environment["ONEWINDOW_BENCH_FLOOD_PROFILE"] {
        try await FloodBenchmark.profile(stream, directory: directory)
        // `exit` skips the top level's `defer`: the profile's log goes here.
        try? FileManager.default.removeItem(at: directory)
        exit(0)
    }
    let run = try await FloodBenchmark.measure(directory: directory, count: count)
    report("")
    report("### Floods: refusing bad input against accepting good input")
    report("")
    report("| what | events | events/s |")
    report("|---|---:|---:|")
    report("| good events alone (valid tax payments, published) | \(format(Double(run.count))) | \(format(run.goodPerSecond)) |")
    report("| garbage alone (the hostile corpus's bad events, \(run.garbageKinds) kinds, refused and dead-lettered) | \(format(Double(run.count))) | \(format(run.garbagePerSecond)) |")
    report("| good events while a garbage flood runs beside them on the same log | \(format(Double(run.count))) | \(format(run.goodBesideGarbagePerSecond)) |")
    report("| the garbage flood beside them | \(format(Double(run.count))) | \(format(run.garbageBesideGoodPerSecond)) |")
    report("| a second comparison, not the target's: the corpus's good events of the garbage's five types alone, published | \(format(Double(run.count))) | \(format(run.corpusGoodPerSecond)) |")
    report("")
    report("One validated `Publisher` on an embedded log, batches of \(run.batch), refusals dead-lettered in the same append as connectors do; the two streams side by side are two tasks publishing at once through it. Refusing is at least as fast as accepting when the garbage rate is at least the good rate.")
    report("")
    report("CPU per record, which other processes on the machine barely move (load average \(String(format: "%.1f", loadAverage())) at the end):")
    report("")
    report("| what | good | garbage | garbage / good |")
    report("|---|---:|---:|---:|")
    report("| process CPU per record, alone (validation, dead letters, append, SQLite) | \(String(format: "%.1f", run.goodCPUMicroseconds)) µs | \(String(format: "%.1f", run.garbageCPUMicroseconds)) µs | \(String(format: "%.2f", run.garbageCPUMicroseconds / run.goodCPUMicroseconds)) |")
    report("| the same against the corpus's good events of the garbage's five types (second comparison) | \(String(format: "%.1f", run.corpusGoodCPUMicroseconds)) µs | \(String(format: "%.1f", run.garbageCPUMicroseconds)) µs | \(String(format: "%.2f", run.garbageCPUMicroseconds / run.corpusGoodCPUMicroseconds)) |")
    report("| thread CPU per record of the publisher's work without the log (`Publisher.records(for:deadLetter:)`, median of 5) | \(String(format: "%.1f", run.goodWorkMicroseconds)) µs | \(String(format: "%.1f", run.garbageWorkMicroseconds)) µs | \(String(format: "%.2f", run.garbageWorkMicroseconds / run.goodWorkMicroseconds)) |")
    report("| the same for the corpus's good events of the garbage's five types, instead of tax payments | \(String(format: "%.1f", run.corpusGoodWorkMicroseconds)) µs | \(String(format: "%.1f", run.garbageWorkMicroseconds)) µs | \(String(format: "%.2f", run.garbageWorkMicroseconds / run.corpusGoodWorkMicroseconds)) |")
    report("| bytes appended per record (value, key, headers) | \(format(run.goodBytes)) | \(format(run.garbageBytes)) | \(String(format: "%.2f", run.garbageBytes / run.goodBytes)) |")
    report("| the same, the corpus's good events of the garbage's five types (second comparison) | \(format(run.corpusGoodBytes)) | \(format(run.garbageBytes)) | \(String(format: "%.2f", run.garbageBytes / run.corpusGoodBytes)) |")
    report("")
    report("The publisher's work per refused record by kind of garbage, thread CPU: " + run.kindWorkMicroseconds.map { "\($0.kind) \(String(format: "%.1f", $0.microseconds)) µs" }.joined(separator: ", ") + ".")
    figure("flood_good_per_second", run.goodPerSecond)
    figure("flood_garbage_per_second", run.garbagePerSecond)
    figure("flood_good_beside_garbage_per_second", run.goodBesideGarbagePerSecond)
    figure("flood_good_cpu_us_per_record", run.goodCPUMicroseconds)
    figure("flood_garbage_cpu_us_per_record", run.garbageCPUMicroseconds)
    figure("flood_corpus_good_per_second", run.corpusGoodPerSecond)
    figure("flood_corpus_good_cpu_us_per_record", run.corpusGoodCPUMicroseconds)
}

// The pure per-event work (EventPathBenchmark.swift). Part `eventpath` of ONEWINDOW_BENCH_PARTS
// (run when the variable is unset); ONEWINDOW_BENCH_EVENTPATH_ROUNDS the repetitions (default 20,000).
if environment["ONEWINDOW_BENCH_ONLY_KAFKA"] == nil, environment["ONEWINDOW_BENCH_PARTS"] == nil || parts.contains("eventpath") {
    let rounds = Int(environment["ONEWINDOW_BENCH_EVENTPATH_ROUNDS"] ?? "") ?? 20_000
    report("")
    report("### Per-event work of the pure parts (one thread, thread CPU time)")
    report("")
    report("| what | times | ns each (CPU) | per CPU-second |")
    report("|---|---:|---:|---:|")
    for measurement in try benchEventPath(rounds: rounds) {
        report("| \(measurement.name) | \(format(Double(measurement.count))) | \(format(measurement.nanosecondsEach)) | \(format(measurement.perSecond)) |")
        figure("eventpath_\(measurement.figure)_ns", measurement.nanosecondsEach)
    }
}

if let bootstrap = ProcessInfo.processInfo.environment["ONEWINDOW_BENCH_KAFKA"] {
    let records = Int(ProcessInfo.processInfo.environment["ONEWINDOW_BENCH_KAFKA_RECORDS"] ?? "100000") ?? 100_000
    let hub = try await benchKafka(bootstrap: bootstrap, records: records)
    report("")
    report("KAFKA_HUB produce \(Int(hub.produce)) consume \(Int(hub.consume)) records \(records)")
}

if let output = arguments.dropFirst().first {
    try (lines.joined(separator: "\n") + "\n").write(toFile: output, atomically: true, encoding: .utf8)
}
if arguments.count > 2 {
    try (figures.joined(separator: "\n") + "\n").write(toFile: arguments[2], atomically: true, encoding: .utf8)
}
