import Bus
@testable import Connectors
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import TestCleanup
import Testing
import TestSupport

/// The file-drop source: ids keyed on a file's content, reused names, files still being written,
/// CSV files end to end and the CSV parser itself.
@Suite("File-drop source", .timeLimit(.minutes(3)), .awaitedCleanup)
struct FileDropTests {
    static let type = "tax.payment.received"

    /// The example payment as a JSON line, with its own voucher number.
    static func line(_ voucher: Int) throws -> String {
        var body = try #require(catalog.schemas[type]?.examples.first)
        body.set(.string(String(format: "3440662503%08d", voucher)), at: "/voucherNumber")
        return String(decoding: body.serialized(), as: UTF8.self)
    }

    static func yaml(_ bench: Workbench, drop: String, format: String = "jsonl", mapping: String = "") -> String {
        """
        name: drop-\(bench.unique)
        department: tax
        state: \(bench.path("state.sqlite"))
        sources:
          - kind: file-drop
            directory: \(drop)
            format: \(format)
            type: \(type)
            interval: 100ms
            settle: 0ms
        \(mapping)
        """
    }

    /// The file-drop cursors left in a connector's state file.
    static func fileCursors(_ bench: Workbench) throws -> Int {
        let state = try sharedDatabase(bench.path("state.sqlite"))  // the connector may be writing its cursors
        return try state.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM bus_cursor WHERE source LIKE 'file-drop:%'") ?? 0
        }
    }

    @Test(arguments: Backend.allCases)
    func aReusedFileNameIsReadAgainWithNewIds(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let drop = bench.path("drop")
        try FileManager.default.createDirectory(atPath: drop, withIntermediateDirectories: true)
        let name = "payments-\(bench.unique).jsonl"
        let prefix = "tax/\(name)/"
        let connector = try RunningConnector(Self.yaml(bench, drop: drop), on: bench)
        atEnd { await connector.stop() }

        try [Self.line(1), Self.line(2), Self.line(3)].joined(separator: "\n")
            .write(toFile: "\(drop)/\(name)", atomically: true, encoding: .utf8)
        try await bench.eventually("the first file's lines") { try await bench.events(on: Self.type, idPrefix: prefix).count == 3 }
        try await bench.eventually("the first file done") { !FileManager.default.fileExists(atPath: "\(drop)/\(name)") }
        // The department drops the next day's file under the same name: 2 lines, other content.
        try [Self.line(4), Self.line(5)].joined(separator: "\n").write(toFile: "\(drop)/\(name)", atomically: true, encoding: .utf8)
        try await bench.eventually("the second file's lines") { try await bench.events(on: Self.type, idPrefix: prefix).count == 5 }
        try await bench.eventually("both files in done/") {
            (try? FileManager.default.contentsOfDirectory(atPath: "\(drop)/done").count) == 2
        }
        try await bench.eventually("the cursors cleared after the moves") { try Self.fileCursors(bench) == 0 }

        let events = try await bench.events(on: Self.type, idPrefix: prefix)
        let vouchers = try Set(events.map { try JSONValue.parse($0.value)[pointer: "/voucherNumber"]?.stringValue ?? "" })
        #expect(vouchers == Set((1...5).map { String(format: "3440662503%08d", $0) }), "every line of both files")
        // Ids: tax/<name>/<fingerprint>/<line>, one fingerprint per file.
        let fingerprints = Set(events.compactMap { $0.header("ce_id")?.split(separator: "/").dropLast().last })
        #expect(fingerprints.count == 2)
        #expect(fingerprints.allSatisfy { $0.count == 16 })
    }

    @Test func theSameBytesReadAgainGiveTheSameIds() async throws {
        // A crash after the bus confirmed but before the cursor was saved makes the connector read the
        // file again: here the file is put back after it was done, the same situation to the source.
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let drop = bench.path("drop")
        try FileManager.default.createDirectory(atPath: drop, withIntermediateDirectories: true)
        let name = "payments-\(bench.unique).jsonl"
        let prefix = "tax/\(name)/"
        try (1...4).map(Self.line).joined(separator: "\n").write(toFile: "\(drop)/\(name)", atomically: true, encoding: .utf8)
        let connector = try RunningConnector(Self.yaml(bench, drop: drop), on: bench)
        atEnd { await connector.stop() }
        try await bench.eventually("the file done") { FileManager.default.fileExists(atPath: "\(drop)/done/\(name)") }
        let first = Set(try await bench.events(on: Self.type, idPrefix: prefix).compactMap { $0.header("ce_id") })
        #expect(first.count == 4)

        try FileManager.default.moveItem(atPath: "\(drop)/done/\(name)", toPath: "\(drop)/\(name)")
        try await bench.eventually("read again") { try await rawCount(bench, topic: Self.type, prefix: prefix) == 8 }
        let again = try await bench.events(on: Self.type, idPrefix: prefix, deduplicate: false).compactMap { $0.header("ce_id") }
        #expect(Set(again) == first, "no new ids: consumers drop the repeats")
        #expect(again.count == 8)
    }

    @Test func aCursorLeftByAKillDoesNotSkipTheSameBytesUnderAnotherName() async throws {
        // A connector killed after moving a finished file to done/ and before removing its cursor
        // leaves "every line read" behind (the kill test of Tests/ReliabilityTests can hit that
        // window). A later file with the same bytes under another name has ids of its own
        // (tax/<name>/<fingerprint>/<line>): that cursor must not make it look read already. The
        // state is made here as the kill leaves it, then the connector starts.
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let drop = bench.path("drop")
        try FileManager.default.createDirectory(atPath: "\(drop)/done", withIntermediateDirectories: true)
        let bytes = Data(try (1...3).map(Self.line).joined(separator: "\n").utf8)
        let fingerprint = ContentFingerprint.hex(bytes)
        try bytes.write(to: URL(fileURLWithPath: "\(drop)/done/monday.jsonl"))
        let left = try CursorStore(path: bench.path("state.sqlite"))
        for key in ["file-drop:\(drop)/\(fingerprint)", "file-drop:\(drop)/monday.jsonl/\(fingerprint)"] {
            try await left.save("3", of: key)  // the key as it was before this test, and as it is
        }
        try bytes.write(to: URL(fileURLWithPath: "\(drop)/tuesday.jsonl"))

        let connector = try RunningConnector(Self.yaml(bench, drop: drop), on: bench)
        atEnd { await connector.stop() }
        try await bench.eventually("tuesday.jsonl done") { FileManager.default.fileExists(atPath: "\(drop)/done/tuesday.jsonl") }
        let ids = try await bench.events(on: Self.type, idPrefix: "tax/tuesday.jsonl/").compactMap { $0.header("ce_id") }
        #expect(ids.sorted() == (1...3).map { "tax/tuesday.jsonl/\(fingerprint)/\($0)" }, "every line of the second file")
    }

    @Test func filesStillBeingWrittenAreNotRead() throws {
        let bench = try Self.offlineBench()
        defer { try? FileManager.default.removeItem(at: bench) }
        let configuration = FileDropSourceConfiguration(
            directory: bench.path, format: .jsonl, type: Self.type, topic: nil, interval: .milliseconds(100),
            settle: .seconds(2), mapping: nil)
        for name in ["ready.jsonl", "fresh.jsonl", ".hidden.jsonl", "upload.jsonl.part", "upload.jsonl.tmp", "notes.txt"] {
            try "{}".write(to: bench.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let old = Date().addingTimeInterval(-60)
        for name in ["ready.jsonl", ".hidden.jsonl", "upload.jsonl.part", "upload.jsonl.tmp", "notes.txt"] {
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: bench.appendingPathComponent(name).path)
        }
        let names = { (now: Date) in
            try FileDropSource.readyFiles(in: bench, configuration: configuration, now: now).map(\.lastPathComponent)
        }
        #expect(try names(Date()) == ["ready.jsonl"], "hidden, .part, .tmp, other formats and a fresh file are left")
        #expect(try names(Date().addingTimeInterval(3)) == ["fresh.jsonl", "ready.jsonl"], "once settled, read")
    }

    static func offlineBench() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-drop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test(arguments: Backend.allCases)
    func csvFilesArePublishedEndToEnd(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let drop = bench.path("drop")
        try FileManager.default.createDirectory(atPath: drop, withIntermediateDirectories: true)
        let name = "payments-\(bench.unique).csv"
        // Excel's way: a byte order mark, CRLF line ends, a quoted field with a comma and one with a line break.
        let csv = "\u{FEFF}taxpayer,type,amount,period,voucher,paid\r\n"
            + "440606199005110481,deed-tax,4500000,2025-03,344066250300000001,2025-03-05 10:30:00\r\n"
            + "440606199005110481,\"stamp-duty\",\"1200\",2025-03,\"3440662503,00000002\",2025-03-06 09:00:00\r\n"
            + "440606199005110481,stamp-duty,1300,2025-03,\"34406625030000\r\n0003\",2025-03-07 09:00:00\r\n"
            + "440606199005110481,deed-tax,not-a-number,2025-03,344066250300000004,2025-03-08 09:00:00\r\n"
        try Data(csv.utf8).write(to: URL(fileURLWithPath: "\(drop)/\(name)"))
        let mapping = """
                mapping:
                  /taxpayerId: {column: taxpayer}
                  /taxType: {column: type}
                  /amountFen: {column: amount, convert: integer}
                  /period: {column: period}
                  /voucherNumber: {column: voucher}
                  /paidAt: {column: paid, convert: date-time}
            """
        let connector = try RunningConnector(Self.yaml(bench, drop: drop, format: "csv", mapping: mapping), on: bench)
        try await bench.eventually("the file done") { FileManager.default.fileExists(atPath: "\(drop)/done/\(name)") }
        await connector.stop()
        let prefix = "tax/\(name)/"
        let events = try await bench.events(on: Self.type, idPrefix: prefix)
        let bodies = try events.map { try JSONValue.parse($0.value) }
        #expect(Set(bodies.compactMap { $0[pointer: "/voucherNumber"]?.stringValue })
            == ["344066250300000001", "3440662503,00000002", "34406625030000\r\n0003"])
        let first = try #require(bodies.first { $0[pointer: "/voucherNumber"] == .string("344066250300000001") })
        #expect(first[pointer: "/taxpayerId"] == .string("440606199005110481"), "the byte order mark is not part of the header")
        #expect(first[pointer: "/amountFen"] == .integer(4_500_000))
        #expect(first[pointer: "/paidAt"] == .string("2025-03-05T10:30:00+08:00"))
        // Ids end with the line a record starts on: the quoted line break makes the fourth record start on line 6.
        let lines = Set(events.compactMap { $0.header("ce_id")?.split(separator: "/").last.map(String.init) })
        #expect(lines == ["2", "3", "4"])
        let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: prefix)
        #expect(dead.count == 1)
        #expect(dead.first?.header("ce_id")?.hasSuffix("/6") == true)
        #expect(dead.first?.header("dl_reason")?.contains("not-a-number") == true, "\(dead.first?.header("dl_reason") ?? "")")
    }
}

