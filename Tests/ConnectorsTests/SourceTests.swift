import Bus
import Connectors
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import TestCleanup
import Testing
import TestSupport

/// Each source kind end to end: a department's table, webhook or file → the connector → the bus.
@Suite("Connector sources", .timeLimit(.minutes(3)), .awaitedCleanup)
struct SourceTests {
    static let type = "tax.payment.received"

    @Test(arguments: Backend.allCases)
    func tableRowsArePublishedOnceAndBadRowsDeadLettered(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let table = try ExampleTable(type: Self.type, table: "payments_\(bench.unique)", catalog: catalog)
        let department = try bench.departmentDatabase()
        let required = try table.requiredScalarColumn()
        try await department.write { db in
            try db.execute(sql: table.createSQL)
            for _ in 0..<20 { try table.insert(db) }
            try table.insert(db, overrides: [required.name: .null])  // a missing required column
        }
        let yaml = """
            name: tax-\(bench.unique)
            department: tax
            database: \(bench.path("department.sqlite"))
            state: \(bench.path("state.sqlite"))
            sources:
              - kind: table
                table: \(table.table)
                cursor: change_seq
                version: version
                type: \(Self.type)
                interval: 100ms
                batch: 7
                mapping:
            \(table.mappingYAML)
            """
        let prefix = "tax/\(table.table)/"
        var connector = try RunningConnector(yaml, on: bench)
        try await bench.eventually("20 events") { try await bench.events(on: Self.type, idPrefix: prefix).count == 20 }
        try await bench.eventually("1 dead letter") {
            try await bench.events(on: catalog.deadLetterTopic, idPrefix: prefix).count == 1
        }
        // An update is a new version of the row: a new event.
        try await department.write { db in try table.touch(db, id: 3) }
        try await bench.eventually("the update") { try await bench.events(on: Self.type, idPrefix: prefix).count == 21 }
        await connector.stop()

        let events = try await bench.events(on: Self.type, idPrefix: prefix)
        let ids = Set(events.compactMap { $0.header("ce_id") })
        #expect(ids.contains("\(prefix)1/1") && ids.contains("\(prefix)20/1") && ids.contains("\(prefix)3/2"))
        for record in events {
            #expect(try JSONValue.parse(record.value) == table.example, "the mapping rebuilds the body")
            #expect(record.header("ce_source") == "/departments/tax")
        }
        let dead = try #require(try await bench.events(on: catalog.deadLetterTopic, idPrefix: prefix).first)
        #expect(dead.header("dl_code") == "schema-violation")
        #expect(dead.header("dl_reason")?.contains("/\(required.pointer.dropFirst())") == true)
        #expect(dead.header("dl_original_topic") == Self.type)

        // A restart reads from the saved cursor: nothing is published again.
        connector = try RunningConnector(yaml, on: bench)
        try await department.write { db in try table.insert(db) }
        try await bench.eventually("only the new row") { try await bench.events(on: Self.type, idPrefix: prefix).count == 22 }
        try await Task.sleep(for: .milliseconds(500))
        await connector.stop()
        let all = try await bench.events(on: Self.type, idPrefix: prefix)
        #expect(all.count == 22)
        let raw = try await rawCount(bench, topic: Self.type, prefix: prefix)
        #expect(raw == 22, "no row was published twice")
    }

