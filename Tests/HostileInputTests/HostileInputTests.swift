import AccessControl
import Audit
import Bus
import CivilTime
import Connectors
import EventLog
import EventModel
import EventSchemas
import Foundation
import Gateway
import Logging
import Orchestrator
import OrchestratorService
import Retrying
import ServiceLifecycle
import Testing
import TestSupport

/// Issue 12: the hostile-input corpus (Tests/HostileInput) through every entry point that takes
/// input from outside. Each bad record must be refused, or dead-lettered, with a reason naming its
/// field and rule; nothing may crash or stall; every good record around the bad ones arrives once
/// and in order; and Python reads every record the hub accepted. `make test` sends a fixed sample
/// through the slow entry points (a process per record for `onewindow publish`); `make
/// reliability` sends the whole corpus through each.
@Suite("Hostile input at every entry point", .timeLimit(.minutes(5)))
struct HostileInputTests {
    /// The corpus's event types with the topic each goes to.
    static let eventTopics: [String: String] = [
        "household.birth.registered": "household.birth.registered",
        "household.death.registered": "household.death.registered",
        "tax.payment.received": "tax.payment.received",
        "market.business.registered": "market.business.registered",
        "approval.decided": "approval.food-safety.decided",
    ]

    /// The good records' event ids, in corpus order (those sent with a `ce-id`).
    static func goodIds(_ records: [HostileRecord]) -> [String] {
        records.filter(\.expect.accepted).compactMap { $0.header("ce-id") }
    }

    /// The checks after a run of event records: the good ones arrived once and in order, Python
    /// reads every accepted one, no problem was seen; then the figures for RELIABILITY.md.
    static func finish(
        _ tally: inout Tally, _ bench: Bench, records: [HostileRecord], part: String, started: ContinuousClock.Instant
    ) async throws {
        let topics = Set(eventTopics.values)
        tally.problems += try await arrivedOnceInOrder(bench.log, topics: topics, ids: goodIds(records))
        let python = try await pythonReads(bench.path, topics: topics)
        tally.problems += python.problems
        #expect(python.records == tally.accepted, "Python read \(python.records) records, the hub accepted \(tally.accepted)")
        tally.check()
        try report(part, [tally], seconds: (ContinuousClock.now - started).seconds)
    }

    /// The validated publisher itself (what every entry point publishes through), the whole
    /// corpus in every run: one record at a time, refused ones to the dead-letter topic.
    @Test func theValidatedPublisherTakesTheWholeCorpus() async throws {
        let bench = try await Bench()
        defer { Task { await bench.tearDown() } }
        let started = ContinuousClock.now
        let publisher = Publisher(log: bench.log, catalog: catalog, name: "hostile-input-test")
        let records = HostileCorpus.records(entry: "event", to: "publisher")
        var tally = Tally("validated publisher")
        try await Self.publish(records, through: publisher, tally: &tally)
        try await Self.finish(&tally, bench, records: records, part: "hostile-publisher", started: started)
    }

    /// Publishes `records` one at a time through `publisher`, refused ones to the dead-letter topic,
    /// counting each in `tally`. Event ids are `idPrefix` + the record's `ce-id` (or `seq-N`).
    static func publish(_ records: [HostileRecord], through publisher: Publisher, tally: inout Tally, idPrefix: String = "")
        async throws
    {
        for record in records {
            tally.records += 1
            let topic = record.topic.flatMap { $0.isEmpty ? nil : $0 }
            let id = record.header("ce-id").map { idPrefix + $0 }
                ?? (idPrefix.isEmpty ? UUID().uuidString.lowercased() : "\(idPrefix)seq-\(record.seq)")
            let event = Event(
                id: id, type: record.type ?? "", source: "/hostile-input", subject: record.header("ce-subject"),
                data: record.bytes)
            let publication = Publication(event: event, topic: topic)
            do {
                switch try await publisher.publish([publication], deadLetter: true)[0] {
                case .published: tally.acceptance(record)
                case .deadLettered(_, let failure):
                    tally.refusal(record, code: failure.code.rawValue, reason: failure.reason, deadLettered: true)
                }
            } catch let error as LogError where ErrorDisposition.of(error) == .deadLetter {
                // Too large for the log even as a dead letter: the caller keeps a truncated copy.
                do {
                    _ = try publisher.validatedRecord(for: publication)
                    tally.problems.append("\(record.label): valid but too large for the log: \(error)")
                } catch let failure as ValidationFailure {
                    _ = try await publisher.deadLetter(publication, failure: failure, keeping: 4096)
                    tally.refusal(record, code: failure.code.rawValue, reason: failure.reason, deadLettered: true)
                }
            }
        }
    }

