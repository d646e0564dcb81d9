import Audit
import Bus
import CivilTime
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import TestSupport
import Testing

@Suite("audit record: every approval decision once, however often delivered; grants as commands")
struct DecisionRecorderTests {
    func decision(_ application: String, _ department: String, _ decision: String) -> Data {
        JSONValue.object([
            "applicationId": .string(application), "department": .string(department),
            "item": .string("business-licence"), "decision": .string(decision),
            "decidedAt": .string("2026-03-02T10:00:00+08:00"), "decidedBy": .string("officer-7"),
        ]).serialized()
    }

    @Test("decisions read by the consumer group are recorded once; the same records again append nothing")
    func recordedOnce() async throws {
        let bench = try AccessBench()
        // A short session: a consumer stopped by cancellation may not get to leave its group, and the
        // group is moved back below once its member has gone silent.
        let log = try EmbeddedLog(
            path: bench.path("bus.sqlite"), configuration: EmbeddedLogConfiguration(sessionTimeout: .seconds(1)))
        _ = try await log.createTopics(Repo.catalog.topicSpecs)
        let clock = TestWallClock(ChinaTime.parse("2026-03-02T10:00:00+08:00")!)
        let publisher = Publisher(log: log, catalog: Repo.catalog, name: "test-department", clock: clock)
        let topics = DecisionRecorder.topics(in: Repo.catalog)
        #expect(topics.contains("approval.tax.decided") && topics.contains("approval.food-safety.decided"))
        #expect(!topics.contains("approval.tax.requested"))
        for (id, application, department, verdict) in [
            ("d1", "RA-2026-000001", "market-regulation", "approved"), ("d2", "RA-2026-000001", "tax", "approved"),
            ("d3", "RA-2026-000002", "food-safety", "rejected"),
        ] {
            var event = Event(
                id: id, type: "approval.decided", source: "test-department", subject: application, time: clock.now(),
                data: decision(application, department, verdict))
            event.correlationId = application
            _ = try await publisher.publish(event, topic: "approval.\(department).decided")
        }
        let recorder = DecisionRecorder(audit: bench.audit, log: log, topics: topics, clock: clock)
        let running = Task { try await recorder.runConsumer() }
        let deadline = ContinuousClock.now + .seconds(15)
        while try await bench.audit.entries().count < 3, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        running.cancel()
        _ = try? await running.value

        let entries = try await bench.audit.entries()
        #expect(entries.count == 3)
        #expect(Set(entries.compactMap(\.eventId)) == ["d1", "d2", "d3"])
        let rejected = entries.first { $0.eventId == "d3" }
        #expect(rejected?.actor == "food-safety/officer-7" && rejected?.subject == "RA-2026-000002")
        #expect(rejected?.action == .approvalDecided)
        #expect(rejected?.detailsValue[pointer: "/decision"]?.stringValue == "rejected")
        #expect(rejected?.detailsValue[pointer: "/topic"]?.stringValue == "approval.food-safety.decided")

        // Redelivered: the same records (a crash before the commit, a replay) append nothing.
        var records: [LogRecord] = []
        for topic in topics { records += try await readTopic(log, topic) }
        #expect(records.count == 3)
        #expect(try await recorder.process(records).isEmpty)
        // And a group moved back to the start reads them again through the consumer: still three.
        try await Task.sleep(for: .milliseconds(1200))
        try await log.seekGroup(DecisionRecorder.group, topics: topics, to: .earliest)
        #expect(try await log.lag(group: DecisionRecorder.group, topics: topics).map(\.lag).reduce(0, +) == 3)
        let again = Task { try await recorder.runConsumer() }
        let reread = ContinuousClock.now + .seconds(10)
        while try await log.lag(group: DecisionRecorder.group, topics: topics).map(\.lag).reduce(0, +) > 0,
            ContinuousClock.now < reread
        {
            try await Task.sleep(for: .milliseconds(50))
        }
        again.cancel()
        _ = try? await again.value
        #expect(try await bench.audit.entries().count == 3)
        #expect(try await bench.audit.verify().isIntact)
        await log.close()
    }

    @Test("onewindow grants create prints the key once, list shows it without the key, revoke is audited")
    func grantsCommands() async throws {
        let executable = try onewindowExecutable().path
        let bench = try AccessBench()
        let store = bench.path("keys.sqlite")
        let common = ["--store", store, "--audit", bench.audit.path, "--actor", "ops-li-wei"]
        let catalog = ["--catalog", repositoryRoot.appendingPathComponent("Topics").path]
        let created = try await runProgram(
            executable,
            ["grants", "create", "tax-bureau", "--kind", "department", "--subject", "tax", "--grant", "publish:approval.tax.*",
             "--grant", "read:approval.tax.requested"] + common + catalog)
        let output = String(decoding: created.output, as: UTF8.self)
        #expect(created.status == 0, "\(String(decoding: created.error, as: UTF8.self))")
        let key = output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(key.hasPrefix("owk_"), "\(output)")

        let listed = try await runProgram(executable, ["grants", "list", "--store", store])
        let list = String(decoding: listed.output, as: UTF8.self)
        #expect(list.contains("tax-bureau  department tax") && list.contains("publish:approval.tax.*"), "\(list)")
        #expect(!list.contains(key) && !list.contains(String(key.suffix(64))))

        let foreign = try await runProgram(
            executable,
            ["grants", "create", "tax-2", "--kind", "department", "--subject", "tax", "--grant", "publish:approval.*"]
                + common + catalog)
        #expect(foreign.status == 64, "\(String(decoding: foreign.error, as: UTF8.self))")
        let badGrant = try await runProgram(executable, ["grants", "create", "x1", "--kind", "operator", "--grant", "rplay"] + common)
        #expect(badGrant.status == 64)

        let revoked = try await runProgram(executable, ["grants", "revoke", "tax-bureau"] + common)
        #expect(revoked.status == 0, "\(String(decoding: revoked.error, as: UTF8.self))")
        let twice = try await runProgram(executable, ["grants", "revoke", "tax-bureau"] + common)
        #expect(twice.status == 66)

        let entries = try await bench.audit.entries()
        #expect(entries.map(\.action) == [.grantCreated, .grantRevoked])
        #expect(entries.allSatisfy { $0.actor == "ops-li-wei" && $0.subject == "tax-bureau" })
    }
}
