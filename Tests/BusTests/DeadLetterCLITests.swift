import Bus
import EventLog
import EventSchemas
import Foundation
import TestCleanup
import Testing
import TestSupport

/// `onewindow dlq` as an operator runs it, on a temporary embedded bus (the desk itself is tested
/// on both backends in DeadLetterOfficeTests).
@Suite("onewindow dlq", .timeLimit(.minutes(3)), .awaitedCleanup)
struct DeadLetterCLITests {
    @Test func listShowPurgeAndRedriveFromTheCommandLine() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        #expect(try await runOnewindow(["topics", "apply", "--bus", address]).status == 0)
        // Bytes that are not UTF-8, and a birth whose child's resident ID has a wrong check character.
        let notUTF8 = Data(#"{"residentId":"4406041935120800"#.utf8) + Data([0xFF, 0xFE]) + Data(#""}"#.utf8)
        var birth = try #require(repositoryCatalog.schemas["household.birth.registered"]?.examples.first)
        birth.set(.string("440604202501150135"), at: "/child/residentId")
        for (type, body) in [("household.death.registered", notUTF8), ("household.birth.registered", birth.serialized())] {
            let refused = try await runOnewindow(
                ["publish", "--bus", address, "--type", type, "--dead-letter", "--source", "/registry"], input: body)
            #expect(refused.status == 65, "\(refused.error)")
        }

        let list = try await runOnewindow(["dlq", "list", "--bus", address])
        #expect(list.status == 0, "\(list.error)")
        let lines = list.output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("ID") == true, "\(list.output)")
        #expect(lines.first?.contains("REFUSED BY") == true)
        #expect(lines.filter { $0.hasPrefix("deadletter.record.refused/") }.count == 2, "\(list.output)")
        #expect(lines.last == "2 dead letter(s) open")

        let json = try await runOnewindow(["dlq", "list", "--bus", address, "--json", "--code", "invalid-json"])
        #expect(json.status == 0, "\(json.error)")
        let objects = try json.output.split(separator: "\n").map { try JSONValue.parse(Data($0.utf8)) }
        #expect(objects.count == 1)
        let id = try #require(objects.first?[pointer: "/id"]?.stringValue)
        #expect(objects.first?[pointer: "/originalTopic"]?.stringValue == "household.death.registered")
        #expect(objects.first?[pointer: "/refusedBy"]?.stringValue == "onewindow publish")

        // Personal data is masked unless asked for: the child's resident ID in the birth.
        let births = try await runOnewindow(["dlq", "list", "--bus", address, "--json", "--code", "schema-violation"])
        let birthId = try #require(try JSONValue.parse(Data(births.output.utf8))[pointer: "/id"]?.stringValue)
        let birthShown = try await runOnewindow(["dlq", "show", "--bus", address, birthId])
        #expect(!birthShown.output.contains("440604202501150135"), "\(birthShown.output)")
        #expect(birthShown.output.contains("440604********0135"))
        let birthUnmasked = try await runOnewindow(["dlq", "show", "--bus", address, "--show-personal-data", birthId])
        #expect(birthUnmasked.output.contains("440604202501150135"))

        let wrongCode = try await runOnewindow(["dlq", "list", "--bus", address, "--code", "schema-violaton"])
        #expect(wrongCode.status == 64)
        #expect(wrongCode.error.contains("schema-violation"), "the codes are listed: \(wrongCode.error)")
        let wrongTime = try await runOnewindow(["dlq", "list", "--bus", address, "--since", "yesterday"])
        #expect(wrongTime.status == 64)
        #expect(wrongTime.error.contains("RFC 3339"))

        // show: bytes that are not UTF-8 as base64, saying so, and every dl_* header.
        let show = try await runOnewindow(["dlq", "show", "--bus", address, "--show-personal-data", id])
        #expect(show.status == 0, "\(show.error)")
        #expect(show.output.contains("not UTF-8, shown as base64"), "\(show.output)")
        #expect(show.output.contains(notUTF8.base64EncodedString()))
        for header in ["dl_code: invalid-json", "dl_reason: ", "dl_original_topic: household.death.registered", "dl_time: ",
            "dl_refused_by: onewindow publish", "ce_type: household.death.registered", "ce_source: /registry"]
        {
            #expect(show.output.contains(header), "\(header) in \(show.output)")
        }
        let masked = try await runOnewindow(["dlq", "show", "--bus", address, id])
        #expect(masked.output.contains("cannot be masked"), "\(masked.output)")
        #expect(!masked.output.contains(notUTF8.base64EncodedString()))
        #expect(try await runOnewindow(["dlq", "show", "--bus", address, "--raw", id]).status == 64, "--raw needs --show-personal-data")
        let (process, output, error) = try startOnewindow(
            ["dlq", "show", "--bus", address, "--raw", "--show-personal-data", id])
        let raw = await collect(process, output: output, error: error)
        #expect(raw.status == 0)
        #expect(raw.output == notUTF8, "--raw writes the original bytes exactly")
        let missing = try await runOnewindow(["dlq", "show", "--bus", address, "deadletter.record.refused/0/99"])
        #expect(missing.status == 66)
        #expect(missing.error.contains("no dead letter deadletter.record.refused/0/99"), "\(missing.error)")
        let malformed = try await runOnewindow(["dlq", "show", "--bus", address, "42"])
        #expect(malformed.status == 64)

