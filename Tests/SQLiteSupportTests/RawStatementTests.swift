import Foundation
import GRDB
import SQLiteSupport
import Testing

/// The store's statements bound and run with SQLite's functions (``RawStatement``) store what
/// GRDB's binding stored, and fail as GRDB's statements do.
@Suite("Statements run with SQLite's own functions")
struct RawStatementTests {
    @Test("Each kind of value is stored as GRDB stores it, an empty text as an empty text, and a failing statement throws SQLite's error with its SQL")
    func valuesAsGRDBStoresThem() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v)")
            let values: [(RawValue, DatabaseValue)] = [
                (.null, .null), (.int(-7), (-7).databaseValue), (.integer(Int64.max), Int64.max.databaseValue),
                (.bool(true), true.databaseValue), (.real(1.5), 1.5.databaseValue),
                (.text("案件 RA-2026-000001"), "案件 RA-2026-000001".databaseValue), (.text(""), "".databaseValue),
                (.utf8Text(Array(#"{"案件":"RA-2026-000001"}"#.utf8)), #"{"案件":"RA-2026-000001"}"#.databaseValue),
                (.utf8Text([]), "".databaseValue),
                (.blob(Data([0, 1, 2])), Data([0, 1, 2]).databaseValue),
                (.optionalText(nil), .null), (.optionalReal(2.25), 2.25.databaseValue),
                (.optionalInteger(nil), .null),
            ]
            let raw = try RawStatement("INSERT INTO t (k, v) VALUES (?, ?)", db)
            let grdb = try db.makeStatement(sql: "INSERT INTO t (k, v) VALUES (?, ?)")
            for (index, (value, expected)) in values.enumerated() {
                raw.bind([.int(index), value])
                #expect(try raw.execute() == 1)
                try grdb.execute(arguments: [1000 + index, expected])
            }
            let stored = try Row.fetchAll(
                db, sql: "SELECT a.v AS raw, typeof(a.v) AS rawType, b.v AS grdb, typeof(b.v) AS grdbType FROM t a JOIN t b ON b.k = a.k + 1000 ORDER BY a.k")
            #expect(stored.count == values.count)
            for (row, (value, _)) in zip(stored, values) {
                #expect(row["raw"] as DatabaseValue == row["grdb"] as DatabaseValue, "\(value)")
                #expect(row["rawType"] as String == row["grdbType"] as String, "\(value)")
            }

            let query = try RawStatement("SELECT k, v FROM t WHERE k = ?", db)
            query.bind([.int(1)])
            #expect(try query.int64Pair().map { [$0.0, $0.1] } == [1, -7])
            query.bind([.int(0)])
            #expect(try query.int64Pair().map { [$0.0, $0.1] } == [0, nil])
            query.bind([.int(-1)])
            #expect(try query.int64Pair() == nil)
            let one = try RawStatement("SELECT v FROM t WHERE k = ?", db)
            one.bind([.int(2)])
            #expect(try one.int64() == .some(Int64.max))

            raw.bind([.int(0), .null])
            let error = try #require(throws: DatabaseError.self) { try raw.execute() }
            #expect(error.resultCode == .SQLITE_CONSTRAINT)
            #expect(error.sql == "INSERT INTO t (k, v) VALUES (?, ?)")
            raw.bind([.int(5000), .text("after the failure")])
            #expect(try raw.execute() == 1, "the statement runs again after a failure")
        }
    }
}
