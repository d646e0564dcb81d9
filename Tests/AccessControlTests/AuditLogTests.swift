import Audit
import Foundation
import GRDB
import TestSupport
import Testing

@Suite("audit log: the hash chain names the first entry edited, removed or reordered")
struct AuditLogTests {
    /// A log of `count` entries in a fresh folder.
    /// Keep the bench alive while the log is used: its folder goes with it.
    func filled(_ count: Int) async throws -> (AccessBench, AuditLog) {
        let bench = try AccessBench()
        for number in 1...count {
            try await bench.audit.append(
                actor: "ops-\(number)", action: number % 2 == 0 ? .replay : .deadLetterRedrive,
                subject: "group-\(number)", details: ["records": String(number * 10)])
        }
        return (bench, bench.audit)
    }

    /// Runs SQL on the log's file as someone editing it would, past its append-only triggers.
    func tamper(_ log: AuditLog, _ sql: String) throws {
        let queue = try DatabaseQueue(path: log.path)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER IF EXISTS entries_no_update; DROP TRIGGER IF EXISTS entries_no_delete")
            try db.execute(sql: sql)
        }
    }

    @Test("an intact log verifies, with its count and head; the triggers refuse updates and deletes")
    func intact() async throws {
        let (benchlog, log) = try await filled(5)
        defer { withExtendedLifetime(benchlog) {} }
        let result = try await log.verify()
        let last = try await log.entries().last
        #expect(result == .intact(entries: 5, head: last?.hash ?? ""))
        #expect(try await log.entries().map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(try await log.entries()[1].previousHash == (try await log.entries()[0].hash))
        await #expect(throws: (any Error).self) {
            try await log.pool.write { try $0.execute(sql: "UPDATE entries SET actor = 'someone' WHERE seq = 2") }
        }
        await #expect(throws: (any Error).self) {
            try await log.pool.write { try $0.execute(sql: "DELETE FROM entries WHERE seq = 2") }
        }
        let emptyPath = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID()).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: emptyPath + suffix) } }
        let empty = try AuditLog(path: emptyPath)
        #expect(try await empty.verify() == .intact(entries: 0, head: AuditLog.genesisHash))
    }

    @Test("an edited entry is named, whichever field was changed")
    func edited() async throws {
        for column in ["details = '{\"records\":\"999\"}'", "actor = 'someone-else'", "time_ms = time_ms + 1", "action = 'replay'"] {
            let (benchlog, log) = try await filled(5)
        defer { withExtendedLifetime(benchlog) {} }
            try tamper(log, "UPDATE entries SET \(column) WHERE seq = 3")
            let result = try await log.verify()
            // Entry 3's action was dlq.redrive: setting it to replay is a change too.
            #expect(result == .edited(sequence: 3), "\(column): \(result)")
        }
    }

    @Test("a removed entry is named by the entries around it; the first one removed too")
    func removed() async throws {
        let (benchlog, log) = try await filled(5)
        defer { withExtendedLifetime(benchlog) {} }
        try tamper(log, "DELETE FROM entries WHERE seq = 3")
        #expect(try await log.verify() == .removed(after: 2, sequence: 4))
        #expect(try await log.verify().description.contains("between entry 2 and entry 4"))

        let (benchfirst, first) = try await filled(3)
        defer { withExtendedLifetime(benchfirst) {} }
        try tamper(first, "DELETE FROM entries WHERE seq = 1")
        #expect(try await first.verify() == .removed(after: nil, sequence: 2))

        // Removed and the rest renumbered to hide the gap: still found by the chain.
        let (benchrenumbered, renumbered) = try await filled(5)
        defer { withExtendedLifetime(benchrenumbered) {} }
        try tamper(renumbered, "DELETE FROM entries WHERE seq = 3; UPDATE entries SET seq = seq - 1 WHERE seq > 3")
        #expect(try await renumbered.verify() == .removed(after: 2, sequence: 3))
    }

    @Test("two swapped entries are named as out of order (by their numbers or their contents)")
    func swapped() async throws {
        let (benchlog, log) = try await filled(5)
        defer { withExtendedLifetime(benchlog) {} }
        try tamper(log, "UPDATE entries SET seq = -3 WHERE seq = 3; UPDATE entries SET seq = 3 WHERE seq = 4; UPDATE entries SET seq = 4 WHERE seq = -3")
        #expect(try await log.verify() == .reordered(sequence: 3, predecessorNow: 4))

        let (benchcontents, contents) = try await filled(5)
        defer { withExtendedLifetime(benchcontents) {} }
        try tamper(
            contents,
            """
            CREATE TEMP TABLE keep AS SELECT * FROM entries WHERE seq IN (2, 3);
            UPDATE entries SET (time_ms, actor, action, subject, details, prev_hash, hash) =
                (SELECT time_ms, actor, action, subject, details, prev_hash, hash FROM keep WHERE keep.seq = 5 - entries.seq)
                WHERE seq IN (2, 3);
            """)
        #expect(try await contents.verify() == .reordered(sequence: 2, predecessorNow: 3))
    }

    @Test("appends from several tasks at once form one chain")
    func concurrentAppends() async throws {
        let bench = try AccessBench()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    let log = try AuditLog(path: bench.audit.path)  // its own connection pool, as another process
                    for number in 0..<25 {
                        try await log.append(actor: "writer-\(writer)", action: .replay, subject: "n\(number)")
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await bench.audit.verify() == .intact(entries: 100, head: try await bench.audit.entries().last!.hash))
    }

    @Test("an event id is appended once, within a batch and across batches")
    func eventIdOnce() async throws {
        let bench = try AccessBench()
        let first = try await bench.audit.append([
            .init(actor: "tax/officer-1", action: .approvalDecided, subject: "RA-2026-000001", eventId: "e1"),
            .init(actor: "tax/officer-1", action: .approvalDecided, subject: "RA-2026-000001", eventId: "e1"),
            .init(actor: "tax/officer-2", action: .approvalDecided, subject: "RA-2026-000002", eventId: "e2"),
        ])
        #expect(first.map(\.sequence) == [1, 2])
        #expect(try await bench.audit.append(actor: "x", action: .approvalDecided, subject: "y", eventId: "e2") == nil)
        #expect(try await bench.audit.entries().count == 2)
        #expect(try await bench.audit.contains(eventId: "e1"))
    }

    @Test("onewindow audit verify exits 0 on an intact log and 1 naming the entry on a tampered one; list filters")
    func commands() async throws {
        let executable = try onewindowExecutable().path
        let (benchlog, log) = try await filled(4)
        defer { withExtendedLifetime(benchlog) {} }
        let intact = try await runProgram(executable, ["audit", "verify", "--audit", log.path])
        #expect(intact.status == 0, "\(String(decoding: intact.error, as: UTF8.self))")
        #expect(String(decoding: intact.output, as: UTF8.self).contains("intact: 4 entries"))
        let head = try await log.entries().last!
        let withHead = try await runProgram(
            executable, ["audit", "verify", "--audit", log.path, "--head", "4:\(head.hash)"])
        #expect(withHead.status == 0, "\(String(decoding: withHead.error, as: UTF8.self))")

        let listed = try await runProgram(executable, ["audit", "list", "--audit", log.path, "--action", "replay"])
        let lines = String(decoding: listed.output, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2 && lines.allSatisfy { $0.contains(" replay ") }, "\(lines)")
        let json = try await runProgram(executable, ["audit", "list", "--audit", log.path, "--by", "ops-3", "--json"])
        #expect(String(decoding: json.output, as: UTF8.self).contains("\"records\":\"30\""))

        try tamper(log, "DELETE FROM entries WHERE seq = 4")
        let cut = try await runProgram(executable, ["audit", "verify", "--audit", log.path, "--head", "4:\(head.hash)"])
        #expect(cut.status == 1)
        #expect(String(decoding: cut.error, as: UTF8.self).contains("entry 4"), "\(String(decoding: cut.error, as: UTF8.self))")

        try tamper(log, "UPDATE entries SET subject = 'another-group' WHERE seq = 2")
        let tampered = try await runProgram(executable, ["audit", "verify", "--audit", log.path])
        #expect(tampered.status == 1)
        #expect(
            String(decoding: tampered.error, as: UTF8.self).contains("entry 2 was edited"),
            "\(String(decoding: tampered.error, as: UTF8.self))")
    }
}