    @Test func aValueTheMappingCannotConvertIsDeadLettered() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let department = try bench.departmentDatabase()
        try await department.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE deaths (id INTEGER PRIMARY KEY, version INTEGER NOT NULL DEFAULT 1,
                    change_seq INTEGER NOT NULL UNIQUE, resident_id TEXT, death_date TEXT)
                    """)
            try db.execute(sql: "INSERT INTO deaths (id, change_seq, resident_id, death_date) VALUES (1, 1, '110101199003071234', '20240231')")
        }
        let yaml = """
            name: deaths-\(bench.unique)
            department: household-registry
            database: \(bench.path("department.sqlite"))
            state: \(bench.path("state.sqlite"))
            sources:
              - kind: table
                table: deaths
                cursor: change_seq
                type: household.death.registered
                interval: 100ms
                mapping:
                  /residentId: {column: resident_id}
                  /dateOfDeath: {column: death_date, convert: date}
            """
        let connector = try RunningConnector(yaml, on: bench)
        try await bench.eventually("the dead letter") {
            try await !bench.events(on: catalog.deadLetterTopic, idPrefix: "household-registry/deaths/").isEmpty
        }
        await connector.stop()
        let dead = try #require(try await bench.events(on: catalog.deadLetterTopic, idPrefix: "household-registry/deaths/").first)
        #expect(dead.header("dl_code") == "mapping-failed")
        #expect(dead.header("dl_reason")?.contains("20240231") == true)
        // The original row is kept as the value.
        let original = try JSONValue.parse(dead.value)
        #expect(original[pointer: "/death_date"] == .string("20240231"))
    }

    @Test(arguments: Backend.allCases)
    func webhookAnswers202Or400AndDeadLettersTheRefused(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let port = freePort()
        let connector = try RunningConnector(bench.webhookConnectorYAML("hook", port: port, type: Self.type), on: bench)
        atEnd { await connector.stop() }
        let example = try #require(catalog.schemas[Self.type]?.examples.first)
        let url = URL(string: "http://127.0.0.1:\(port)/payments")!
        let accepted = try await post(url, example.serialized(), id: "\(bench.unique)-ok")
        #expect(accepted.status == 202, "\(accepted.body)")
        let again = try await post(url, example.serialized(), id: "\(bench.unique)-ok")
        #expect(again.status == 202)
        var wrong = example
        wrong.set(.string("not a number"), at: "/amount")  // unknown or mistyped either way
        let refused = try await post(url, wrong.serialized(), id: "\(bench.unique)-bad")
        #expect(refused.status == 400)
        let errors = try JSONValue.parse(Data(refused.body.utf8))
        #expect(errors[pointer: "/code"] == .string("schema-violation"))
        #expect(errors[pointer: "/errors/0/pointer"] != nil)
        let garbage = try await post(url, Data("<xml/>".utf8), id: "\(bench.unique)-xml")
        #expect(garbage.status == 400)

        // A retried POST with the same ce-id is published again under the same id: consumers that
        // drop repeated ids see one event.
        let published = try await bench.events(on: Self.type, idPrefix: "\(bench.unique)-ok", deduplicate: false)
        #expect(published.count == 2)
        #expect(Set(published.compactMap { $0.header("ce_id") }) == ["\(bench.unique)-ok"])

        // Without ce-id or Idempotency-Key the id comes from the body: a retry keeps it, other bytes change it.
        var other = example
        other.set(.string("3440662503\(bench.unique.suffix(8))"), at: "/voucherNumber")
        let noKey = try await post(url, other.serialized(), id: nil)
        let retried = try await post(url, other.serialized(), id: nil)
        let first = try JSONValue.parse(Data(noKey.body.utf8))[pointer: "/id"]?.stringValue ?? ""
        #expect(noKey.status == 202 && retried.status == 202, "\(noKey.body)")
        #expect(first.hasPrefix("tax/webhook/payments/") && first.count == "tax/webhook/payments/".count + 16, "\(first)")
        #expect(try JSONValue.parse(Data(retried.body.utf8))[pointer: "/id"]?.stringValue == first)
        let accepted2 = try await post(url, example.serialized(), id: nil)
        #expect(try JSONValue.parse(Data(accepted2.body.utf8))[pointer: "/id"]?.stringValue != first)
        let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: bench.unique)
        #expect(Set(dead.compactMap { $0.header("dl_code") }) == ["schema-violation", "invalid-json"])
    }

    @Test(arguments: Backend.allCases)
    func droppedFilesArePublishedAndMovedToDoneOrFailed(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let drop = bench.path("drop")
        try FileManager.default.createDirectory(atPath: drop, withIntermediateDirectories: true)
        let example = try #require(catalog.schemas[Self.type]?.examples.first)
        let good = String(decoding: example.serialized(), as: UTF8.self)
        var wrong = example
        wrong.set(.string("not a number"), at: "/amount")
        let lines = [good, good, "{\"broken\": ", String(decoding: wrong.serialized(), as: UTF8.self), good]
        let name = "payments-\(bench.unique).jsonl"
        try lines.joined(separator: "\n").write(toFile: "\(drop)/\(name)", atomically: true, encoding: .utf8)
        try Data([0xff, 0xfe, 0x00, 0x41]).write(to: URL(fileURLWithPath: "\(drop)/broken-\(bench.unique).jsonl"))
        let yaml = """
            name: drop-\(bench.unique)
            department: tax
            state: \(bench.path("state.sqlite"))
            sources:
              - kind: file-drop
                directory: \(drop)
                format: jsonl
                type: \(Self.type)
                interval: 100ms
                settle: 0ms
            """
        let connector = try RunningConnector(yaml, on: bench)
        try await bench.eventually("the file is done") {
            FileManager.default.fileExists(atPath: "\(drop)/done/\(name)")
        }
        // A JSON-lines file is read line by line: its line of bytes that are not UTF-8 is
        // dead-lettered, and the file is done (a CSV file that is not UTF-8 still fails whole).
        try await bench.eventually("the file with a line that is not UTF-8 is done") {
            FileManager.default.fileExists(atPath: "\(drop)/done/broken-\(bench.unique).jsonl")
        }
        await connector.stop()
        let published = try await bench.events(on: Self.type, idPrefix: "tax/\(name)/")
        // Ids are tax/<name>/<fingerprint of the bytes>/<line>.
        let ids = published.compactMap { $0.header("ce_id") }
        #expect(Set(ids.map { $0.split(separator: "/").last.map(String.init) ?? "" }) == ["1", "2", "5"])
        #expect(Set(ids.map { $0.split(separator: "/").dropLast().joined(separator: "/") }).count == 1)
        let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: "tax/\(name)/")
        #expect(dead.count == 2)
        let broken = try await bench.events(on: catalog.deadLetterTopic, idPrefix: "tax/broken-\(bench.unique).jsonl/")
        #expect(broken.count == 1)
        #expect(broken.first?.header("dl_reason")?.contains("line 1 of broken-\(bench.unique).jsonl") == true)
        #expect(broken.first?.header("dl_code") == "invalid-json")
    }
}

/// Counts records (not de-duplicated) whose id starts with the prefix.
func rawCount(_ bench: Workbench, topic: String, prefix: String) async throws -> Int {
    try await bench.events(on: topic, idPrefix: prefix, deduplicate: false).count
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// POSTs JSON with a `ce-id` (none when `id` is `nil`), retrying while the server is still starting.
func post(_ url: URL, _ body: Data, id: String?) async throws -> (status: Int, body: String) {
    var request = URLRequest(url: url)
    request.httpMethod = "POST"
    request.httpBody = body
    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    if let id { request.setValue(id, forHTTPHeaderField: "ce-id") }
    var lastError: (any Error)?
    for _ in 0..<50 {
        do {
            let (data, response) = try await URLSession.shared.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
        } catch {
            lastError = error
            try await Task.sleep(for: .milliseconds(100))
        }
    }
    throw lastError!
}
