import Bus
import Connectors
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Hummingbird
import Synchronization
import TestCleanup
import Testing
import TestSupport

/// Each sink kind end to end: the bus → the connector → the department's system.
@Suite("Connector sinks", .timeLimit(.minutes(3)), .awaitedCleanup)
struct SinkTests {
    /// An approval request for this test's own application id.
    func request(_ bench: Workbench) throws -> (application: String, event: Event) {
        var body = try #require(catalog.schemas["approval.requested"]?.examples.first)
        let application = "TS-2025-" + String(format: "%06d", Int.random(in: 0..<1_000_000))
        body.set(.string(application), at: "/applicationId")
        body.set(.string("tax"), at: "/department")
        let event = Event(
            id: "request-\(bench.unique)", type: "approval.requested", source: "/onewindow/orchestrator",
            subject: application, data: body.serialized(), correlationId: application)
        return (application, event)
    }

    @Test(arguments: Backend.allCases)
    func inboxReceivesRequestsOnceAndDecisionsArePublished(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let department = try bench.departmentDatabase()
        let connector = try RunningConnector(bench.inboxConnectorYAML("tax-inbox"), on: bench)
        atEnd { await connector.stop() }
        let (application, event) = try request(bench)
        let publisher = Publisher(log: bench.log, catalog: catalog, name: "test")
        try await publisher.publish(event, topic: "approval.tax.requested")
        try await publisher.publish(event, topic: "approval.tax.requested")  // redelivered: still one row
        try await bench.eventually("the inbox row") {
            try await department.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM approval_inbox WHERE application_id = ?", arguments: [application])
            } == 1
        }
        let row = try #require(try await department.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM approval_inbox WHERE application_id = ?", arguments: [application])
        })
        #expect(row["event_id"] == event.id)
        #expect(row["status"] == "pending")
        let item: String? = row["item"]

        try await department.write { db in
            try db.execute(
                sql: """
                    INSERT INTO approval_decisions (application_id, item, decision, reason, decided_at, decided_by, licence_number)
                    VALUES (?, ?, 'approved', NULL, '2025-03-03T10:00:00+08:00', 'officer-017', NULL)
                    """, arguments: [application, item])
        }
        // This department's decisions, by the application's key before any de-duplication by id:
        // the id comes from the row's number in a new table (`tax/approval_decisions/1/…`), so on a
        // broker that other runs wrote to, an earlier run's decision holds the same id, and keeping
        // the first record of each id kept that one instead of this run's.
        func decisions() async throws -> [LogRecord] {
            try await bench.events(on: "approval.tax.decided", idPrefix: "tax/approval_decisions/", deduplicate: false)
                .filter { $0.keyString == application }
        }
        try await bench.eventually("the decision") { try await !decisions().isEmpty }
        let decided = try #require(try await decisions().first)
        let decision = try CloudEventsBinding.event(from: decided)
        #expect(decision.type == "approval.decided")
        #expect(decision.causationId == event.id)
        #expect(decision.correlationId == application)
        let body = try JSONValue.parse(decision.data)
        #expect(body[pointer: "/decision"] == .string("approved"))
        #expect(try await bench.events(on: catalog.deadLetterTopic, idPrefix: "tax/approval_decisions/").isEmpty)
    }

    /// Issue 12: a decision whose text is not UTF-8 was read with U+FFFD in place of its bytes and
    /// published as the department's decision. It is dead-lettered once, with the row's bytes and a
    /// reason naming the decision, the field, the column and the byte; the decisions around it are
    /// published once, in order, and the sink reads on past it.
    @Test func aDecisionWhoseTextIsNotUTF8IsDeadLetteredOnceAndTheOthersArePublishedInOrder() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let department = try bench.departmentDatabase()
        // One application's decisions, so that they share a partition and their order shows.
        let bad = Data("Missing ".utf8) + Data([0xFF]) + Data("docs".utf8)
        func insert(_ reason: String) async throws {
            try await department.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO approval_decisions (application_id, item, decision, reason, decided_at, decided_by)
                        VALUES ('TS-2025-000101', 'tax-clearance',
                                'rejected', \(reason), '2025-03-03T10:00:00+08:00', 'officer-017')
                        """)
            }
        }
        try await insert("'Missing documents'")
        try await insert("CAST(X'\(bad.map { String(format: "%02X", $0) }.joined())' AS TEXT)")
        try await insert("'Unpaid tax'")
        let connector = try RunningConnector(bench.inboxConnectorYAML("tax-inbox", interval: "50ms"), on: bench)
        atEnd { await connector.stop() }
        let prefix = "tax/approval_decisions/"
        try await bench.eventually("2 decisions and 1 dead letter", seconds: 10) {
            let published = try await bench.events(on: "approval.tax.decided", idPrefix: prefix).count
            let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: prefix).count
            return published + dead >= 3
        }
        try await Task.sleep(for: .milliseconds(300))  // several polls: the bad row is not read again
        try await insert("'Late filing'")
        try await bench.eventually("the decision after it", seconds: 10) {
            try await bench.events(on: "approval.tax.decided", idPrefix: prefix, deduplicate: false).count >= 3
        }
        await connector.stop()

        let published = try await bench.events(on: "approval.tax.decided", idPrefix: prefix, deduplicate: false)
        #expect(published.compactMap { $0.header("ce_id") } == ["\(prefix)1", "\(prefix)3", "\(prefix)4"])
        let reasons = try published.map { try JSONValue.parse(CloudEventsBinding.event(from: $0).data)[pointer: "/reason"] }
        #expect(reasons == [.string("Missing documents"), .string("Unpaid tax"), .string("Late filing")])
        let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: prefix, deduplicate: false)
        #expect(dead.compactMap { $0.header("ce_id") } == ["\(prefix)2"], "dead-lettered once")
        let letter = try #require(dead.first)
        #expect(letter.header("dl_code") == "mapping-failed")
        let reason = letter.header("dl_reason") ?? ""
        #expect(reason.contains("decision 2 of approval_decisions: reason (from column reason): utf-8"), "\(reason)")
        #expect(reason.contains("the first bad byte 0xff at offset 8"), "\(reason)")
        let kept = try JSONValue.parse(letter.value)
        #expect(kept[pointer: "/reason"] == .object(["base64": .string(bad.base64EncodedString())]), "the bytes as they are")
        #expect(kept[pointer: "/application_id"] == .string("TS-2025-000101"))
    }

    @Test(arguments: Backend.allCases)
    func webhookSinkRetriesThenDeliversAndDeadLettersWhatIsRefused(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let port = freePort()
        // The department's endpoint is a real webhook source of another connector, started late:
        // the first attempts find nothing listening.
        let sender = """
            name: sender-\(bench.unique)
            department: onewindow
            state: \(bench.path("sender.sqlite"))
            sinks:
              - kind: webhook
                topics: [notification.sms.requested]
                url: http://127.0.0.1:\(port)/sms
                retries: 8
                backoff: 100ms
            """
        let receiver = """
            name: receiver-\(bench.unique)
            department: onewindow
            sources:
              - kind: webhook
                listen: 127.0.0.1:\(port)
                path: /sms
                type: supervision.alert.raised
            """
        let sending = try RunningConnector(sender, on: bench)
        atEnd { await sending.stop() }
        let example = try #require(catalog.schemas["notification.sms.requested"]?.examples.first)
        let publisher = Publisher(log: bench.log, catalog: catalog, name: "test")
        // The receiver expects supervision alerts: an SMS body is refused with 400 → dead letter.
        try await publisher.publish(
            Event(id: "sms-\(bench.unique)", type: "notification.sms.requested", source: "/test", subject: nil, data: example.serialized()))
        try await Task.sleep(for: .milliseconds(400))
        let receiving = try RunningConnector(receiver, on: bench)
        atEnd { await receiving.stop() }
        try await bench.eventually("the refused delivery") {
            try await !bench.events(on: catalog.deadLetterTopic, idPrefix: "sms-\(bench.unique)", deduplicate: false).filter {
                $0.header("dl_code") == "undeliverable"
            }.isEmpty
        }
        // Both sides dead-letter it under the same event id: the receiver (schema) and the sender.
        let dead = try #require(try await bench.events(on: catalog.deadLetterTopic, idPrefix: "sms-\(bench.unique)", deduplicate: false).first {
            $0.header("dl_code") == "undeliverable"
        })
        #expect(dead.header("dl_reason")?.contains("HTTP 400") == true)
        #expect(dead.value == example.serialized(), "the original body is kept")

        // An alert forwarded the same way arrives (202), keeping its id through ce-id.
        let alert = try #require(catalog.schemas["supervision.alert.raised"]?.examples.first)
        let forward = """
            name: forward-\(bench.unique)
            department: onewindow
            state: \(bench.path("forward.sqlite"))
            sinks:
              - kind: webhook
                topics: [supervision.alert.raised]
                url: http://127.0.0.1:\(port)/sms
                backoff: 100ms
            """
        let forwarding = try RunningConnector(forward, on: bench)
        atEnd { await forwarding.stop() }
        try await publisher.publish(
            Event(id: "alert-\(bench.unique)", type: "supervision.alert.raised", source: "/test", subject: nil, data: alert.serialized()))
        try await bench.eventually("the delivered alert") { forwarding.connector.stats.snapshot.delivered >= 1 }
        #expect(receiving.connector.stats.snapshot.published >= 1)
    }

    @Test(arguments: Backend.allCases)
    func tableAndFileSinksWriteEachEventOnce(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let department = try bench.departmentDatabase()
        try await department.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE sms_outbox (event_id TEXT PRIMARY KEY, mobile TEXT, template TEXT, text TEXT,
                    application_id TEXT, queued_at TEXT)
                    """)
        }
        let example = try #require(catalog.schemas["notification.sms.requested"]?.examples.first)
        let mobilePointer = example[pointer: "/mobile"] != nil ? "/mobile" : "/recipient/mobile"
        let yaml = """
            name: sms-\(bench.unique)
            department: onewindow
            database: \(bench.path("department.sqlite"))
            state: \(bench.path("state.sqlite"))
            sinks:
              - kind: table
                topics: [notification.sms.requested]
                table: sms_outbox
                columns: {mobile: \(mobilePointer), template: /template, application_id: /applicationId, queued_at: $time}
              - kind: file
                topics: [notification.sms.requested]
                directory: \(bench.path("out"))
            """
        let connector = try RunningConnector(yaml, on: bench)
        atEnd { await connector.stop() }
        let publisher = Publisher(log: bench.log, catalog: catalog, name: "test")
        let event = Event(id: "sms-\(bench.unique)", type: "notification.sms.requested", source: "/test", subject: nil, data: example.serialized())
        try await publisher.publish(event)
        try await publisher.publish(event)
        // The topic is shared with other tests on the Kafka broker: count only this test's event.
        func outboxRows() async throws -> Int {
            try await department.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sms_outbox WHERE event_id = ?", arguments: [event.id]) ?? 0
            }
        }
        func fileLines() throws -> [JSONValue] {
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: bench.path("out")) else { return [] }
            return try files.flatMap { file in
                try String(contentsOfFile: bench.path("out/\(file)"), encoding: .utf8).split(separator: "\n").map {
                    try JSONValue.parse(Data($0.utf8))
                }
            }.filter { $0[pointer: "/id"] == .string(event.id) }
        }
        try await bench.eventually("the outbox row and the file lines") {
            try await outboxRows() == 1 && fileLines().count == 2
        }
        let mobile = try await department.read { db in
            try String.fetchOne(db, sql: "SELECT mobile FROM sms_outbox WHERE event_id = ?", arguments: [event.id])
        }
        #expect(mobile == example[pointer: mobilePointer]?.stringValue)
        #expect(try await outboxRows() == 1, "a redelivered event is one row")
        let files = try FileManager.default.contentsOfDirectory(atPath: bench.path("out"))
        #expect(files.allSatisfy { $0.hasPrefix("notification.sms.requested-") && $0.hasSuffix(".jsonl") })
        #expect(try fileLines().count == 2, "both deliveries are written; the id tells the repeat")
    }

    @Test func aWebhookThatKeepsFailingDeadLettersAfterTheLastTryWithTheCount() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        // The department's endpoint: a real HTTP server that is always overloaded.
        let port = freePort()
        let seen = Mutex<[String]>([])
        let router = Router()
        router.post("/busy") { request, _ -> Response in
            let id = request.headers.first { $0.name.canonicalName == "ce-id" }?.value ?? "?"
            seen.withLock { $0.append(id) }
            return Response(status: .serviceUnavailable)
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        let server = RunningServer(app)
        atEnd { await server.stop() }
        let yaml = """
            name: busy-\(bench.unique)
            department: onewindow
            state: \(bench.path("state.sqlite"))
            sinks:
              - kind: webhook
                topics: [notification.sms.requested]
                url: http://127.0.0.1:\(port)/busy
                retries: 3
                backoff: 50ms
            """
        let connector = try RunningConnector(yaml, on: bench)
        atEnd { await connector.stop() }
        let example = try #require(catalog.schemas["notification.sms.requested"]?.examples.first)
        let publisher = Publisher(log: bench.log, catalog: catalog, name: "test")
        let id = "sms-\(bench.unique)"
        try await publisher.publish(Event(id: id, type: "notification.sms.requested", source: "/test", subject: nil, data: example.serialized()))
        try await bench.eventually("the dead letter") {
            try await !bench.events(on: catalog.deadLetterTopic, idPrefix: id).isEmpty
        }
        let dead = try #require(try await bench.events(on: catalog.deadLetterTopic, idPrefix: id).first)
        #expect(dead.header("dl_code") == "undeliverable")
        let reason = dead.header("dl_reason") ?? ""
        #expect(reason.contains("4 attempts to POST to http://127.0.0.1:\(port)/busy failed"), "\(reason)")
        #expect(reason.contains("HTTP 503"), "\(reason)")
        #expect(dead.value == example.serialized(), "the original body is kept")
        #expect(seen.withLock { $0 } == Array(repeating: id, count: 4), "the first try and 3 retries, each with the event's id")
        #expect(connector.connector.stats.snapshot.delivered == 0)
        #expect(connector.connector.stats.snapshot.deadLettered == 1)
    }

    @Test func aRowTheDepartmentTableRefusesIsDeadLetteredAndTheNextOnesGoOn() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let department = try bench.departmentDatabase()
        try await department.write { db in
            try db.execute(
                sql: "CREATE TABLE sms_outbox (event_id TEXT PRIMARY KEY, notification_id TEXT NOT NULL UNIQUE, mobile TEXT)")
        }
        let yaml = """
            name: sms-\(bench.unique)
            department: onewindow
            database: \(bench.path("department.sqlite"))
            state: \(bench.path("state.sqlite"))
            sinks:
              - kind: table
                topics: [notification.sms.requested]
                table: sms_outbox
                columns: {notification_id: /notificationId, mobile: /mobile}
              - kind: table
                topics: [notification.sms.requested]
                table: sms_outbox
                columns: {notification_id: /notificationId, phone_number: /mobile}
            """
        let connector = try RunningConnector(yaml, on: bench)
        atEnd { await connector.stop() }
        let example = try #require(catalog.schemas["notification.sms.requested"]?.examples.first)
        let publisher = Publisher(log: bench.log, catalog: catalog, name: "test")
        // a and b are two events for one notification: the table's UNIQUE refuses b, for ever.
        for (event, notification) in [("a", "N-1"), ("b", "N-1"), ("c", "N-2")] {
            var body = example
            body.set(.string("\(notification)-\(bench.unique)"), at: "/notificationId")
            try await publisher.publish(
                Event(id: "\(event)-\(bench.unique)", type: "notification.sms.requested", source: "/test", subject: nil, data: body.serialized()))
        }
        // The first sink: b dead-lettered, c delivered after it. The second names a column the table
        // lacks: each event dead-lettered, none blocks the next.
        try await bench.eventually("c delivered and 4 dead letters") {
            let rows = try await department.read { db in try String.fetchAll(db, sql: "SELECT event_id FROM sms_outbox ORDER BY event_id") }
            let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: "", deduplicate: false).filter {
                $0.header("ce_id")?.hasSuffix(bench.unique) == true
            }
            return rows == ["a-\(bench.unique)", "c-\(bench.unique)"] && dead.count == 4
        }
        let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: "", deduplicate: false).filter {
            $0.header("ce_id")?.hasSuffix(bench.unique) == true
        }
        let unique = dead.filter { $0.header("dl_reason")?.contains("UNIQUE constraint failed") == true }
        #expect(unique.compactMap { $0.header("ce_id") } == ["b-\(bench.unique)"])
        let missing = dead.filter { $0.header("dl_reason")?.contains("phone_number") == true }
        #expect(Set(missing.compactMap { $0.header("ce_id") }) == Set(["a", "b", "c"].map { "\($0)-\(bench.unique)" }))
        #expect(dead.allSatisfy { $0.header("dl_code") == "undeliverable" })
        #expect(connector.connector.stats.snapshot.delivered == 2)
    }
}
