import Bus
import Connectors
import EmbeddedLog
import EventLog
import Foundation
import GRDB
import TestCleanup
import Testing
import TestSupport

/// A connector's cursors belong to the bus they were saved for.
@Suite("Cursors per bus", .timeLimit(.minutes(3)), .awaitedCleanup)
struct CursorStoreTests {
    @Test func anotherBusFindsNoCursorAndTheFirstKeepsItsOwn() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let path = bench.path("state.sqlite")
        let first = try CursorStore(path: path, bus: "embedded:/a.sqlite#1")
        #expect(try first.claim() == .resumed, "a new store")
        try await first.save("42", of: "table:payments")

        let second = try CursorStore(path: path, bus: "embedded:/b.sqlite#2")
        #expect(try second.claim() == .startingOver(others: ["embedded:/a.sqlite#1"]))
        #expect(try await second.position(of: "table:payments") == nil, "starts from the beginning there")
        try await second.save("7", of: "table:payments")
        #expect(try second.claim() == .resumed)

        let again = try CursorStore(path: path, bus: "embedded:/a.sqlite#1")
        #expect(try again.claim() == .resumed)
        #expect(try await again.position(of: "table:payments") == "42", "back on the first bus: where it was there")
        try await again.remove("table:payments")
        #expect(try await second.position(of: "table:payments") == "7", "removing is per bus too")
    }

    /// Cursors of an earlier OneWindow (no bus recorded) are taken over by the first bus that opens
    /// the store: upgrading does not start every connector over.
    @Test func cursorsSavedBeforeBusesWereRecordedAreAdopted() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let path = bench.path("old-state.sqlite")
        // The store as the previous version left it.
        let old = try DatabaseQueue(path: path)
        try await old.write { db in
            try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('v1')")
            try db.execute(sql: "CREATE TABLE cursor (source TEXT PRIMARY KEY, position TEXT NOT NULL, updated_at TEXT NOT NULL)")
            try db.execute(sql: "INSERT INTO cursor VALUES ('table:payments', '99', '2026-01-01T00:00:00Z')")
        }
        try old.close()
        let store = try CursorStore(path: path, bus: "kafka:broker:9092")
        #expect(try store.claim() == .adopted)
        #expect(try await store.position(of: "table:payments") == "99")
        let other = try CursorStore(path: path, bus: "kafka:elsewhere:9092")
        #expect(try other.claim() == .startingOver(others: ["kafka:broker:9092"]))
    }

    @Test func busIdentitiesNameTheSameBusAlikeAndARecreatedLogDifferently() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bus-id-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bus.sqlite").path
        FileManager.default.createFile(atPath: path, contents: Data())
        let direct = BusAddress.embedded(path: path).cursorIdentity
        #expect(direct.hasPrefix("embedded:\(URL(fileURLWithPath: path).resolvingSymlinksInPath().path)#"))
        #expect(BusAddress.embedded(path: directory.path + "/./bus.sqlite").cursorIdentity == direct)
        // Keep the old file alive so that the new one cannot reuse its inode.
        try FileManager.default.moveItem(atPath: path, toPath: path + ".old")
        FileManager.default.createFile(atPath: path, contents: Data())
        #expect(BusAddress.embedded(path: path).cursorIdentity != direct, "a new log at the same path is another bus")
        #expect(
            BusAddress.kafka(bootstrapServers: ["b:9092", "a:9092"]).cursorIdentity
                == BusAddress.kafka(bootstrapServers: ["a:9092", "b:9092"]).cursorIdentity)
    }

    /// The bug: pointed at another bus, a connector skipped every row it had sent to the first.
    /// Now it publishes every row there, and back on the first bus it resumes where it was.
    @Test func aConnectorPointedAtAnotherBusPublishesEveryRowThere() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let (table, _) = try await TableSourceTests.tiedTable(bench)
        let configuration = try ConnectorConfiguration.parse(TableSourceTests.yaml(bench, table), file: "test")
        let prefix = "tax/\(table.table)/"
        let other = try EmbeddedLog(path: bench.path("other-bus.sqlite"))
        try await other.createTopics(catalog.topicSpecs)

        func run(on log: any EventLog, bus: String, until done: @escaping () async throws -> Bool) async throws {
            let connector = try Connector(configuration: configuration, log: log, catalog: catalog, bus: bus)
            let task = Task { try await connector.run() }
            defer { task.cancel() }
            try await bench.eventually("rows published on \(bus)", done)
            task.cancel()
            _ = try? await task.value
        }
        func published(on log: any EventLog) async throws -> Int {
            try await readTopic(log, TableSourceTests.type).filter { $0.header("ce_id")?.hasPrefix(prefix) == true }.count
        }
        try await run(on: bench.log, bus: "bus-one") { try await published(on: bench.log) == 10 }
        try await run(on: other, bus: "bus-two") { try await published(on: other) == 10 }
        // Back on the first bus: nothing is published again.
        try await run(on: bench.log, bus: "bus-one") {
            try await Task.sleep(for: .milliseconds(800))  // several polls of the table
            return true
        }
        #expect(try await published(on: bench.log) == 10)
        await other.close()
    }
}
