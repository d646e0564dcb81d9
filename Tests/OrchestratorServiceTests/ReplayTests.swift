import EventLog
import EventModel
import Foundation
import OneWindowCLI
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

@Suite("Replaying the orchestrator's inputs", .timeLimit(.minutes(3)))
struct ReplayTests {
    /// What the orchestrator publishes: approval requests, progress updates, notifications.
    static func emitted(_ bench: Bench) async throws -> [Event] {
        var topics = Repo.catalog.topics(carrying: "approval.requested").map(\.name)
        topics += ["application.progress.updated", "notification.sms.requested"]
        var all: [Event] = []
        for topic in topics { all += try await quickly(bench.log, topic).map { try CloudEventsBinding.event(from: $0) } }
        return all
    }

    /// Every record of a topic, reading a partition only when its watermarks say it has records,
    /// and once unless a read comes back full (a Kafka read past the end waits for the fetch to
    /// come back empty; `KafkaLog.read` takes records past a high-water mark the Tansu test broker
    /// reports low after a batch, so one read from the start gets them all).
    static func quickly(_ log: any EventLog, _ topic: String) async throws -> [LogRecord] {
        var records: [LogRecord] = []
        for description in try await log.describeTopics([topic]) {
            for (index, marks) in description.partitions.enumerated() where marks.high > marks.low {
                var offset = marks.low
                while true {
                    let batch = try await log.read(TopicPartition(topic, index), from: offset, maxRecords: 1000)
                    records += batch
                    guard batch.count == 1000, let last = batch.last else { break }
                    offset = last.offset + 1
                }
            }
        }
        return records
    }

    /// Approves every request not answered yet, at once, as a department would.
    static func approveAll(_ bench: Bench, answered: inout Set<String>) async throws -> Int {
        var count = 0
        for request in try await emitted(bench) where request.type == "approval.requested" {
            guard answered.insert(request.id).inserted else { continue }
            try await bench.approve(request: request)
            count += 1
        }
        return count
    }

    /// Runs three restaurant applications to completion, stops the orchestrator, replays its
    /// group to a time before the applications (plan, then execute), starts it again until it has
    /// caught up: every input is a duplicate, and nothing it published appears twice, by id or by
    /// content.
    @Test("Replaying the orchestrator's group to a time before the applications re-emits nothing; the embedded log")
    func replayReEmitsNothing() async throws { try await replayReEmitsNothing(kafka: false) }

    @Test(
        "Replaying the orchestrator's group to a time before the applications re-emits nothing; a Kafka test broker of its own")
    func replayReEmitsNothingOnKafka() async throws { try await replayReEmitsNothing(kafka: true) }

    func replayReEmitsNothing(kafka: Bool) async throws {
        let bench = try await Bench(kafka: kafka)
        let before = Repo.at("2026-03-02", 9, 0)
        let ids = ["RA-2026-700001", "RA-2026-700002", "RA-2026-700003"]
        var engine = try bench.engine()
        // One member for the whole first run (a group join takes seconds on the Kafka test broker).
        var running = try await CatchingUp.start(engine, on: bench.log)
        for id in ids { try await bench.submit(Repo.restaurant(id: id)) }
        try await running.untilCaughtUp()
        var answered = Set<String>()
        for _ in 0..<4 {
            if try await Self.approveAll(bench, answered: &answered) == 0 { break }
            await bench.clock.advance(by: .seconds(600))
            try await running.untilCaughtUp()
        }
        await running.stop()
        for id in ids { #expect(try engine.store.findCase(id)?.state.status == .completed, "\(id)") }
        let first = try await Self.emitted(bench)
        #expect(first.count > 20)

        // Stopped (pump closed its consumer): the group has no live member; plan, then execute.
        #expect(try await bench.log.groupMembers(OrchestratorEngine.group).isEmpty)
        let inputs = try await bench.log.committedOffsets(group: OrchestratorEngine.group, topics: engine.topics)
            .values.reduce(0, +)
        let plan = try await Replay.plan(
            group: OrchestratorEngine.group, topics: engine.topics, to: .time(before), on: bench.log)
        #expect(plan.moves.map(\.recordsToReread).reduce(0, +) == inputs)
        #expect(plan.table.contains("total: \(inputs) record(s) to re-read"), "\(plan.table)")
        // The plan moved nothing.
        #expect(
            try await bench.log.committedOffsets(group: OrchestratorEngine.group, topics: engine.topics)
                .values.reduce(0, +) == inputs)
        let moved = try await Replay.execute(plan, on: bench.log)
        #expect(moved.map(\.recordsToReread).reduce(0, +) == inputs)
        #expect(moved.allSatisfy { $0.to == 0 })

        // Started again (a new engine on the same store), until it has caught up.
        engine = try bench.engine()
        running = try await CatchingUp.start(engine, on: bench.log)
        let outcome = try await running.untilCaughtUp()
        await running.stop()
        #expect(outcome.duplicates == inputs)
        #expect(outcome.applied == 0 && outcome.emitted == 0 && outcome.deadLettered == 0)
        let lag = try await bench.log.lag(group: OrchestratorEngine.group, topics: engine.topics)
        #expect(lag.map(\.lag).reduce(0, +) == 0)

        let second = try await Self.emitted(bench)
        #expect(second.count == first.count, "nothing published again")
        #expect(Set(second.map(\.id)).count == second.count, "no event id twice")
        let contents = second.map { "\($0.type) \(String(decoding: $0.data, as: UTF8.self))" }
        #expect(Set(contents).count == contents.count, "no content twice")
    }

