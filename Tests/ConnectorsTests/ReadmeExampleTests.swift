import Bus
import Connectors
import DepartmentSystems
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

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Connectors/README.md's complete example, run as it is (only its paths and ports moved to this
/// test's) against the simulated household registry on the embedded log.
@Suite("The README's example connector", .timeLimit(.minutes(3)), .awaitedCleanup)
struct ReadmeExampleTests {
    static let file = repositoryRoot.appendingPathComponent("Connectors/examples/household-registry.yaml")

    @Test func theReadmeShowsTheExampleFileVerbatim() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("Connectors/README.md"), encoding: .utf8)
        let example = try String(contentsOf: Self.file, encoding: .utf8)
        #expect(readme.contains("```yaml\n" + example + "```"), "Connectors/README.md no longer shows examples/household-registry.yaml as it is")
    }

    @Test func theExampleRunsEndToEnd() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let databasePath = bench.path("household-registry.sqlite")
        let department = try DepartmentDatabase.open(.householdRegistry, path: databasePath)
        try await department.seed()
        let generator = try RowGenerator(
            database: department,
            options: .init(tables: ["birth_registrations"], badFraction: 0, updateFraction: 0, seed: 11))
        try await generator.write(30)
        let births = try department.count("birth_registrations")
        #expect(births >= 30)

        // The department's alert endpoint (the example's webhook sink posts there).
        let alertsPort = freePort()
        let received = Mutex<[String]>([])
        let router = Router()
        router.post("/alerts") { request, _ -> Response in
            received.withLock { $0.append(request.headers.first { $0.name.canonicalName == "ce-id" }?.value ?? "?") }
            return Response(status: .noContent)
        }
        let server = RunningServer(
            Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: alertsPort))))
        atEnd { await server.stop() }

        let hookPort = freePort()
        let drop = bench.path("drop")
        let out = bench.path("out")
        var yaml = try String(contentsOf: Self.file, encoding: .utf8)
        for (from, to) in [
            ("name: household-registry-example ", "name: example-\(bench.unique) "),
            ("var/departments/household-registry.sqlite", databasePath),
            ("var/connectors/household-registry-example.sqlite", bench.path("state.sqlite")),
            ("127.0.0.1:8401", "127.0.0.1:\(hookPort)"), ("127.0.0.1:8402", "127.0.0.1:\(alertsPort)"),
            ("var/drop/household-registry", drop), ("var/out/household-registry", out),
        ] {
            #expect(yaml.contains(from), "the example no longer has \(from)")
            yaml = yaml.replacingOccurrences(of: from, with: to)
        }
        let connector = try RunningConnector(yaml, on: bench)
        atEnd { await connector.stop() }

        // Table source: every birth row of the department's database.
        try await bench.eventually("every birth row") {
            try await bench.events(on: "household.birth.registered", idPrefix: "household-registry/birth_registrations/").count
                == births
        }
        // Webhook source: a birth posted in the department's own JSON shape.
        let posted = """
            {"baby": {"idNumber": "440604202501150134", "name": "李子轩", "sex": "1", "born": "20250115"},
             "mother": {"idNumber": "440604199308220247", "name": "陈慧敏"},
             "household": "440604012345", "registeredAt": "2025-01-20 10:15:00"}
            """
        let answer = try await post(
            URL(string: "http://127.0.0.1:\(hookPort)/births")!, Data(posted.utf8), id: "birth-\(bench.unique)")
        #expect(answer.status == 202, "\(answer.body)")
        let birth = try #require(try await bench.events(on: "household.birth.registered", idPrefix: "birth-\(bench.unique)").first)
        let body = try JSONValue.parse(birth.value)
        #expect(body[pointer: "/child/gender"] == .string("male"))
        #expect(body[pointer: "/child/birthDate"] == .string("2025-01-15"))
        #expect(body[pointer: "/registrationOffice"] == .string("佛山市公安局禅城分局祖庙派出所"))

        // File-drop source: a CSV of deaths; the file sink writes the death events to files.
        try FileManager.default.createDirectory(atPath: drop, withIntermediateDirectories: true)
        try "id_no,name,death_date,registered_at\n44060419380412031X,黄桂英,20250106,2025-01-08 09:40:00\n"
            .write(toFile: "\(drop)/deaths-\(bench.unique).csv", atomically: true, encoding: .utf8)
        try await bench.eventually("the death event") {
            try await !bench.events(on: "household.death.registered", idPrefix: "household-registry/deaths-\(bench.unique).csv/").isEmpty
        }
        try await bench.eventually("the death written by the file sink") {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
            return try files.contains { name in
                try String(contentsOfFile: "\(out)/\(name)", encoding: .utf8).contains("deaths-\(bench.unique).csv")
            }
        }

        // Inbox sink: an approval request lands in the department's work queue.
        var request = try #require(catalog.schemas["approval.requested"]?.examples.first)
        let application = "RA-2025-" + String(format: "%06d", Int.random(in: 0..<1_000_000))
        request.set(.string(application), at: "/applicationId")
        request.set(.string("household-registry"), at: "/department")
        let publisher = Publisher(log: bench.log, catalog: catalog, name: "test")
        try await publisher.publish(
            Event(id: "request-\(bench.unique)", type: "approval.requested", source: "/onewindow/orchestrator",
                  subject: application, data: request.serialized(), correlationId: application),
            topic: "approval.household-registry.requested")
        try await bench.eventually("the inbox row") {
            try await department.writer.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM approval_inbox WHERE event_id = ?", arguments: ["request-\(bench.unique)"])
            } == 1
        }

        // Webhook sink: a supervision alert is POSTed to the department.
        let alert = try #require(catalog.schemas["supervision.alert.raised"]?.examples.first)
        try await publisher.publish(
            Event(id: "alert-\(bench.unique)", type: "supervision.alert.raised", source: "/test", subject: nil, data: alert.serialized()))
        try await bench.eventually("the alert delivered") { received.withLock { $0.contains("alert-\(bench.unique)") } }

        #expect(try await bench.events(on: catalog.deadLetterTopic, idPrefix: "").isEmpty, "nothing of the example is refused")
    }
}