    /// `onewindow publish`, a real process per record (the body on standard input, `ce-id` as
    /// `--id`, `ce-subject` as `--subject`): exit 0, or 65 with the field and rule on standard error.
    @Test func onewindowPublishRefusesEachBadBodyAndPublishesTheGoodOnes() async throws {
        let bench = try await Bench()
        defer { Task { await bench.tearDown() } }
        let started = ContinuousClock.now
        // A process per record: every 60th record under make test, all under make reliability.
        let records = HostileCorpus.records(entry: "event", to: "cli", every: 60, keepGood: false)
        var tally = Tally("onewindow publish")
        let executable = try onewindowExecutable()
        for record in records {
            tally.records += 1
            var arguments = ["publish", "--bus", "embedded:\(bench.path)", "--type", record.type ?? ""]
            if let topic = record.topic, !topic.isEmpty { arguments += ["--topic", topic] }
            if let id = record.header("ce-id") { arguments += ["--id", id] }
            if let subject = record.header("ce-subject") { arguments += ["--subject", subject] }
            arguments.append("-")
            let process = childProcess(executable, arguments)
            process.currentDirectoryURL = repositoryRoot
            let output = Pipe()
            let error = Pipe()
            process.standardOutput = output
            process.standardError = error
            process.standardInput = try standardInput(record.bytes)
            try process.run()
            let result = await collect(process, output: output, error: error, timeout: .seconds(60))
            let stderr = String(decoding: result.error, as: UTF8.self)
            switch result.status {
            case 0: tally.acceptance(record)
            case 65: tally.refusal(record, code: nil, reason: stderr, deadLettered: false)
            default: tally.problems.append("\(record.label): exit \(result.status): \(stderr.prefix(300))")
            }
        }
        try await Self.finish(&tally, bench, records: records, part: "hostile-cli", started: started)
    }

