import Bus
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import OneWindowCLI
import Testing

/// The `onewindow` executable, run as a user runs it, on a temporary embedded bus.
@Suite("onewindow CLI", .timeLimit(.minutes(3)))
struct CLITests {
    @Test func twoProcessesAppendToOneFileWithoutLossOrRepeat() async throws {
        let bus = try TemporaryBus()
        defer { Task { await bus.tearDown() } }
        let address = "embedded:\(bus.path)"
        let apply = try await runOnewindow(["topics", "apply", "--bus", address])
        #expect(apply.status == 0, "\(apply.error)")
        let type = "socialsecurity.contribution.paid"
        let arguments = ["publish", "--bus", address, "--example", type, "--count", "1500"]
        let first = try startOnewindow(arguments + ["--source", "/process/one"])
        let second = try startOnewindow(arguments + ["--source", "/process/two"])
        let (one, two) = await (finish(first.0, first.1, first.2), finish(second.0, second.1, second.2))
        #expect(one.status == 0, "\(one.error)")
        #expect(two.status == 0, "\(two.error)")
        let lines = (one.output + two.output).split(separator: "\n")
        #expect(lines.count == 3000)

        let records = try await readAll(bus.log, topic: type)
        #expect(records.count == 3000)
        let ids = Set(records.compactMap { $0.header("ce_id") })
        #expect(ids.count == 3000, "every event once")
        let positions = Set(records.map(\.position))
        #expect(positions.count == 3000)
        let sources = Dictionary(grouping: records) { $0.header("ce_source") ?? "" }.mapValues(\.count)
        #expect(sources == ["/process/one": 1500, "/process/two": 1500])
    }

    @Test func publishRefusesABadBodyWithTheFieldAndRule() async throws {
        let bus = try TemporaryBus()
        defer { Task { await bus.tearDown() } }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let body = Data(#"{"residentId":"110101199003071234"}"#.utf8)
        let refused = try await runOnewindow(
            ["publish", "--bus", address, "--type", "household.death.registered", "--dead-letter"], input: body)
        #expect(refused.status == 1)
        #expect(refused.error.contains("/residentId"), "\(refused.error)")
        #expect(refused.error.contains("dead-letter"))
        let dead = try await readAll(bus.log, topic: "deadletter.record.refused")
        #expect(dead.count == 1)
        #expect(dead.first?.value == body)

        let validate = try await runOnewindow(["validate", "--type", "household.death.registered"], input: body)
        #expect(validate.status == 1)
        #expect(validate.error.contains("required") || validate.error.contains("format"))
    }

    @Test func subscribePrintsJSONLinesAndResumesAsAGroup() async throws {
        let bus = try TemporaryBus()
        defer { Task { await bus.tearDown() } }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let type = "tax.payment.received"
        let published = try await runOnewindow(["publish", "--bus", address, "--example", type, "--count", "3"])
        #expect(published.status == 0, "\(published.error)")

        let subscribe = ["subscribe", "--bus", address, "--topic", type, "--group", "auditors", "--until-end"]
        let first = try await runOnewindow(subscribe)
        #expect(first.status == 0, "\(first.error)")
        let lines = first.output.split(separator: "\n")
        #expect(lines.count == 3)
        let line = try JSONValue.parse(Data(lines[0].utf8))
        #expect(line[pointer: "/event/type"] == .string(type))
        #expect(line[pointer: "/topic"] == .string(type))
        #expect(line[pointer: "/headers/ce_specversion"] == .string("1.0"))
        #expect(line[pointer: "/data"]?.objectValue != nil, "the body is printed as JSON")

        _ = try await runOnewindow(["publish", "--bus", address, "--example", type])
        let second = try await runOnewindow(subscribe)
        #expect(second.output.split(separator: "\n").count == 1, "the group resumes after what it committed")

        let lag = try await runOnewindow(["groups", "lag", "auditors", "--bus", address, "--topic", type])
        #expect(lag.output.contains("total lag: 0"), "\(lag.output)")
    }

    @Test func demoPublishesRefusesAndReadsBack() async throws {
        let bus = try TemporaryBus()
        defer { Task { await bus.tearDown() } }
        let summary = try await DemoScenario(log: bus.log, catalog: repositoryCatalog, write: { _ in }).run()
        #expect(summary.published == DemoScenario.publishedTypes.count)
        #expect(summary.deadLettered == 1)
        #expect(summary.readBack == summary.published)
        #expect(summary.lagAfterCommit == 0)
    }
}
