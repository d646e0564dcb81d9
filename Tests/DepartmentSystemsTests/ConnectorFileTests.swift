import Connectors
import DepartmentSystems
import EventSchemas
import Foundation
import GRDB
import Testing
import TestSupport

/// The connector files of `Connectors/`.
enum ConnectorFiles {
    static func path(_ name: String) -> String { repositoryRoot.appendingPathComponent("Connectors/\(name).yaml").path }

    static func configuration(for department: DepartmentID) throws -> ConnectorConfiguration {
        try ConnectorConfiguration.load(path: path(department.rawValue))
    }

    static func tableSources(_ configuration: ConnectorConfiguration) -> [TableSourceConfiguration] {
        configuration.sources.compactMap { if case .table(let table) = $0 { table } else { nil } }
    }
}

@Suite struct ConnectorFileTests {
    @Test(arguments: DepartmentID.allCases)
    func fileLoadsAndMatchesTheCatalogAndTheDatabase(_ department: DepartmentID) throws {
        let configuration = try ConnectorFiles.configuration(for: department)
        try Connector.check(configuration, against: catalog)
        #expect(configuration.name == department.rawValue)
        #expect(configuration.database == "var/departments/\(department.rawValue).sqlite")
        let system = DepartmentSystem.named(department)
        let sources = ConnectorFiles.tableSources(configuration)
        #expect(Set(sources.map(\.table)) == Set(system.sourceTables.map(\.name)))
        for source in sources {
            #expect(system.sourceTables.contains(SourceTable(name: source.table, eventType: source.type)))
            #expect(source.cursor == "change_seq" && source.id == "id" && source.version == "version")
        }
        let database = try temporaryDatabase(department)
        try database.writer.read { db in
            for source in sources {
                let columns = Set(try db.columns(in: source.table).map(\.name))
                for rule in source.mapping {
                    if case .column(let name) = rule.value {
                        #expect(columns.contains(name), "\(source.table).\(name)")
                    }
                }
                if let time = source.time { #expect(columns.contains(time)) }
            }
            for sink in configuration.sinks {
                switch sink {
                case .inbox(let inbox):
                    #expect(inbox.requests == "approval.\(department.rawValue).requested")
                    #expect(inbox.decisions == "approval.\(department.rawValue).decided")
                    #expect(try db.tableExists(inbox.inboxTable) && db.tableExists(inbox.decisionsTable))
                case .table(let table):
                    let columns = Set(try db.columns(in: table.table).map(\.name))
                    #expect(columns.contains(table.idColumn))
                    for (column, _) in table.columns { #expect(columns.contains(column), "\(table.table).\(column)") }
                default:
                    Issue.record("unexpected sink \(sink.kind)")
                }
            }
        }
        #expect(configuration.sinks.contains { $0.kind == "inbox" } == system.approves)
    }

    /// What `connector check` asks of the database: every table and column the file names is in
    /// the simulated department's database, and a missing database is named with how to make it.
    @Test(arguments: DepartmentID.allCases)
    func theDatabaseHasEveryTableAndColumnTheFileNames(_ department: DepartmentID) throws {
        var configuration = try ConnectorFiles.configuration(for: department)
        let database = try temporaryDatabase(department)
        let path = try #require(database.writer.path)
        configuration.database = path
        #expect(try Connector.databaseProblems(in: configuration).map(\.description) == [])

        try database.writer.write { db in
            if let source = ConnectorFiles.tableSources(configuration).first {
                try db.execute(sql: "ALTER TABLE \(source.table) RENAME TO \(source.table)_old")
            } else {
                try db.execute(sql: "ALTER TABLE sms_outbox RENAME COLUMN mobile TO phone")
            }
        }
        let problems = try Connector.databaseProblems(in: configuration).map(\.description)
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.contains(configuration.file) == true)

        configuration.database = path + ".missing"
        let missing = try Connector.databaseProblems(in: configuration).map(\.description)
        #expect(missing.count == 1)
        #expect(missing.first?.contains("onewindow dept-sim \(department.rawValue) --seed") == true, "\(missing)")
        #expect(!FileManager.default.fileExists(atPath: path + ".missing"))
    }

    /// Every source table of every connector file: generated rows map to bodies that validate
    /// against their schemas, and exactly the rows spoiled on purpose are refused.
    @Test(arguments: DepartmentID.allCases.filter { $0 != .smsGateway })
    func generatedRowsMapToValidEventsAndBadRowsAreRefused(_ department: DepartmentID) async throws {
        let configuration = try ConnectorFiles.configuration(for: department)
        for source in ConnectorFiles.tableSources(configuration) {
            let database = try temporaryDatabase(department)
            try await database.seed()
            let generator = try RowGenerator(
                database: database,
                options: .init(tables: [source.table], badFraction: 0.1, updateFraction: 0, seed: 42))
            let report = try await generator.write(300)
            #expect(report.bad == 30)
            let bad = Set(report.badRows.map(\.id))
            let mapper = BodyMapper(rules: source.mapping)
            let rows = try await database.writer.read { db in try Row.fetchAll(db, sql: "SELECT * FROM \(source.table)")
            }
            var refused = 0
            for row in rows {
                let id: Int64 = row["id"]
                let problem = refusal(of: row, mapper: mapper, type: source.type)
                if bad.contains(id) {
                    #expect(problem != nil, "\(source.table) row \(id) was spoiled but maps to a valid event")
                } else {
                    #expect(problem == nil, "\(source.table) row \(id): \(problem ?? "")")
                }
                if problem != nil { refused += 1 }
            }
            #expect(refused == 30, "\(source.table)")
        }
    }

    @Test func smsOutboxColumnsComeFromTheEventBody() throws {
        let configuration = try ConnectorFiles.configuration(for: .smsGateway)
        guard case .table(let sink)? = configuration.sinks.first else {
            Issue.record("the SMS gateway's sink is not a table sink")
            return
        }
        #expect(sink.topics == ["notification.sms.requested"])
        let example = try #require(catalog.schemas["notification.sms.requested"]?.examples.first)
        for (column, source) in sink.columns where source.hasPrefix("/") {
            #expect(example[pointer: source] != nil, "\(column) ← \(source)")
        }
    }
}

@Suite struct BrokenConnectorFileTests {
    @Test func theCorpusIsThere() {
        #expect(BrokenConfigFile.all(in: "connectors").count >= 8)
    }

    /// Unknown and misspelt keys, wrong types, missing keys: each refused with the file, the line
    /// and the message the file's first line states.
    @Test(arguments: BrokenConfigFile.all(in: "connectors"))
    func aBrokenFileIsRefusedWithFileLineAndMessage(_ broken: BrokenConfigFile) {
        do {
            _ = try ConnectorConfiguration.load(path: broken.path)
            Issue.record("\(broken) was accepted")
        } catch let error as ConnectorConfigurationError {
            #expect(error.file == broken.path)
            #expect(error.line == broken.line, "\(broken): \(error)")
            #expect(error.description.hasPrefix("\(broken.path):\(broken.line):"), "\(error)")
            #expect(error.description.contains(broken.message), "\(broken): \(error)")
        } catch {
            Issue.record("\(broken): unexpected \(error)")
        }
    }
}