    /// `onewindow replay` prints the plan and moves nothing without --execute; it is refused with
    /// the member's name while the group has a live member, and moves with --execute once stopped.
    @Test("onewindow replay: plan only, refused with a live member named, executed when stopped")
    func replayCommand() async throws {
        let executable = try onewindowExecutable().path
        let bench = try await Bench()
        let bus = "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path
        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-700010"))
        try await bench.pump(engine)
        let topic = "application.restaurant.submitted"
        func committed() async throws -> Int64 {
            try await bench.log.committedOffsets(group: OrchestratorEngine.group, topics: [topic]).values.reduce(0, +)
        }
        #expect(try await committed() == 1)
        let arguments = [
            "replay", "--bus", bus, "--group", OrchestratorEngine.group, "--pattern", "application.*.submitted",
            "--to", "time:2026-03-02T09:00:00+08:00",
        ]
        let planned = try await runProgram(executable, arguments)
        let text = String(decoding: planned.output, as: UTF8.self)
        #expect(planned.status == 0, "\(String(decoding: planned.error, as: UTF8.self))")
        #expect(text.contains("TOPIC"), "\(text)")
        #expect(text.contains("RECORDS-TO-REREAD"), "\(text)")
        #expect(text.contains("total: 1 record(s) to re-read"), "\(text)")
        #expect(text.contains("nothing moved"), "\(text)")
        #expect(try await committed() == 1)

        var configuration = ConsumerConfiguration.group(OrchestratorEngine.group, topics: engine.topics)
        configuration.clientId = "orchestrator-on-desk-7"
        let member = try await bench.log.makeConsumer(configuration)
        _ = try await member.poll(maxRecords: 0, timeout: .milliseconds(50))
        let refused = try await runProgram(executable, arguments + ["--execute"])
        let message = String(decoding: refused.error, as: UTF8.self)
        #expect(refused.status == 75, "\(message)")
        #expect(message.contains("orchestrator-on-desk-7"), "\(message)")
        #expect(try await committed() == 1)
        await member.close()

        // Moving needs an operator's key with the replay grant; the move is audited.
        let stores = [
            "--keys", bench.directory.appendingPathComponent("access.sqlite").path,
            "--audit", bench.directory.appendingPathComponent("audit.sqlite").path,
        ]
        let issued = try await runProgram(
            executable, ["grants", "create", "ops-li-wei", "--kind", "operator", "--grant", "replay", "--key-only", "--store", stores[1], stores[2], stores[3]])
        #expect(issued.status == 0, "\(String(decoding: issued.error, as: UTF8.self))")
        let key = String(decoding: issued.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let keyless = try await runProgram(executable, arguments + ["--execute"] + stores)
        #expect(keyless.status == 77, "\(String(decoding: keyless.error, as: UTF8.self))")
        #expect(try await committed() == 1)

        let executed = try await runProgram(executable, arguments + ["--execute", "--api-key", key] + stores)
        #expect(executed.status == 0, "\(String(decoding: executed.error, as: UTF8.self))")
        #expect(String(decoding: executed.output, as: UTF8.self).contains("1 record(s) to re-read"))
        #expect(try await committed() == 0)
        let audited = try await runProgram(executable, ["audit", "list", "--action", "replay", "--json", stores[2], stores[3]])
        let entry = String(decoding: audited.output, as: UTF8.self)
        #expect(entry.contains("ops-li-wei") && entry.contains(OrchestratorEngine.group), "\(entry)")
        #expect(entry.contains(#""to":0"#), "the moves are in the entry: \(entry)")
    }
}

/// The orchestrator's consumer as a group member that applies and commits each batch (what
/// `runConsumer` does), with a way to wait until it has read up to the end of every partition,
/// and the relay run after each batch.
struct CatchingUp {
    let engine: OrchestratorEngine
    let log: any EventLog
    let consumer: any LogConsumer
    let partitions: Int

    static func start(_ engine: OrchestratorEngine, on log: any EventLog) async throws -> CatchingUp {
        let consumer = try await log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        let partitions = try await log.describeTopics(engine.topics).map(\.partitions.count).reduce(0, +)
        return CatchingUp(engine: engine, log: log, consumer: consumer, partitions: partitions)
    }

    /// Polls, applies, commits and relays until the consumer holds every partition and its
    /// position is at the high-water mark of each (the inputs are published one a request, so the
    /// Kafka test broker's high-water mark is right).
    @discardableResult
    func untilCaughtUp() async throws -> BatchOutcome {
        var total = BatchOutcome()
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(60))
        var behind = "nothing polled"
        while true {
            guard clock.now < deadline else {
                Issue.record("the orchestrator did not catch up within a minute: \(behind)")
                break
            }
            let records = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(100))
            if !records.isEmpty {
                total.add(try await engine.process(records))
                try await consumer.commit(records)
                while try await engine.relayOnce() > 0 {}
                continue
            }
            let positions = try await consumer.position()
            guard positions.count == partitions else {
                behind = "\(positions.count) of \(partitions) partitions assigned"
                continue
            }
            var lagging: [String] = []
            for (partition, position) in positions {
                let high = try await log.watermarks(partition).high
                if high > position { lagging.append("\(partition) at \(position) of \(high)") }
            }
            if lagging.isEmpty { break }
            behind = lagging.joined(separator: ", ")
        }
        while try await engine.relayOnce() > 0 {}
        return total
    }

    func stop() async { await consumer.close() }
}
