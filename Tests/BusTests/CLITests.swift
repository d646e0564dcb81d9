import Bus
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import OneWindowCLI
import TestCleanup
import Testing
import TestSupport

/// The `onewindow` executable, run as a user runs it, on a temporary embedded bus.
@Suite("onewindow CLI", .timeLimit(.minutes(3)), .awaitedCleanup)
struct CLITests {
    @Test func twoProcessesAppendToOneFileWithoutLossOrRepeat() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
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
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let body = Data(#"{"residentId":"110101199003071234"}"#.utf8)
        let refused = try await runOnewindow(
            ["publish", "--bus", address, "--type", "household.death.registered", "--dead-letter"], input: body)
        #expect(refused.status == 65)
        #expect(refused.error.contains("/residentId"), "\(refused.error)")
        #expect(refused.error.contains("dead-letter"))
        let dead = try await readAll(bus.log, topic: "deadletter.record.refused")
        #expect(dead.count == 1)
        #expect(dead.first?.value == body)

        let validate = try await runOnewindow(["validate", "--type", "household.death.registered"], input: body)
        #expect(validate.status == 65)
        #expect(validate.error.contains("required") || validate.error.contains("format"))
    }

    @Test func subscribePrintsJSONLinesAndResumesAsAGroup() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
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

    @Test func subscribeWithMaxCommitsOnlyWhatItPrinted() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let type = "tax.payment.received"
        let published = try await runOnewindow(["publish", "--bus", address, "--example", type, "--count", "10"])
        #expect(published.status == 0, "\(published.error)")

