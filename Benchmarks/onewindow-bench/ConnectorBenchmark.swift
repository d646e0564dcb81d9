import Connectors
import EmbeddedLog
import EventLog
import EventSchemas
import Foundation
import GRDB
import TestSupport

/// A table source's throughput on the embedded log: `rows` rows already in a department table
/// shaped like `tax.payment.received`, timed from the connector's start until the last one is on
/// the bus (mapped and validated against its schema, as always).
func benchConnector(directory: URL, rows: Int) async throws -> Measurement {
    let catalog = try TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    let table = try ExampleTable(type: "tax.payment.received", table: "payments", catalog: catalog)
    let departmentPath = directory.appendingPathComponent("department.sqlite").path
    let department = try DatabasePool(path: departmentPath)
    try await department.write { db in
        try db.execute(sql: table.createSQL)
        for _ in 0..<rows { try table.insert(db) }
    }
    try department.close()
    let log = try EmbeddedLog(
        path: directory.appendingPathComponent("connector-bus.sqlite").path,
        configuration: EmbeddedLogConfiguration(maintenanceInterval: nil))
    try await log.createTopics(catalog.topicSpecs)
    let yaml = """
        name: bench
        department: tax
        database: \(departmentPath)
        state: \(directory.appendingPathComponent("bench-state.sqlite").path)
        sources:
          - kind: table
            table: payments
            cursor: change_seq
            version: version
            type: tax.payment.received
            interval: 10ms
            batch: 1000
            mapping:
        \(table.mappingYAML)
        """
    let connector = try Connector(
        configuration: try ConnectorConfiguration.parse(yaml, file: "bench"), log: log, catalog: catalog)
    let clock = ContinuousClock()
    let start = clock.now
    let task = Task { try await connector.run() }
    while connector.stats.snapshot.published + connector.stats.snapshot.deadLettered < rows {
        try await Task.sleep(for: .milliseconds(5))
    }
    let elapsed = clock.now - start
    task.cancel()
    _ = try? await task.value
    let dead = connector.stats.snapshot.deadLettered
    await log.close()
    precondition(dead == 0, "the benchmark rows must be valid; \(dead) were dead-lettered")
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Measurement(
        name: "connector table source → embedded log (mapped + validated, batches of 1000)", events: rows,
        seconds: seconds)
}
