import Bus
import Connectors
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Retrying
import TestCleanup
import Testing
import TestSupport

/// What a connector does about each kind of error: retry, dead-letter, poll again, or stop.
@Suite("Connector error handling", .timeLimit(.minutes(3)), .awaitedCleanup)
struct ErrorHandlingTests {
    static let type = "tax.payment.received"

    @Test func errorsAreClassifiedInOnePlace() {
        #expect(ErrorDisposition.of(LogError(.recordTooLarge, "too big")) == .deadLetter)
        #expect(ErrorDisposition.of(LogError(.groupBusy, "rebalanced", isRetriable: true)) == .repoll)
        #expect(ErrorDisposition.of(LogError(.closed, "closed")) == .fatal)
        #expect(ErrorDisposition.of(LogError(.closed, "purged", isRetriable: true)) == .fatal)
        #expect(ErrorDisposition.of(LogError(.authorizationFailed, "no")) == .fatal)
        #expect(ErrorDisposition.of(LogError(.brokerUnreachable, "down", isRetriable: true)) == .retry)
        #expect(ErrorDisposition.of(LogError(.timedOut, "slow")) == .retry)
        #expect(ErrorDisposition.of(LogError(.storage, "busy", isRetriable: true)) == .retry)
        #expect(ErrorDisposition.of(LogError(.storage, "corrupt")) == .fatal)
        #expect(ErrorDisposition.of(LogError(.backend, "odd")) == .fatal)
        #expect(ErrorDisposition.of(ValidationFailure(.schemaViolation, "bad")) == .deadLetter)
        #expect(ErrorDisposition.of(DatabaseError(resultCode: .SQLITE_CONSTRAINT)) == .deadLetter)
        #expect(ErrorDisposition.of(DatabaseError(resultCode: .SQLITE_BUSY)) == .retry)
        #expect(ErrorDisposition.of(DatabaseError(resultCode: .SQLITE_CORRUPT)) == .fatal)
        #expect(ErrorDisposition.of(URLError(.timedOut)) == .retry)
        let failure = ConnectorFailure(part: "p", action: "a", underlying: LogError(.closed, "closed"))
        #expect(ErrorDisposition.of(failure) == .fatal)
    }

    @Test func sha256MatchesTheStandardsVectors() {
        #expect(DeadLetter.sha256Hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(DeadLetter.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            DeadLetter.sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            DeadLetter.sha256Hex([UInt8](repeating: 0x61, count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// A topic missing from the bus is an error that can pass (an operator creates it): the table
    /// source retries, counting each retry, and publishes once the topic is there.
    @Test func aMissingTopicIsRetriedAndCountedUntilItIsCreated() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let bus = try EmbeddedLog(path: bench.path("partial-bus.sqlite"))
        atEnd { await bus.close() }
        try await bus.createTopics(catalog.topicSpecs.filter { $0.name != Self.type })
        let table = try ExampleTable(type: Self.type, table: "payments", catalog: catalog)
        let department = try bench.departmentDatabase()
        try await department.write { db in
            try db.execute(sql: table.createSQL)
            try table.insert(db)
        }
        let connector = try RunningConnector(
            bench.tableConnectorYAML("missing", table: table, type: Self.type), on: bench, log: bus)
        atEnd { await connector.stop() }
        try await bench.eventually("a retry counted", seconds: 20) { connector.connector.stats.snapshot.retries >= 2 }
        #expect(connector.connector.stats.snapshot.published == 0)
        try await bus.createTopics(catalog.topicSpecs.filter { $0.name == Self.type })
        try await bench.eventually("the row published once the topic exists", seconds: 30) {
            connector.connector.stats.snapshot.published == 1
        }
        await connector.stop()
    }