/// The CSV reader on its own (RFC 4180 and what spreadsheets write).
@Suite("CSV parser")
struct CSVTests {
    @Test func quotedFieldsWithCommasQuotesAndLineBreaks() throws {
        let table = try #require(CSVTable(text: "a,b,c\n1,\"x, y\",\"say \"\"hi\"\"\"\n2,\"two\nlines\",z\n"))
        #expect(table.header == ["a", "b", "c"])
        #expect(table.rows.map(\.fields) == [["1", "x, y", "say \"hi\""], ["2", "two\nlines", "z"]])
        #expect(table.rows.map(\.line) == [2, 3], "a record's line is where it starts")
    }

    @Test func crlfLineEndsAndAByteOrderMark() throws {
        let table = try #require(CSVTable(text: "\u{FEFF}id,name\r\n1,甲\r\n2,乙\r\n"))
        #expect(table.header == ["id", "name"])
        #expect(table.rows.map(\.fields) == [["1", "甲"], ["2", "乙"]])
    }

    @Test func emptyFieldsLastLineWithoutBreakAndBlankLines() throws {
        let table = try #require(CSVTable(text: "a,b,c\n,,\n\n1,,3"))
        #expect(table.rows.map(\.fields) == [["", "", ""], ["1", "", "3"]])
        #expect(table.rows.map(\.line) == [2, 4])
    }

