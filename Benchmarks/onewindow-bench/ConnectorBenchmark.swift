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
///
/// The source is configured as the files in Connectors/ configure theirs: the default batch size,
/// the event time taken from a column, and the payment time stored as department systems store
/// it (`2025-03-05 10:30:00`, China time) and converted with `convert: date-time`.
func benchConnector(directory: URL, rows: Int) async throws -> Measurement {
    let catalog = try TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    let table = try ExampleTable(type: "tax.payment.received", table: "payments", catalog: catalog)
    let departmentPath = directory.appendingPathComponent("department.sqlite").path
    let department = try DatabasePool(path: departmentPath)
    try await department.write { db in
        try db.execute(sql: table.createSQL)
        // Department systems store local China time; the mapping converts it to RFC 3339.
        let overrides: [String: DatabaseValue] = ["paidAt": "2025-03-05 10:30:00".databaseValue]
        for _ in 0..<rows { try table.insert(db, overrides: overrides) }
    }
    try department.close()
    let log = try EmbeddedLog(
        path: directory.appendingPathComponent("connector-bus.sqlite").path,
        configuration: EmbeddedLogConfiguration(maintenanceInterval: nil))
    try await log.createTopics(catalog.topicSpecs)
    // As Connectors/tax.yaml maps its payments: the time and the amount converted.
    let mapping = table.mappingYAML
        .replacingOccurrences(of: "{column: paidAt}", with: "{column: paidAt, convert: date-time}")
        .replacingOccurrences(of: "{column: amountFen}", with: "{column: amountFen, convert: integer}")
    precondition(mapping.contains("convert: date-time") && mapping.contains("convert: integer"))
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
            time: paidAt
            interval: 10ms
            mapping:
        \(mapping)
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
    let seconds = elapsed.seconds
    return Measurement(
        name: "connector table source → embedded log (mapped + converted + validated, default batch)", events: rows,
        seconds: seconds)
}