    /// A row whose event is larger than the bus takes used to block its table for good (the batch
    /// was retried forever). Now it goes to the dead-letter topic cut short, with its size, its
    /// digest and the reason, and the rows after it are published.
    @Test func aRowTooLargeForTheBusIsDeadLetteredCutShortAndTheTableGoesOn() async throws {
        let limit = 4096
        let bench = try await Workbench(.embedded, maxRecordBytes: limit)
        atEnd { await bench.tearDown() }
        let table = try ExampleTable(type: Self.type, table: "payments", catalog: catalog)
        let department = try bench.departmentDatabase()
        let huge = String(repeating: "9", count: 20_000)
        try await department.write { db in
            try db.execute(sql: table.createSQL)
            try table.insert(db)
            try table.insert(db, overrides: ["voucherNumber": huge.databaseValue])
            try table.insert(db)
        }
        let connector = try RunningConnector(
            bench.tableConnectorYAML("oversized", table: table, type: Self.type, source: ["batch: 10"]), on: bench)
        atEnd { await connector.stop() }
        try await bench.eventually("rows 1 and 3 published", seconds: 30) {
            try await bench.events(on: Self.type, idPrefix: "tax/payments/").count == 2
        }
        await connector.stop()
        let published = try await bench.events(on: Self.type, idPrefix: "tax/payments/").compactMap { $0.header("ce_id") }
        #expect(Set(published) == ["tax/payments/1/1", "tax/payments/3/1"])

        let letters = try await readTopic(bench.log, catalog.deadLetterTopic).filter {
            $0.header("ce_id") == "tax/payments/2/1"
        }
        #expect(letters.count == 1, "the row too large is dead-lettered once")
        let letter = try #require(letters.first)
        var body = table.example
        body.set(.string(huge), at: "/voucherNumber")
        let original = body.serialized()
        #expect(letter.header(DeadLetter.code) == ValidationFailure.Code.recordTooLarge.rawValue)
        #expect(letter.header(DeadLetter.originalSize) == String(original.count))
        #expect(letter.header(DeadLetter.originalSHA256) == DeadLetter.sha256Hex(original))
        #expect(letter.header(DeadLetter.truncated) == "true")
        #expect(letter.header(DeadLetter.originalTopic) == Self.type)
        #expect(letter.header(DeadLetter.reason)?.contains("\(original.count) bytes") == true)
        #expect(letter.value.count <= limit && letter.value.count > 0)
        #expect(letter.value == original.prefix(letter.value.count), "the dead letter keeps the first bytes")
        #expect(connector.connector.stats.snapshot.deadLettered == 1)
    }

    /// Two instances of one inbox sink in one consumer group. The department's database is held
    /// locked while the first instance delivers a batch and the second joins: the first one's commit
    /// is then refused (`groupBusy`, the group rebalanced). It used to retry that commit for ever,
    /// never polling again, so the rebalance never finished for it. Now it polls again, and both
    /// instances deliver what is published afterwards — each request once in the inbox.
    @Test(arguments: Backend.allCases)
    func twoSinkInstancesInOneGroupBothGoOnAfterARebalance(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let department = try bench.departmentDatabase()
        func yaml(_ instance: String) -> String { bench.inboxConnectorYAML("inbox", state: "state-\(instance).sqlite") }
        let publisher = Publisher(log: bench.log, catalog: catalog, name: "test")
        var example = try #require(catalog.schemas["approval.requested"]?.examples.first)
        example.set(.string("tax"), at: "/department")
        func publish(_ range: ClosedRange<Int>) async throws {
            for number in range {
                var body = example
                body.set(.string("TS-2025-" + String(format: "%06d", number)), at: "/applicationId")
                let event = Event(
                    id: "request-\(bench.unique)-\(number)", type: "approval.requested", source: "/onewindow/orchestrator",
                    subject: nil, data: body.serialized())
                try await publisher.publish(event, topic: "approval.tax.requested")
            }
        }
        // On Kafka the topic is shared with other tests: count this test's requests only.
        let mine = "request-\(bench.unique)-%"
        func inboxRows() async throws -> Int {
            try await department.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM approval_inbox WHERE event_id LIKE ?", arguments: [mine]) ?? 0
            }
        }

