import Connectors
import EventLog
import Foundation
import GRDB
import TestCleanup
import Testing
import TestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `onewindow connector run --metrics-port`: Prometheus text at /metrics, scraped over HTTP from a
/// real connector process.
@Suite("Connector metrics", .timeLimit(.minutes(3)), .awaitedCleanup)
struct MetricsTests {
    @Test func theMetricsEndpointCountsWhatWasPublishedAndDeadLettered() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let table = try ExampleTable(type: "tax.payment.received", table: "payments", catalog: catalog)
        let department = try bench.departmentDatabase()
        let required = try table.requiredScalarColumn()
        try await department.write { db in
            try db.execute(sql: table.createSQL)
            for _ in 0..<20 { try table.insert(db) }
            try table.insert(db, overrides: [required.name: .null])  // refused by the schema
        }
        let name = "metrics-\(bench.unique)"
        let file = bench.path("connector.yaml")
        try """
        name: \(name)
        department: tax
        database: \(bench.path("department.sqlite"))
        state: \(bench.path("state.sqlite"))
        sources:
          - kind: table
            table: payments
            cursor: change_seq
            type: tax.payment.received
            interval: 50ms
            mapping:
        \(table.mappingYAML)
        sinks:
          - kind: file
            topics: [tax.payment.received]
            directory: \(bench.path("out"))
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let port = freePort()
        let process = childProcess(
            try onewindowExecutable(),
            ["connector", "run", file, "--bus", bench.busAddress, "--log-level", "warning", "--metrics-port", "\(port)"])
        process.currentDirectoryURL = repositoryRoot
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        let url = URL(string: "http://127.0.0.1:\(port)/metrics")!
        let connector = "connector=\"\(name)\""
        var text = ""
        try await bench.eventually("the counters and the sink's lag on /metrics") {
            guard let (data, response) = try? await URLSession.shared.data(from: url),
                (response as? HTTPURLResponse)?.statusCode == 200
            else { return false }
            text = String(decoding: data, as: UTF8.self)
            return Self.value(in: text, "onewindow_connector_published_total", connector) == 20
                && Self.value(in: text, "onewindow_connector_dead_lettered_total", connector) == 1
                && Self.value(in: text, "onewindow_connector_delivered_total", connector) == 20
                && Self.value(in: text, "onewindow_connector_sink_lag", connector, "group=\"connector.\(name).file\"") == 0
                && Self.value(in: text, "onewindow_connector_source_lag", connector) == 0
        }
        #expect(Self.value(in: text, "onewindow_connector_records_in_total", connector) == 21, "\(text)")
        // The bus agrees with what the endpoint says.
        let published = try await bench.events(on: "tax.payment.received", idPrefix: "tax/payments/")
        #expect(published.count == 20)
        let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: "tax/payments/")
        #expect(dead.count == 1)

        kill(process.processIdentifier, SIGTERM)
        try await waitForExit(process)
        #expect(process.terminationStatus == 0)
    }

    /// The value of the sample of `metric` whose labels contain each of `labels`.
    static func value(in text: String, _ metric: String, _ labels: String...) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(metric + "{") || line.hasPrefix(metric + " ") {
            let sample = String(line)
            guard labels.allSatisfy({ sample.contains($0) }), let last = sample.split(separator: " ").last else { continue }
            return Double(last)
        }
        return nil
    }
}