        let group = ["subscribe", "--bus", address, "--topic", type, "--group", "clerks"]
        let first = try await runOnewindow(group + ["--max", "3"])
        #expect(first.status == 0, "\(first.error)")
        #expect(first.output.split(separator: "\n").count == 3)
        let rest = try await runOnewindow(group + ["--until-end"])
        #expect(rest.status == 0, "\(rest.error)")
        #expect(rest.output.split(separator: "\n").count == 7, "what --max cut off is read by the next run")
    }

    /// `--until-end` stops for every start position, including those with nothing to read.
    @Test(arguments: [
        (["--from", "latest"], 0), (["--from", "offset:1000"], 0), (["--from", "time:2999-01-01T00:00:00Z"], 0),
        (["--from", "offset:2"], 3), (["--from", "earliest"], 5), (["--group", "fresh", "--from", "latest"], 0),
    ])
    func untilEndStopsWherever(_ start: [String], _ expected: Int) async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let type = "household.death.registered"
        // One example body, so one key: all five land in one partition, the others stay empty.
        _ = try await runOnewindow(["publish", "--bus", address, "--example", type, "--count", "5"])
        let result = try await runOnewindow(
            ["subscribe", "--bus", address, "--topic", type, "--until-end"] + start, timeout: .seconds(30))
        #expect(result.status == 0, "subscribe \(start) did not stop by itself: \(result.error)")
        #expect(result.output.split(separator: "\n").count == expected)
    }

    /// Two `onewindow subscribe` processes in one group on one file share the partitions: every
    /// record is printed once, by one of them, and both get some.
    @Test func twoProcessesOfOneGroupShareTheTopic() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let type = "socialsecurity.contribution.paid"
        let subscribe = ["subscribe", "--bus", address, "--topic", type, "--group", "pensions"]
        let one = try startOnewindow(subscribe)
        let two = try startOnewindow(subscribe)
        // Drain their output from the start: a full pipe would stop them printing (and committing).
        let firstResult = Task { await finish(one.0, one.1, one.2, timeout: .seconds(120)) }
        let secondResult = Task { await finish(two.0, two.1, two.2, timeout: .seconds(120)) }
        // Both join and take up one assignment before anything is written, so no rebalance happens
        // while records are read (a member that joined late would re-read what the other printed
        // but had not committed yet: at-least-once, not what this test is about).
        let joined = ContinuousClock().now.advanced(by: .seconds(30))
        while try embeddedGroupMembers(path: bus.path, group: "pensions") < 2, ContinuousClock().now < joined {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try embeddedGroupMembers(path: bus.path, group: "pensions") == 2)
        try await Task.sleep(for: .seconds(1))  // a few heartbeats: both have taken up the generation
        // Records with 400 keys, so every partition gets some (the CLI's --example has one key).
        let total = 400
        for batch in 0..<4 {
            let records = (0..<(total / 4)).map { index in
                CloudEventsBinding.record(
                    for: Event(
                        id: "contribution-\(batch)-\(index)", type: type, source: "/test/batch/\(batch)",
                        subject: "person-\(batch)-\(index)", data: Data("{}".utf8)),
                    topic: type)
            }
            _ = try await bus.log.append(records)
        }
        // Wait until the group has committed everything, then stop both members.
        let deadline = ContinuousClock().now.advanced(by: .seconds(60))
        while ContinuousClock().now < deadline {
            let lag = try await bus.log.lag(group: "pensions", topics: [type]).reduce(0) { $0 + $1.lag }
            let committed = try await bus.log.committedOffsets(group: "pensions", topics: [type])
            if lag == 0, !committed.isEmpty { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        kill(one.0.processIdentifier, SIGTERM)
        kill(two.0.processIdentifier, SIGTERM)
        let (first, second) = await (firstResult.value, secondResult.value)
        #expect(first.status == 0 && second.status == 0, "SIGTERM ends them cleanly: \(first.error) \(second.error)")
        func ids(_ result: ProcessResult) throws -> [String] {
            try result.output.split(separator: "\n").map { line in
                guard case .string(let id) = try JSONValue.parse(Data(line.utf8))[pointer: "/event/id"] else {
                    throw SupportError("a line without /event/id: \(line)")
                }
                return id
            }
        }
        let (a, b) = (try ids(first), try ids(second))
        #expect(a.count + b.count == total, "every record printed once: \(a.count) + \(b.count)")
        #expect(Set(a + b).count == total)
        #expect(!a.isEmpty && !b.isEmpty, "both members got partitions: \(a.count) and \(b.count)")
    }

    /// The CLI on the Kafka test broker: apply, publish, subscribe as a group, list groups, lag.
    /// Records are published one process at a time, because the test broker's high-water mark is
    /// wrong after a multi-record produce request (../shared/KAFKA_TESTING.md) and `--until-end`
    /// reads up to it.
    @Test func commandsWorkOnKafka() async throws {
        guard let bootstrap = ProcessInfo.processInfo.environment["ONEWINDOW_TEST_KAFKA"] else {
            throw SupportError("ONEWINDOW_TEST_KAFKA is not set: run the tests with `make test`, which starts a broker")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // Faster group joins on the test broker (../shared/KAFKA_TESTING.md).
        let properties = directory.appendingPathComponent("client.properties")
        try "session.timeout.ms=6000\nheartbeat.interval.ms=500\n".write(to: properties, atomically: true, encoding: .utf8)
        let bus = ["--bus", "kafka:\(bootstrap)", "--kafka-config", properties.path]
        let run = UUID().uuidString.prefix(8).lowercased()

        let apply = try await runOnewindow(["topics", "apply"] + bus)
        #expect(apply.status == 0, "\(apply.error)")
        let list = try await runOnewindow(["topics", "list"] + bus)
        #expect(list.status == 0, "\(list.error)")
        #expect(list.output.contains("urban.signboard.approved"))
        let type = "urban.signboard.approved"
        for index in 0..<3 {
            let published = try await runOnewindow(["publish", "--example", type, "--source", "/cli/\(run)/\(index)"] + bus)
            #expect(published.status == 0, "\(published.error)")
        }
        let group = "cli-\(run)"
        let subscribe = ["subscribe", "--topic", type, "--group", group, "--until-end"] + bus
        let first = try await runOnewindow(subscribe, timeout: .seconds(90))
        #expect(first.status == 0, "\(first.error)")
        let mine = first.output.split(separator: "\n").filter { $0.contains("/cli/\(run)/") }
        #expect(mine.count == 3, "\(first.output)")
        let again = try await runOnewindow(subscribe, timeout: .seconds(90))
        #expect(again.status == 0, "\(again.error)")
        #expect(!again.output.contains("/cli/\(run)/"), "the group resumes after what it committed")

        let groups = try await runOnewindow(["groups", "list"] + bus)
        #expect(groups.output.contains(group), "\(groups.output) \(groups.error)")
        let lag = try await runOnewindow(["groups", "lag", group, "--topic", type] + bus)
        #expect(lag.output.contains("total lag: 0"), "\(lag.output) \(lag.error)")
        let unknown = try await runOnewindow(["groups", "lag", "no-such-\(run)", "--topic", type] + bus)
        #expect(unknown.status == 66, "an unknown group is an error on Kafka too: \(unknown.output) \(unknown.error)")
        let nothing = try await runOnewindow(
            ["subscribe", "--pattern", "no\\.such\\.\(run)\\..*", "--until-end"] + bus, timeout: .seconds(60))
        #expect(nothing.status == 66, "\(nothing.error)")
    }

    @Test func demoPublishesRefusesAndReadsBack() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let summary = try await DemoScenario(log: bus.log, catalog: repositoryCatalog, write: { _ in }).run()
        #expect(summary.published == DemoScenario.publishedTypes.count)
        #expect(summary.deadLettered == 1)
        #expect(summary.readBack == summary.published)
        #expect(summary.lagAfterCommit == 0)
    }

    /// `onewindow demo` as `make demo` runs it, in a folder of its own: the first part, then the
    /// restaurant from submission to completion with the departments deciding, the birth's pushes
    /// to both parents and the house transfer with its data flowing, exit status 0.
    @Test func demoTellsItsStories() async throws {
        let directory = try demoFolder()
        defer { try? FileManager.default.removeItem(at: directory) }
        let started = ContinuousClock.now
        let demo = try await runOnewindow(["demo"], environment: ["ONEWINDOW_BUS": ""], directory: directory)
        let took = ContinuousClock.now - started
        let output = demo.output
        #expect(demo.status == 0, "\(output)\n\(demo.error)")
        #expect(took < .seconds(50), "the demo took \(took)")
        #expect(output.contains("REFUSED"))
        #expect(output.contains("committed; the group's lag is now 0"))
        let lines = output.split(separator: "\n").map(String.init)
        func section(_ title: String) throws -> ArraySlice<String> {
            let start = try #require(lines.firstIndex { $0.hasPrefix("== ") && $0.contains(title) }, "\(output)")
            let end = lines[(start + 1)...].firstIndex { $0.hasPrefix("== ") } ?? lines.endIndex
            return lines[start..<end]
        }

        // The restaurant: the business licence first, then the fan-out to the five others, each decided.
        let restaurant = try section("A restaurant application")
        let licence = try #require(restaurant.firstIndex { $0.contains("→ request  market-regulation") })
        let licenceDecided = try #require(restaurant.firstIndex { $0.contains("← decision market-regulation: approved") })
        #expect(licence < licenceDecided)
        for department in ["food-safety", "fire-safety", "environment", "urban-management", "tax"] {
            let request = try #require(restaurant.firstIndex { $0.contains("→ request  \(department)") }, "\(output)")
            #expect(request > licenceDecided)
            #expect(restaurant.contains { $0.contains("← decision \(department): approved") }, "\(output)")
        }
        #expect(restaurant.contains { $0.contains("SMS requested: application-received") })
        #expect(restaurant.contains { $0.contains("SMS requested: application-completed") })
        #expect(restaurant.contains { $0.contains("one step after another it would take") })

        // The birth: a text message to each parent naming the three services pushed, with its timing.
        let birth = try section("A birth")
        for parent in ["陈慧敏", "李志强"] {
            let push = try #require(birth.firstIndex { $0.contains("✉ to \(parent)") }, "\(output)")
            #expect(birth[push].contains("s after the registration reached the bus — working day"), "\(birth[push])")
            let text = birth[push + 1]
            #expect(text.contains("\(parent)您好"), "\(text)")
            for service in ["新生儿入户", "城乡居民医疗保险参保", "预防接种预约"] {
                #expect(text.contains(service), "\(text)")
            }
        }

        // The house transfer: the four steps in order, the assessed price of the valuation in the
        // tax request, the deed tax on it, the tax certificate to the registration, the new certificate.
        let house = try section("A house transfer")
        let items = ["contract-filing", "valuation", "tax-assessment-clearance", "transfer-registration"]
        let requests = try items.map { item in
            try #require(house.firstIndex { $0.contains("→ request") && $0.contains(": \(item),") }, "\(output)")
        }
        #expect(requests == requests.sorted())
        // Each request is followed by an approval. The demo prints what its followers of the
        // request and decision topics see as they see it, so on a loaded machine a decision's line
        // can come after the next request's (seen twice on 2026-11-29): the order of the requests
        // is the workflow's, the lines between them are not a timeline.
        let approvals = house.indices.filter { house[$0].contains("← decision") && house[$0].contains(": approved") }
        #expect(approvals.count >= items.count, "\(output)")
        for request in requests {
            #expect(approvals.contains { $0 > request }, "\(output)")
        }
        let assessed = try #require(
            house.first { $0.contains("← decision real-estate") && $0.contains("; assessed price ¥") }, "\(output)")
        let price = try #require(assessed.components(separatedBy: "assessed price ").last?.components(separatedBy: " ").first)
        #expect(house.contains { $0.contains("→ request  tax") && $0.contains("carries the assessed price \(price) from the valuation") }, "\(output)")
        #expect(house.contains { $0.contains("← decision tax: approved") && $0.contains("deed tax ¥") }, "\(output)")
        #expect(house.contains { $0.contains("carries the tax certificate 244066") }, "\(output)")
        #expect(house.contains { $0.contains("粤(") && $0.contains("new property certificate") }, "\(output)")
        #expect(house.contains { $0.contains("completed in") && $0.contains("working days") })
        #expect(house.contains { $0.contains("formerly (the seeds): 3 working days of price check + 7 of tax") })
        #expect(output.contains("Every step happened."))
    }

    /// A department that never answers (its connector delivers no requests): each story waiting
    /// for it gives up once nothing came for its idle limit, the demo exits 1 and names the
    /// decisions missing, each with its story.
    @Test func demoFailsNamingWhatIsMissing() async throws {
        let directory = try demoFolder()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tax = directory.appendingPathComponent("Connectors/tax.yaml")
        let text = try String(contentsOf: tax, encoding: .utf8)
        let withoutSinks = try #require(text.components(separatedBy: "sinks:").first) + "sinks: []\n"
        try withoutSinks.write(to: tax, atomically: true, encoding: .utf8)
        let demo = try await runOnewindow(
            ["demo"], environment: ["ONEWINDOW_BUS": ""], directory: directory, timeout: .seconds(90))
        #expect(demo.status == 1, "\(demo.output)\n\(demo.error)")
        #expect(demo.output.contains("→ request  tax"))
        #expect(!demo.output.contains("Every step happened."))
        #expect(demo.error.contains("missing: the decision of tax"), "\(demo.error)")
        // The house transfer waits for the tax bureau too; the birth does not.
        #expect(demo.error.contains("the decision of tax-assessment-clearance (house transfer)"), "\(demo.error)")
        #expect(!demo.error.contains("birth"), "\(demo.error)")
    }

    /// A temporary folder with the repository's Topics, Rules and Connectors, to run the demo in.
    func demoFolder() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-demo-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for folder in ["Topics", "Rules", "Connectors"] {
            try FileManager.default.copyItem(
                at: repositoryRoot.appendingPathComponent(folder), to: directory.appendingPathComponent(folder))
        }
        return directory
    }
}