        let first = try RunningConnector(yaml("a"), on: bench)

        atEnd { await first.stop() }
        try await publish(1...5)
        try await bench.eventually("the first instance delivering", seconds: 60) { try await inboxRows() == 5 }

        // Lock the department's database (a real write transaction held open), publish a batch for
        // the first instance to block on, and let the second instance join meanwhile.
        let locked = Task.detached {
            try await department.write { db in
                try db.execute(sql: "UPDATE approval_inbox SET status = status")
                Thread.sleep(forTimeInterval: backend == .kafka ? 8 : 4)
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        try await publish(6...40)
        try await Task.sleep(for: .milliseconds(1500))
        let second = try RunningConnector(yaml("b"), on: bench)
        atEnd { await second.stop() }
        try await locked.value
        try await bench.eventually("the blocked batch delivered", seconds: 60) { try await inboxRows() == 40 }

        let (firstBefore, secondBefore) = (first.connector.stats.snapshot.delivered, second.connector.stats.snapshot.delivered)
        try await publish(41...140)
        try await bench.eventually("everything delivered", seconds: 90) { try await inboxRows() == 140 }
        try await bench.eventually("both instances delivering", seconds: 60) {
            first.connector.stats.snapshot.delivered > firstBefore && second.connector.stats.snapshot.delivered > secondBefore
        }
        let distinct = try await department.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT event_id) FROM approval_inbox WHERE event_id LIKE ?", arguments: [mine]) ?? 0
        }
        #expect(distinct == 140, "each request once in the inbox")
        await first.stop()
        await second.stop()
    }

    /// A connector whose bus is closed under it stops with a `ConnectorFailure` instead of retrying
    /// the closed client for ever.
    @Test func aClosedEmbeddedLogStopsTheConnector() async throws {
        try await closedBusStopsTheConnector(.embedded)
    }

    @Test func aClosedKafkaLogStopsTheConnector() async throws {
        try await closedBusStopsTheConnector(.kafka)
    }

    /// A webhook source whose port another process holds stops the connector with the bind error,
    /// and says it listens only once it does. It ran on, deaf, until it was stopped: the wait for
    /// the server's failures outlived the server that had failed to start.
    @Test func aWebhookSourceWhosePortIsTakenStopsTheConnector() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let (holder, port) = try listeningSocket()
        defer { close(holder) }
        let connector = try RunningConnector(bench.webhookConnectorYAML("taken", port: port, type: Self.type), on: bench)
        atEnd { await connector.stop() }
        let error = try await connector.ended(within: 30)
        let failure = try #require(
            error as? ConnectorFailure, "the connector stops with a ConnectorFailure, not \(String(describing: error))")
        #expect(failure.part == "webhook:/payments")
        #expect(failure.action == "serving http://127.0.0.1:\(port)/payments")
        #expect("\(failure)".contains("Address already in use"), "\(failure)")
    }

    func closedBusStopsTheConnector(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let table = try ExampleTable(type: Self.type, table: "payments_\(bench.unique)", catalog: catalog)
        let department = try bench.departmentDatabase()
        try await department.write { db in
            try db.execute(sql: table.createSQL)
            try table.insert(db)
        }
        let connector = try RunningConnector(
            bench.tableConnectorYAML("closed", table: table, type: Self.type), on: bench)
        atEnd { await connector.stop() }
        try await bench.eventually("the first row published", seconds: 30) {
            try await !bench.events(on: Self.type, idPrefix: "tax/\(table.table)/").isEmpty
        }
        await bench.log.close()
        try await department.write { db in try table.insert(db) }
        let error = try await connector.ended(within: 30)
        let failure = try #require(
            error as? ConnectorFailure, "the connector stops with a ConnectorFailure, not \(String(describing: error))")
        #expect((failure.underlying as? LogError)?.code == .closed)
        #expect(failure.part == "table:\(table.table)")
    }
}