        // Purge and redrive need an operator's key with the dead-letters grant; what they do is audited.
        let stores = ["ONEWINDOW_KEYS": bus.path + ".access.sqlite", "ONEWINDOW_AUDIT": bus.path + ".audit.sqlite"]
        let issued = try await runOnewindow(
            ["grants", "create", "ops-zhang", "--kind", "operator", "--grant", "dead-letters", "--key-only"], environment: stores)
        #expect(issued.status == 0, "\(issued.error)")
        let reader = try await runOnewindow(
            ["grants", "create", "datahub", "--kind", "downstream", "--grant", "read:deadletter.*", "--key-only"], environment: stores)
        var operatorKey = stores
        operatorKey["ONEWINDOW_API_KEY"] = issued.output.trimmingCharacters(in: .whitespacesAndNewlines)
        var readerKey = stores
        readerKey["ONEWINDOW_API_KEY"] = reader.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let keyless = try await runOnewindow(["dlq", "purge", "--bus", address, "--code", "invalid-json", "--yes"], environment: stores)
        #expect(keyless.status == 77, "\(keyless.error)")
        #expect(keyless.error.contains("no-key"), "\(keyless.error)")
        let ungranted = try await runOnewindow(
            ["dlq", "redrive", "--bus", address, "--code", "invalid-json"], environment: readerKey)
        #expect(ungranted.status == 77, "\(ungranted.error)")
        #expect(ungranted.error.contains("not-granted"), "\(ungranted.error)")

        // purge: refused without a filter, and without a confirmation where none can be typed.
        let unfiltered = try await runOnewindow(["dlq", "purge", "--bus", address, "--yes"], environment: operatorKey)
        #expect(unfiltered.status == 64)
        #expect(unfiltered.error.contains("purge needs a filter"), "\(unfiltered.error)")
        let unconfirmed = try await runOnewindow(["dlq", "purge", "--bus", address, "--code", "invalid-json"], environment: operatorKey)
        #expect(unconfirmed.status == 64)
        #expect(unconfirmed.error.contains("--yes"), "\(unconfirmed.error)")
        #expect(try await runOnewindow(["dlq", "list", "--bus", address]).output.hasSuffix("2 dead letter(s) open\n"))
        let purge = try await runOnewindow(
            ["dlq", "purge", "--bus", address, "--code", "invalid-json", "--yes"], environment: operatorKey)
        #expect(purge.status == 0, "\(purge.error)")
        #expect(purge.output.contains("\(id): purged"))
        #expect(purge.output.contains("1 dead letter(s) purged"))
        let after = try await runOnewindow(["dlq", "list", "--bus", address, "--all"])
        #expect(after.output.contains("STATE"))
        #expect(after.output.split(separator: "\n").contains { $0.hasPrefix(id) && $0.contains("purged") }, "\(after.output)")

        // redrive: the birth is still wrong, so it comes back with its reason (status 65).
        let redrive = try await runOnewindow(
            ["dlq", "redrive", "--bus", address, "--code", "schema-violation"], environment: operatorKey)
        #expect(redrive.status == 65, "\(redrive.error)")
        #expect(redrive.output.contains("0 went through, 1 came back"), "\(redrive.output)")
        #expect(redrive.output.contains("came back as deadletter.record.refused/"))
        let neither = try await runOnewindow(["dlq", "redrive", "--bus", address], environment: operatorKey)
        #expect(neither.status == 64, "ids, a filter or --all")
        let dead = try await readAll(bus.log, topic: "deadletter.record.refused")
        #expect(dead.count == 3)
        #expect(dead.contains { $0.value == notUTF8 }, "the original bytes are kept")
        #expect(dead.filter { $0.header("dl_redrive_of") != nil }.count == 1)

        // The audit log holds the purge and the redrive by ops-zhang, and both refusals; its chain holds.
        let audited = try await runOnewindow(["audit", "list", "--json"], environment: stores)
        let entries = audited.output.split(separator: "\n").map(String.init)
        #expect(entries.contains { $0.contains(#""action":"dlq.purge""#) && $0.contains("ops-zhang") && $0.contains(id) }, "\(audited.output)")
        #expect(entries.contains { $0.contains(#""action":"dlq.redrive""#) && $0.contains("dead-lettered-again") }, "\(audited.output)")
        #expect(entries.filter { $0.contains(#""action":"access.refused""#) }.count == 2, "\(audited.output)")
        #expect(try await runOnewindow(["audit", "verify"], environment: stores).status == 0)
    }
}