    @Test func aLineThatBreaksTheFormatIsRefusedAloneWithItsFieldAndRule() throws {
        var file = Data("a,b\n1,ok\n2,".utf8)
        file.append(contentsOf: [0xFF, 0x41])  // not UTF-8
        file.append(Data("\n3,ab\"c\n4,\"x\"y\n5,\"never\n6,ok\n7,\"two\nlines\"\n8,\"a,\"\"b\"\"\"\n".utf8))
        let table = try #require(CSVTable(data: file))
        #expect(table.rows.map(\.line) == [2, 3, 4, 5, 6, 7, 8, 10])
        #expect(table.rows.map { $0.problem?.rule } == [nil, "utf-8", "quoting", "quoting", "quoting", nil, nil, nil])
        #expect(table.rows.map { $0.problem?.field } == [nil, 1, 1, 1, 1, nil, nil, nil])
        #expect(table.rows[1].invalid[1] == Data([0xFF, 0x41]))
        #expect(table.rows[5].fields == ["6", "ok"], "the line after a quote that never closed is read on its own")
        #expect(table.rows[6].fields == ["7", "two\nlines"])
        #expect(table.rows[7].fields == ["8", "a,\"b\""])
        #expect(CSVTable(data: Data([0x61, 0xFF, 0x0A, 0x31, 0x0A])) == nil, "a header that is not UTF-8 is no header")
    }

    @Test func noHeaderIsNoTable() {
        #expect(CSVTable(text: "") == nil)
        #expect(CSVTable(text: "\n\n") == nil)
    }
}