    /// The webhook source over real HTTP (a plain socket, so repeated headers reach the server as
    /// sent): one connector with a webhook per event type; 202, or 400 with the field and rule and
    /// the body dead-lettered; over 1 MiB 413, headers over the server's limit 431 (or the
    /// connection closed), neither read by the hub.
    @Test func theWebhookSourceRefusesOrDeadLettersEachBadPost() async throws {
        let bench = try await Bench()
        defer { Task { await bench.tearDown() } }
        let started = ContinuousClock.now
        let ports = Dictionary(uniqueKeysWithValues: Self.eventTopics.keys.sorted().map { ($0, freePort()) })
        var yaml = "name: hostile-webhooks\ndepartment: tax\nstate: \(bench.file("state.sqlite").path)\nsources:\n"
        for (type, port) in ports.sorted(by: { $0.key < $1.key }) {
            yaml += "  - kind: webhook\n    listen: 127.0.0.1:\(port)\n    path: /events\n    type: \(type)\n"
            yaml += "    topic: \(Self.eventTopics[type]!)\n"
        }
        let connector = try Connector(
            configuration: try ConnectorConfiguration.parse(yaml, file: "hostile-webhooks"), log: bench.log,
            catalog: catalog, logger: quiet("hostile-webhooks"))
        let group = ServiceGroup(services: [connector], logger: quiet("hostile-webhooks"))
        let running = Task { try await group.run() }
        for port in ports.values { #expect(waitForListener(port), "the webhook on \(port) did not start") }

        let records = HostileCorpus.records(entry: "event", to: "webhook")
        var tally = Tally("webhook source")
        for record in records {
            tally.records += 1
            guard let type = record.type, let port = ports[type] else {
                tally.problems.append("\(record.label): no webhook for its type")
                continue
            }
            guard let answer = await rawPost(port: port, path: "/events", headers: record.headers, body: record.bytes) else {
                if record.kind == "oversized-headers" && !record.expect.accepted {
                    tally.refused += 1  // closed by the HTTP server before the hub read it
                } else {
                    tally.problems.append("\(record.label): no answer (the connection closed)")
                }
                continue
            }
            let text = String(decoding: answer.body, as: UTF8.self)
            switch answer.status {
            case 202: tally.acceptance(record)
            case 400 where record.expect.code == "header-too-large", 431 where record.expect.code == "header-too-large":
                tally.refused += 1  // the HTTP server's own answer, before the hub reads the request
            case 400:
                let json = try? JSONValue.parse(answer.body)
                let deadLetter = json?[pointer: "/deadLetter"]?.stringValue != nil
                if !deadLetter { tally.problems.append("\(record.label): 400 without a dead letter: \(text.prefix(200))") }
                tally.refusal(record, code: json?[pointer: "/code"]?.stringValue, reason: text, deadLettered: deadLetter)
            case 413 where record.bytes.count > 1 << 20:
                tally.refused += 1
            default:
                tally.problems.append("\(record.label): status \(answer.status): \(text.prefix(300))")
            }
        }
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        try await Self.finish(&tally, bench, records: records, part: "hostile-webhook", started: started)
    }

    /// The file-drop source: one JSON-lines file per event type holding that type's records of
    /// the corpus, good and bad lines mixed, in corpus order. Each bad line is dead-lettered with
    /// its line number, field and rule; the good lines arrive once, in order; the file ends in done/.
    @Test func theFileDropSourceDeadLettersBadLinesAndKeepsTheGoodOnes() async throws {
        let bench = try await Bench()
        defer { Task { await bench.tearDown() } }
        let started = ContinuousClock.now
        let records = HostileCorpus.records(entry: "event", to: "file-drop")
        var yaml = "name: hostile-drops\ndepartment: tax\nstate: \(bench.file("state.sqlite").path)\nsources:\n"
        // Line number → record, per type; a body with line feeds in it spans lines (the first counts).
        var lines: [String: [Int: HostileRecord]] = [:]
        for (type, topic) in Self.eventTopics.sorted(by: { $0.key < $1.key }) {
            let folder = bench.file("drop-\(type)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            var file = Data()
            var number = 1
            for record in records where record.type == type {
                let body = record.bytes
                lines[type, default: [:]][number] = record
                file.append(body)
                file.append(0x0A)
                number += 1 + body.filter { $0 == 0x0A }.count
            }
            try file.write(to: folder.appendingPathComponent(".records.jsonl"))
            try FileManager.default.moveItem(
                at: folder.appendingPathComponent(".records.jsonl"), to: folder.appendingPathComponent("records.jsonl"))
            yaml += "  - kind: file-drop\n    directory: \(folder.path)\n    format: jsonl\n    type: \(type)\n"
            yaml += "    topic: \(topic)\n    interval: 50ms\n    settle: 0ms\n"
        }
        let types = Array(Self.eventTopics.keys)
        _ = try await runConnector(yaml, on: bench, seconds: 120) {
            types.allSatisfy {
                FileManager.default.fileExists(atPath: bench.file("drop-\($0)/done/records.jsonl").path)
                    || FileManager.default.fileExists(atPath: bench.file("drop-\($0)/failed/records.jsonl").path)
            }
        }

        var tally = Tally("file-drop source (JSON lines)")
        tally.records = records.count
        for type in Self.eventTopics.keys.sorted() {
            let failed = bench.file("drop-\(type)/failed/records.jsonl.reason")
            if let reason = try? String(contentsOf: failed, encoding: .utf8) {
                tally.problems.append("the \(type) file went to failed/ whole: \(reason)")
            } else if !FileManager.default.fileExists(atPath: bench.file("drop-\(type)/done/records.jsonl").path) {
                tally.problems.append("the \(type) file was not finished in 120 s (a stall)")
            }
        }
        // What each line became: by the line number at the end of its event id.
        func line(_ record: LogRecord) -> (String, Int)? {
            guard let id = record.header("ce_id"), let type = record.header("ce_type"),
                let number = id.split(separator: "/").last.flatMap({ Int($0) })
            else { return nil }
            return (type, number)
        }
        var outcome: [String: [Int: Int]] = [:]  // type → line → times published
        var order: [String: [Int: Int]] = [:]  // type → partition → last good line
        for topic in Set(Self.eventTopics.values) {
            for record in try await readTopic(bench.log, topic) {
                guard let found = line(record), let source = lines[found.0]?[found.1] else { continue }
                let (type, number) = found
                outcome[type, default: [:]][number, default: 0] += 1
                tally.acceptance(source)
                if let before = order[type]?[record.partition], before > number {
                    tally.problems.append("\(source.label): line \(number) arrived after line \(before)")
                }
                order[type, default: [:]][record.partition] = number
            }
        }
        for record in try await readTopic(bench.log, catalog.deadLetterTopic) {
            guard let id = record.header("ce_id"), let type = record.header("ce_type"),
                let number = id.split(separator: "/").last.flatMap({ Int($0) }), let source = lines[type]?[number]
            else { continue }
            tally.refusal(
                source, code: record.header("dl_code"), reason: record.header("dl_reason") ?? "", deadLettered: true)
            if record.header("dl_reason")?.contains("line \(number)") != true && source.expect.code == "invalid-json" {
                tally.problems.append("\(source.label): the reason does not give line \(number)")
            }
        }
        for (type, byLine) in lines {
            for (number, record) in byLine where record.expect.accepted && outcome[type]?[number] != 1 {
                tally.problems.append("\(record.label): good line \(number) published \(outcome[type]?[number] ?? 0) time(s)")
            }
        }
        let python = try await pythonReads(bench.path, topics: Set(Self.eventTopics.values))
        tally.problems += python.problems
        tally.check()
        try report("hostile-file-drop", [tally], seconds: (ContinuousClock.now - started).seconds)
    }

    /// The gateway's front desk, `POST /applications` over real HTTP with a key that may submit:
    /// 202, or 400/422 naming the field (its pointer in the request) and the rule, never a 500.
    @Test func theFrontDeskAnswersEachBadSubmissionWithItsFieldAndRule() async throws {
        let bench = try await Bench()
        defer { Task { await bench.tearDown() } }
        let started = ContinuousClock.now
        let store = try KeyStore(path: bench.file("access.sqlite").path)
        let audit = try AuditLog(path: bench.file("audit.sqlite").path)
        let key = try await store.create(
            Principal(name: "hostile-desk", kind: .downstream, grants: [.submit(workflow: "*")]), audit: audit,
            actor: "test"
        ).apiKey
        let rules = try RuleBook.load(directory: repositoryRoot.appendingPathComponent("Rules"), catalog: catalog)
        let logger = quiet("hostile-gateway")
        let gateway = try Gateway(
            log: bench.log, catalog: catalog, rules: rules, storePath: bench.file("gateway.sqlite").path,
            viewPath: bench.file("view.sqlite").path, access: AccessPolicy(keys: store, audit: audit),
            bus: "embedded:test", logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let group = ServiceGroup(
            services: try gateway.services(host: "127.0.0.1", port: 0) { continuation.yield($0) }, logger: logger)
        let running = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())

        let records = HostileCorpus.records(entry: "application", to: "gateway")
        var tally = Tally("gateway POST /applications")
        var goodIds: [String] = []
        for record in records {
            tally.records += 1
            guard
                let answer = await rawPost(
                    port: port, path: "/applications", headers: [["Authorization", "Bearer \(key)"]], body: record.bytes)
            else {
                tally.problems.append("\(record.label): no answer (the connection closed)")
                continue
            }
            let json = try? JSONValue.parse(answer.body)
            let text = String(decoding: answer.body, as: UTF8.self)
            if answer.status == 202 {
                tally.acceptance(record)
                if let id = json?[pointer: "/eventId"]?.stringValue { goodIds.append(id) }
                continue
            }
            guard answer.status == 400 || answer.status == 422 else {
                tally.problems.append("\(record.label): status \(answer.status): \(text.prefix(300))")
                continue
            }
            if let status = record.expect.status, status != answer.status {
                tally.problems.append("\(record.label): status \(answer.status), expected \(status): \(text.prefix(300))")
            }
            // The field and rule must be one violation's: its pointer (or below it) and its rule.
            let violations = json?[pointer: "/violations"]?.arrayValue ?? []
            let named = violations.contains { violation in
                let pointer = violation[pointer: "/pointer"]?.stringValue ?? ""
                let rule = violation[pointer: "/rule"]?.stringValue ?? ""
                return pointer.hasPrefix(record.expect.pointer ?? "") && (record.expect.rule ?? "") == rule
            }
            let reason = violations.map {
                "\($0[pointer: "/pointer"]?.stringValue ?? ""): \($0[pointer: "/rule"]?.stringValue ?? ""): \($0[pointer: "/message"]?.stringValue ?? "")"
            }.joined(separator: "; ")
            tally.refusal(record, code: json?[pointer: "/code"]?.stringValue, reason: reason, deadLettered: false)
            if !named, !record.expect.accepted {
                tally.problems.append(
                    "\(record.label): no violation at \(record.expect.pointer ?? "") with rule \(record.expect.rule ?? ""): \(text.prefix(300))")
            }
        }
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        let topic = "application.restaurant.submitted"
        tally.problems += try await arrivedOnceInOrder(bench.log, topics: [topic], ids: goodIds)
        let python = try await pythonReads(bench.path, topics: [topic])
        tally.problems += python.problems
        #expect(python.records == tally.accepted)
        tally.check()
        try report("hostile-gateway", [tally], seconds: (ContinuousClock.now - started).seconds)
    }
}

/// A logger that keeps the many refusals of a run out of the test output.
func quiet(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .critical
    return logger
}

/// The orchestrator's inputs: records put straight on its input topics (as a producer that skips
/// the hub's publisher would), the corpus's decisions and front-desk applications among envelopes
/// that are not CloudEvents. Each record goes through the real engine one at a time: a good
/// application opens its case; everything else is dead-lettered (by the relay, with the reason)
/// and the engine goes on.
@Suite("Hostile input at the orchestrator", .timeLimit(.minutes(3)))
struct HostileOrchestratorInputTests {
    @Test func theOrchestratorDeadLettersEveryBadInputAndKeepsGoing() async throws {
        let bench = try await Bench()
        defer { Task { await bench.tearDown() } }
        let started = ContinuousClock.now
        let rulesDirectory = repositoryRoot.appendingPathComponent("Rules")
        let rules = try RuleBook.load(directory: rulesDirectory, catalog: catalog)
        let engine = try OrchestratorEngine(
            store: try OrchestratorStore(path: bench.file("orchestrator.sqlite").path), rules: rules,
            calendar: try WorkingDayCalendar.load(from: rulesDirectory.appendingPathComponent("calendar.yaml")),
            log: bench.log, catalog: catalog, logger: quiet("hostile-orchestrator"))

        // (the record, what it stands for, whether it must open a case)
        var inputs: [(record: OutgoingRecord, source: HostileRecord, good: Bool)] = []
        func cloudEvent(_ source: HostileRecord, type: String, topic: String, body: Data, id: String) -> OutgoingRecord {
            CloudEventsBinding.record(
                for: Event(id: id, type: type, source: "/hostile-input", subject: source.header("ce-subject"), data: body),
                topic: topic)
        }
        for source in HostileCorpus.all
        where source.type == "approval.decided" && source.entry == "event" && source.bytes.count < 1 << 20 {
            // Every decision is bad for the orchestrator: nobody submitted these applications.
            inputs.append((
                cloudEvent(source, type: "approval.decided", topic: "approval.food-safety.decided", body: source.bytes,
                           id: source.header("ce-id") ?? "hostile-decision-\(source.seq)"),
                source, false))
        }
        // (Bodies over the log's 1 MiB limit cannot be put on a topic at all.)
        for source in HostileCorpus.all where source.entry == "application" && source.bytes.count < 1 << 20 {
            // The application member of the request when it has one, else the request's bytes.
            let body = (try? JSONValue.parse(source.bytes))?[pointer: "/application"]?.serialized() ?? source.bytes
            let good = source.expect.accepted
            inputs.append((
                cloudEvent(source, type: "application.restaurant.submitted", topic: "application.restaurant.submitted",
                           body: good ? body : source.bytes, id: "hostile-application-\(source.seq)"),
                source, good))
        }
        // Envelopes that are not CloudEvents: a header missing, named twice, or huge.
        let template = try #require(inputs.first { $0.good })
        for (index, headers) in [
            template.record.headers.filter { $0.name != "ce_type" },
            template.record.headers.filter { $0.name != "ce_id" },
            template.record.headers.filter { $0.name != "ce_specversion" },
            template.record.headers + [LogHeader(name: "ce_id", text: "another-id")],
            template.record.headers.map { $0.name == "ce_id" ? LogHeader(name: "ce_id", text: String(repeating: "x", count: 100_000)) : $0 },
            template.record.headers.map { $0.name == "ce_time" ? LogHeader(name: "ce_time", text: "2025-02-30T10:00:00Z") : $0 },
            template.record.headers.map { $0.name == "ce_type" ? LogHeader(name: "ce_type", value: Data([0xff, 0xfe])) : $0 },
            [],
        ].enumerated() {
            // Each its own application and id: accepted by mistake, it would open a case of its own.
            var body = try JSONValue.parse(template.record.value)
            body.set(.string(String(format: "RA-2026-8000%02d", index)), at: "/applicationId")
            var record = template.record
            record.value = body.serialized()
            record.headers = headers.map {
                $0.name == "ce_id" && $0.text == template.record.headers.first(where: { $0.name == "ce_id" })?.text ? LogHeader(name: "ce_id", text: "hostile-envelope-\(index)") : $0
            }
            inputs.append((record, template.source, false))
        }

        var tally = Tally("orchestrator inputs")
        let good = inputs.filter(\.good).count
        for (index, input) in inputs.enumerated() {
            tally.records += 1
            let position = try await bench.log.append([input.record])[0]
            let read = try await bench.log.read(
                TopicPartition(position.topic, position.partition), from: position.offset, maxRecords: 1)
            let record = try #require(read.first)
            let outcome = try await engine.process([record])
            if outcome.deadLettered == 1 {
                tally.deadLettered += 1
                if input.good { tally.problems.append("input \(index) (\(input.source.label)): a good application was dead-lettered") }
            } else if outcome.applied == 1 {
                tally.accepted += 1
                if !input.good { tally.problems.append("input \(index) (\(input.source.label)): applied, expected dead-lettered") }
            } else {
                tally.problems.append("input \(index) (\(input.source.label)): neither applied nor dead-lettered: \(outcome)")
            }
            while try await engine.relayOnce() > 0 {}
        }
        #expect(tally.accepted == good)
        // Every dead letter says why: the schema's field and rule for a body, the core's code otherwise.
        let dead = try await readTopic(bench.log, catalog.deadLetterTopic)
        #expect(dead.count == tally.deadLettered, "\(dead.count) dead letters for \(tally.deadLettered) refusals")
        for letter in dead {
            let reason = letter.header("dl_reason") ?? ""
            if reason.isEmpty || letter.header("dl_code") == nil {
                tally.problems.append("\(letter.position): a dead letter without code or reason")
            }
        }
        // The applications opened: one progress update each, with the right application.
        let progress = try await readTopic(bench.log, "application.progress.updated").compactMap { $0.header("ce_subject") }
        #expect(Set(progress).count == good, "\(Set(progress).count) applications progressed of \(good)")
        let python = try await pythonReads(bench.path, topics: ["application.progress.updated"])
        tally.problems += python.problems
        tally.check()
        try report("hostile-orchestrator", [tally], seconds: (ContinuousClock.now - started).seconds)
    }
}
