import CivilTime
import EventModel
import EventSchemas
import Foundation
import GRDB
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

/// A TEST FIXTURE standing in for the shared data view until the view conforms to
/// `SharedFactLookup` (at merge): facts in a real SQLite file, and every read recorded in a table
/// the test inspects. It is not the view and implements none of its ingestion.
final class SQLiteFactsFixture: SharedFactLookup {
    let queue: DatabaseQueue

    init(path: String) throws {
        queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE facts (kind TEXT, subject TEXT, event_id TEXT, topic TEXT, time REAL, body TEXT,
                                        PRIMARY KEY (kind, subject));
                    CREATE TABLE reads (seq INTEGER PRIMARY KEY, kind TEXT, subject TEXT, reader TEXT, reason TEXT);
                    """)
        }
    }

    func add(kind: String, subject: String, eventId: String, topic: String) throws {
        try queue.write { db in
            try db.execute(
                sql: "INSERT INTO facts VALUES (?, ?, ?, ?, ?, '{}')",
                arguments: [kind, subject, eventId, topic, Date().timeIntervalSince1970])
        }
    }

    func latestFact(kind: String, subject: String, reader: String, reason: String) async throws -> SharedFactRecord? {
        try await queue.write { db in
            try db.execute(
                sql: "INSERT INTO reads (kind, subject, reader, reason) VALUES (?, ?, ?, ?)",
                arguments: [kind, subject, reader, reason])
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM facts WHERE kind = ? AND subject = ?", arguments: [kind, subject])
            else { return nil }
            return SharedFactRecord(
                kind: row["kind"], subject: row["subject"], eventId: row["event_id"], topic: row["topic"],
                time: Date(timeIntervalSince1970: row["time"]), data: .object([:]))
        }
    }

    /// The reads, in order: (kind, subject, reader, reason).
    func reads() throws -> [[String]] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT kind, subject, reader, reason FROM reads ORDER BY seq").map {
                [$0["kind"], $0["subject"], $0["reader"], $0["reason"]]
            }
        }
    }
}

@Suite("Zero-document materials through the engine: facts looked up before the transaction")
struct SharedFactsEngineTests {
    static let graduateId = "430102200206100467"
    static let employer = "91440604MA51R7T3X1"

    static func graduate(_ id: String) -> JSONValue {
        .object([
            "applicationId": .string(id), "submittedAt": .string(ChinaTime.rfc3339(Repo.at("2026-03-02", 9, 20))),
            "applicant": .object(["name": "周雨桐", "residentId": .string(graduateId), "mobile": "15874001234"]),
            "university": "中南大学", "graduationDate": "2025-06-20", "degree": "bachelor",
            "employerCreditCode": .string(employer), "toAddress": "佛山市禅城区季华五路22号人才公寓5栋803",
            "materials": .array([]),
        ])
    }

    @Test("A graduate whose facts the view holds submits nothing; one without them is asked for exactly those")
    func graduatesThroughTheEngine() async throws {
        let bench = try await Bench()
        let facts = try SQLiteFactsFixture(path: bench.directory.appendingPathComponent("facts.sqlite").path)
        try facts.add(
            kind: "household-record", subject: Self.graduateId, eventId: "hh-0001", topic: "household.member.changed")
        try facts.add(
            kind: "social-insurance-enrolment", subject: Self.graduateId, eventId: "si-0001",
            topic: "socialsecurity.enrolment.registered")
        try facts.add(
            kind: "business-licence", subject: Self.employer, eventId: "mk-0001", topic: "market.business.registered")
        let engine = try OrchestratorEngine(
            store: OrchestratorStore(path: bench.storePath), rules: Repo.rules, calendar: Repo.calendar, log: bench.log,
            catalog: Repo.catalog, clock: bench.clock, sharedFacts: facts)
        try await bench.submit(Self.graduate("GR-2026-000011"), type: "application.graduate-registration.submitted")
        try await bench.pump(engine)

        let requests = try await bench.requests()
        #expect(requests.count == 1)
        let materials = try #require(requests.first?.body[pointer: "/materials"]?.arrayValue)
        #expect(materials.count == 4)
        #expect(materials.allSatisfy { $0[pointer: "/source"] == "shared-data" })
        #expect(
            Set(materials.compactMap { $0[pointer: "/eventId"]?.stringValue }) == ["hh-0001", "si-0001", "mk-0001"])
        // Each fact read once, by the orchestrator, for the application.
        #expect(
            try facts.reads() == [
                ["household-record", Self.graduateId, "orchestrator", "GR-2026-000011"],
                ["social-insurance-enrolment", Self.graduateId, "orchestrator", "GR-2026-000011"],
                ["business-licence", Self.employer, "orchestrator", "GR-2026-000011"],
            ])

        // A redelivery of the application reads nothing again: the case has its facts.
        try await engine.process(try await readTopic(bench.log, "application.graduate-registration.submitted"))
        #expect(try facts.reads().count == 3)

        // The view loses the enrolment (another person's application): asked for exactly it.
        try await facts.queue.write {
            try $0.execute(sql: "DELETE FROM facts WHERE kind = 'social-insurance-enrolment'")
        }
        try await bench.submit(Self.graduate("GR-2026-000012"), type: "application.graduate-registration.submitted")
        try await bench.pump(engine)
        #expect(try await bench.requests().count == 1, "the second application waits for its document")
        let (waiting, _) = try #require(try engine.store.findCase("GR-2026-000012"))
        #expect(waiting.step("household-entry")?.status == .awaitingDocuments)
        let received = try #require(
            try await bench.events("notification.sms.requested").first { $0.id == "GR-2026-000012/sms/received" })
        #expect(received.body[pointer: "/parameters/missingDocuments"] == "社会保险参保证明")

        // The first completes, reporting the four documents not brought.
        var answered = Set<String>()
        #expect(try await bench.approveAll(answered: &answered) == 1)
        try await bench.pump(engine)
        let (done, _) = try #require(try engine.store.findCase("GR-2026-000011"))
        #expect(done.status == .completed)
        #expect(done.completion?.documents == DocumentCount(serial: 4, submitted: 0))
        let progress = try await bench.events("application.progress.updated").last {
            $0.body[pointer: "/applicationId"] == "GR-2026-000011"
        }
        #expect(progress?.body[pointer: "/documents/notBrought"] == .integer(4))
        #expect(try await bench.events(Repo.catalog.deadLetterTopic).isEmpty)

        // onewindow status shows both: the count, and what the other waits for.
        func status(_ id: String) async throws -> String {
            let result = try await runProgram(
                try onewindowExecutable().path,
                [
                    "status", id, "--store", bench.storePath, "--catalog",
                    repositoryRoot.appendingPathComponent("Topics").path, "--rules", Repo.rulesDirectory.path,
                ])
            #expect(result.status == 0, "\(String(decoding: result.error, as: UTF8.self))")
            return String(decoding: result.output, as: UTF8.self)
        }
        let completed = try await status("GR-2026-000011")
        #expect(completed.contains("居民身份证 (household.member.changed hh-0001)"), "\(completed)")
        #expect(
            completed.contains("documents: 0 handed in, 4 if serial: 4 the applicant did not have to bring"),
            "\(completed)")
        let held = try await status("GR-2026-000012")
        #expect(held.contains("household-entry  awaiting-documents"), "\(held)")
        #expect(held.contains("waits for the applicant's documents: 社会保险参保证明\n"), "\(held)")
    }
}
