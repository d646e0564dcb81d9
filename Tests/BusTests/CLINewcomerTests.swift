import ArgumentParser
import Bus
import EventLog
import EventSchemas
import Foundation
import OneWindowCLI
import TestCleanup
import Testing
import TestSupport

/// A newcomer's first ten minutes with `onewindow` (issue 8): no log created by accident, errors
/// that say why with the right usage and status, help that reads well, the fields of an event type.
@Suite("onewindow CLI, first ten minutes", .timeLimit(.minutes(3)), .awaitedCleanup)
struct CLINewcomerTests {
    /// A temporary folder, removed by `remove()`.
    struct Scratch {
        let directory: URL
        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "onewindow-cli-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    // MARK: Never create a log by accident

    /// Every command that reads or publishes refuses a log that does not exist, names it, says
    /// how to create it, and creates neither the file nor its folder.
    @Test(arguments: [
        ["topics", "list"], ["topics", "describe", "household.birth.registered"], ["topics", "maintain"],
        ["subscribe", "--topic", "household.birth.registered", "--until-end"],
        ["subscribe", "--pattern", "household\\..*", "--until-end"], ["groups", "list"], ["groups", "lag", "g"],
        ["groups", "seek", "g", "--topic", "household.birth.registered", "--to", "earliest", "--create"],
        ["publish", "--example", "household.birth.registered"],
    ])
    func readingCommandsRefuseAMissingLog(_ command: [String]) async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let folder = scratch.path("nonexistent/dir")
        let path = folder + "/x.sqlite"
        let result = try await runOnewindow(command + ["--bus", "embedded:\(path)"])
        #expect(result.status == 66, "\(command): \(result.error)")
        #expect(result.error.contains("no embedded log at \(path)"), "\(result.error)")
        #expect(result.error.contains("onewindow topics apply --bus embedded:\(path)"), "\(result.error)")
        #expect(!result.error.contains("Usage:"), "a missing log is not a usage error")
        #expect(!FileManager.default.fileExists(atPath: folder), "\(command) created \(folder)")
    }

    /// A missing log given through ONEWINDOW_BUS is refused the same way.
    @Test func aMissingLogFromTheEnvironmentIsRefused() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("typo.sqlite")
        let result = try await runOnewindow(
            ["subscribe", "--topic", "tax.payment.received", "--until-end"], environment: ["ONEWINDOW_BUS": "embedded:\(path)"])
        #expect(result.status == 66, "\(result.error)")
        #expect(result.error.contains(path))
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    /// `topics apply` is what creates a log, folder included.
    @Test func topicsApplyCreatesTheLog() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("new/folder/bus.sqlite")
        let apply = try await runOnewindow(["topics", "apply", "--bus", "embedded:\(path)"])
        #expect(apply.status == 0, "\(apply.error)")
        #expect(FileManager.default.fileExists(atPath: path))
        let list = try await runOnewindow(["topics", "list", "--bus", "embedded:\(path)"])
        #expect(list.status == 0, "\(list.error)")
        #expect(list.output.contains("household.birth.registered"))
    }

    /// A bus value without its scheme is refused (status 64), from `--bus` or `ONEWINDOW_BUS`,
    /// and no file of that name appears.
    @Test func aBusAddressNeedsItsScheme() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let fromEnvironment = try await runOnewindow(
            ["topics", "apply"], environment: ["ONEWINDOW_BUS": "bogus", "ONEWINDOW_TOPICS": repositoryRoot.path + "/Topics"],
            directory: scratch.directory)
        #expect(fromEnvironment.status == 64, "\(fromEnvironment.error)")
        #expect(fromEnvironment.error.contains("embedded:bogus"), "suggests the scheme: \(fromEnvironment.error)")
        #expect(fromEnvironment.error.contains("Usage: onewindow topics apply"), "\(fromEnvironment.error)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.directory.path).isEmpty)

        let fromOption = try await runOnewindow(
            ["topics", "list", "--bus", scratch.path("bus.sqlite")], directory: scratch.directory)
        #expect(fromOption.status == 64, "\(fromOption.error)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.directory.path).isEmpty)
    }

    @Test func busAddressParsingNeedsTheScheme() throws {
        #expect(throws: BusAddressError.self) { try BusAddress(parsing: "bogus") }
        #expect(throws: BusAddressError.self) { try BusAddress(parsing: "/tmp/x.sqlite") }
        #expect(try BusAddress(parsing: "embedded:/tmp/x.sqlite") == .embedded(path: "/tmp/x.sqlite"))
        let missing = #expect(throws: LogError.self) {
            try BusAddress.embedded(path: "/nonexistent-\(UUID().uuidString)/x.sqlite").open(create: false)
        }
        #expect(missing?.code == .logNotFound)
    }

    // MARK: subscribe --until-end with a pattern that matches nothing

    @Test func untilEndWithAPatternThatMatchesNothingSaysSoAndExits() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let result = try await runOnewindow(
            ["subscribe", "--bus", address, "--pattern", "houshold\\..*", "--until-end"], timeout: .seconds(20))
        #expect(result.status == 66, "\(result.error)")
        #expect(result.error.contains("no topic on the bus matches --pattern 'houshold\\..*'"), "\(result.error)")

        let matching = try await runOnewindow(
            ["subscribe", "--bus", address, "--pattern", "household\\..*", "--until-end"], timeout: .seconds(20))
        #expect(matching.status == 0, "a pattern that matches still reads to the end: \(matching.error)")
    }

    // MARK: groups lag / seek on an unknown group

    @Test func groupsLagAndSeekRefuseAnUnknownGroup() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        let type = "tax.payment.received"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        _ = try await runOnewindow(["publish", "--bus", address, "--example", type])
        _ = try await runOnewindow(["subscribe", "--bus", address, "--topic", type, "--group", "auditors", "--until-end"])

        let lag = try await runOnewindow(["groups", "lag", "auditers", "--bus", address])
        #expect(lag.status == 66, "\(lag.output) \(lag.error)")
        #expect(lag.error.contains("no consumer group auditers"), "\(lag.error)")
        #expect(lag.error.contains("auditors"), "names the groups there are: \(lag.error)")
        #expect(lag.output.isEmpty, "no empty table")

        let seek = ["groups", "seek", "replay", "--bus", address, "--topic", type, "--to", "earliest"]
        let refused = try await runOnewindow(seek)
        #expect(refused.status == 66, "\(refused.error)")
        #expect(refused.error.contains("--create"), "\(refused.error)")
        #expect(try await bus.log.listGroups() == ["auditors"], "no phantom group")

        let created = try await runOnewindow(seek + ["--create"])
        #expect(created.status == 0, "\(created.error)")
        #expect(try await bus.log.listGroups() == ["auditors", "replay"])
        let known = try await runOnewindow(["groups", "lag", "auditors", "--bus", address])
        #expect(known.status == 0, "\(known.error)")
        #expect(known.output.contains("total lag: 0"))
    }

    // MARK: Errors: usage of the failing subcommand, the reason, one status per cause

    /// A usage error found while a command runs shows that subcommand's usage, not the root's.
    @Test func aUsageErrorShowsTheSubcommandsUsage() async throws {
        let maintain = try await runOnewindow(["topics", "maintain", "--bus", "kafka:127.0.0.1:1"])
        #expect(maintain.status == 64, "\(maintain.error)")
        #expect(maintain.error.contains("Usage: onewindow topics maintain"), "\(maintain.error)")
        #expect(maintain.error.contains("See 'onewindow topics maintain --help'"), "\(maintain.error)")

        let parse = try await runOnewindow(["groups", "seek", "g", "--to", "earliest"])
        #expect(parse.status == 64, "\(parse.error)")
        #expect(parse.error.contains("Usage: onewindow groups seek"), "\(parse.error)")
    }

    /// One function gives the status of every error, the same for the same cause.
    @Test func oneStatusPerCause() {
        #expect(ExitStatus.of(ValidationError("x")) == .usage)
        #expect(ExitStatus.of(BusAddressError(text: "bogus", problem: "no scheme")) == .usage)
        #expect(ExitStatus.of(ValidationFailure(.schemaViolation, "x")) == .refused)
        #expect(ExitStatus.of(LogError(.logNotFound, "no log")) == .notFound)
        #expect(ExitStatus.of(LogError.unknownTopic("t")) == .notFound)
        #expect(ExitStatus.of(LogError(.brokerUnreachable, "down", isRetriable: true)) == .unavailable)
        #expect(ExitStatus.of(LogError(.timedOut, "slow", isRetriable: true)) == .temporary)
        #expect(ExitStatus.of(LogError(.groupBusy, "busy", isRetriable: true)) == .temporary)
        #expect(ExitStatus.of(LogError(.authorizationFailed, "no")) == .permission)
        #expect(ExitStatus.of(LogError(.recordTooLarge, "big")) == .refused)
        #expect(ExitStatus.of(LogError(.storage, "disk full")) == .ioError)
        #expect(ExitStatus.of(CatalogError(file: "catalog.yaml", location: "", problem: "x")) == .configuration)
        #expect(ExitStatus.of(CocoaError(.fileReadUnknown)) == .failure)
    }

    /// The bus's own refusals keep their status through the CLI: an unknown topic is 66, a
    /// Kafka bus nobody answers 69.
    @Test func busErrorsEndWithTheirStatus() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let topic = try await runOnewindow(["subscribe", "--bus", address, "--topic", "no.such.topic", "--until-end"])
        #expect(topic.status == 66, "\(topic.error)")
        #expect(topic.error.contains("no.such.topic"))

        let kafka = try await runOnewindow(["topics", "list", "--bus", "kafka:127.0.0.1:1"], timeout: .seconds(60))
        #expect(kafka.status == 69, "\(kafka.error)")
        // One message, the command's: librdkafka's own connection lines are kept out of a one-shot command.
        let lines = kafka.error.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        #expect(lines.count == 1 && lines[0].hasPrefix("Error: "), "\(kafka.error)")

        let scratch = try Scratch()
        defer { scratch.remove() }
        let kafkaBus = ["topics", "list", "--bus", "kafka:127.0.0.1:1", "--kafka-config"]
        let missing = try await runOnewindow(kafkaBus + [scratch.path("client.properties")])
        #expect(missing.status == 66, "\(missing.error)")
        #expect(missing.error.contains("client.properties: No such file or directory"), "\(missing.error)")
        try "security.protocol SASL_SSL\n".write(toFile: scratch.path("bad.properties"), atomically: true, encoding: .utf8)
        let malformed = try await runOnewindow(kafkaBus + [scratch.path("bad.properties")])
        #expect(malformed.status == 78, "\(malformed.error)")
        #expect(malformed.error.contains("bad.properties:1"), "\(malformed.error)")
    }

    /// A missing file is named with the system's reason, status 66, without a usage block.
    @Test(arguments: [["validate", "--type", "household.death.registered"], ["publish", "--type", "household.death.registered"]])
    func aMissingBodyFileSaysWhy(_ command: [String]) async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let result = try await runOnewindow(command + ["--bus", "embedded:\(bus.path)", "missing.json"])
        #expect(result.status == 66, "\(result.error)")
        #expect(result.error.contains("missing.json: No such file or directory"), "\(result.error)")
        #expect(!result.error.contains("Usage:"))
    }

    /// A refused body ends `validate` and `publish` with 65, and `validate` names no made-up id.
    @Test func refusedInputIsStatus65AndValidateInventsNoId() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let body = Data(#"{"residentId":"110101199003071234"}"#.utf8)
        let validate = try await runOnewindow(["validate", "--type", "household.death.registered"], input: body)
        #expect(validate.status == 65, "\(validate.error)")
        #expect(validate.error.contains("event of type household.death.registered refused"), "\(validate.error)")
        let uuid = try Regex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        #expect(validate.error.firstMatch(of: uuid) == nil, "an id nobody gave: \(validate.error)")
        #expect(validate.error.contains("onewindow topics example household.death.registered"))

        let publish = try await runOnewindow(
            ["publish", "--bus", address, "--type", "household.death.registered"], input: body)
        #expect(publish.status == 65, "\(publish.error)")
        #expect(publish.error.firstMatch(of: uuid) == nil, "\(publish.error)")
    }

    /// `validate` and `publish` take the body the same way: a file argument, `-` or nothing for
    /// standard input; `publish --file` still works.
    @Test func validateAndPublishTakeTheBodyTheSameWay() async throws {
        let bus = try TemporaryBus()
        let scratch = try Scratch()
        defer {
            scratch.remove()
            Task { await bus.tearDown() }
        }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let type = "tax.payment.received"
        let example = try await runOnewindow(["topics", "example", type, "--body"])
        #expect(example.status == 0, "\(example.error)")
        let file = scratch.path("payment.json")
        try Data(example.output.utf8).write(to: URL(fileURLWithPath: file))
        let body = Data(example.output.utf8)
        for command in [["validate", "--type", type], ["publish", "--bus", address, "--type", type]] {
            for (extra, input) in [([file], nil), (["-"], body), ([], body)] as [([String], Data?)] {
                let result = try await runOnewindow(command + extra, input: input)
                #expect(result.status == 0, "\(command + extra): \(result.error)")
            }
        }
        let old = try await runOnewindow(["publish", "--bus", address, "--type", type, "--file", file])
        #expect(old.status == 0, "\(old.error)")
        #expect(try await readAll(bus.log, topic: type).count == 4)
    }

    // MARK: Help and version

    @Test func versionIsPrinted() async throws {
        let result = try await runOnewindow(["--version"])
        #expect(result.status == 0)
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == oneWindowVersion)
    }

    /// Every command of this module, found from the root.
    static var commands: [(path: [String], type: any ParsableCommand.Type)] {
        var result: [(path: [String], type: any ParsableCommand.Type)] = []
        func walk(_ type: any ParsableCommand.Type, _ path: [String]) {
            result.append((path, type))
            for child in type.configuration.subcommands { walk(child, path + [child._commandName]) }
        }
        walk(OneWindowCommand.self, [])
        return result
    }

    /// The commands this suite checks the help of (connector and dept-sim have their own owners).
    static let helpCommands = commands

    /// No option states its default twice (swift-argument-parser prints "(default: …)" itself).
    @Test func defaultsArePrintedOnce() async throws {
        for command in Self.helpCommands {
            let help = OneWindowCommand.helpMessage(for: command.type, columns: 80)
            var blocks: [String] = []
            for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("  -") || line.hasPrefix("  <") || blocks.isEmpty {
                    blocks.append(String(line))
                } else {
                    blocks[blocks.count - 1] += " " + line
                }
            }
            for block in blocks {
                let count = block.lowercased().components(separatedBy: "default:").count - 1
                #expect(count <= 1, "\(command.path.joined(separator: " ")): \(block)")
            }
        }
    }

    /// Each example of a command's help is one line at 80 columns, not wrapped mid-command.
    @Test func helpExamplesDoNotWrapAt80Columns() async throws {
        for command in Self.helpCommands {
            let discussion = command.type.configuration.discussion
            let examples = discussion.split(separator: "\n").filter { $0.hasPrefix("  ") }
                .map { $0.trimmingCharacters(in: .whitespaces) }
            let help = OneWindowCommand.helpMessage(for: command.type, columns: 80)
            let lines = Set(help.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
            for example in examples {
                #expect(lines.contains(example), "\(command.path.joined(separator: " ")): wrapped: \(example)")
            }
        }
        // The executable honours COLUMNS too.
        let help = try await runOnewindow(["help", "subscribe"], environment: ["COLUMNS": "80"])
        #expect(help.output.contains("  onewindow subscribe --topic household.birth.registered --until-end\n"))
    }

    // MARK: The fields of an event type

    @Test func topicsExampleShowsTheFieldsAndAnExample() async throws {
        let result = try await runOnewindow(["topics", "example", "household.birth.registered"])
        #expect(result.status == 0, "\(result.error)")
        let lines = result.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        func row(_ field: String) -> [Substring]? { lines.first { $0.first.map(String.init) == field } }
        #expect(row("/child/residentId")?.prefix(5) == ["/child/residentId", "yes", "string", "format", "cn-resident-id"])
        #expect(row("/child/gender")?.joined(separator: " ") == "/child/gender yes string one of male, female")
        #expect(row("/father")?.dropFirst().first == "no")
        #expect(row("/father/name")?.dropFirst().prefix(2) == ["with", "/father"])
        #expect(row("/registeredAt")?.joined(separator: " ") == "/registeredAt yes string format date-time")
        #expect(result.output.contains("\"residentId\": \"440604202501150134\""), "the example body")

        let restaurant = try await runOnewindow(["topics", "example", "application.restaurant.submitted"])
        #expect(
            restaurant.output.split(separator: "\n").contains {
                $0.split(separator: " ").joined(separator: " ") == "/materials/*/source yes string one of submitted, shared-data"
            }, "\(restaurant.output)")

        // A type that is not a topic's name: `topics describe` shows the same.
        let describe = try await runOnewindow(["topics", "describe", "approval.decided"])
        #expect(describe.status == 0, "\(describe.error)")
        #expect(describe.output.contains("FIELD"))
        #expect(describe.output.contains("topic:       approval.tax.decided"))

        let unknown = try await runOnewindow(["topics", "example", "household.birth.registerd"])
        #expect(unknown.status == 66)
        #expect(unknown.error.contains("household.birth.registered"), "lists the types: \(unknown.error)")
    }

    /// The example body `--body` prints is valid for its type, for every type of the catalog.
    @Test func everyExampleBodyValidates() async throws {
        for type in repositoryCatalog.eventTypes where repositoryCatalog.schemas[type]?.examples.isEmpty == false {
            let body = try await runOnewindow(["topics", "example", type, "--body"])
            #expect(body.status == 0, "\(type): \(body.error)")
            let validate = try await runOnewindow(["validate", "--type", type], input: Data(body.output.utf8))
            #expect(validate.status == 0, "\(type): \(validate.error)")
        }
    }

    // MARK: The container image

    /// The image's runtime stage has every folder the commands read from their working directory
    /// by default: the catalog, the connector files, and the rules with the working-day calendar
    /// (without it `dept-sim --decide` in compose.yaml cannot start).
    @Test func theImageCarriesEveryFolderTheCommandsRead() throws {
        let dockerfile = try String(contentsOf: repositoryRoot.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let runtime = try #require(dockerfile.components(separatedBy: "\nFROM ").last)
        let copied = runtime.split(separator: "\n").filter { $0.hasPrefix("COPY ") && !$0.contains("--from") }
            .compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
        for folder in ["Topics", "Connectors", "Rules"] {
            #expect(copied.contains(folder), "the runtime image lacks \(folder)/: \(copied)")
        }
    }

    // MARK: The README

    /// Every `onewindow` command line of the README's command section parses, and the quick
    /// start's alias does not name a build folder.
    @Test func theReadmeCommandsParse() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "## The `onewindow` command") else {
            throw SupportError("README.md has no section on the onewindow command")
        }
        let section = readme[start.upperBound...]
        let end = section.range(of: "\n## ")?.lowerBound ?? section.endIndex
        var checked = 0
        for rawLine in section[..<end].split(separator: "\n") {
            var line = String(rawLine)
            if let pipe = line.range(of: "| onewindow ") { line = String(line[pipe.lowerBound...].dropFirst(2)) }
            guard line.hasPrefix("onewindow ") else { continue }
            if let comment = line.range(of: "  #") { line = String(line[..<comment.lowerBound]) }
            let words = try Self.shellWords(line).dropFirst()
            if ["connector", "dept-sim", "--version"].contains(words.first ?? "") { continue }
            #expect(throws: Never.self, "\(line)") { _ = try OneWindowCommand.parseAsRoot(Array(words)) }
            checked += 1
        }
        #expect(checked >= 10)
        #expect(!section[..<end].contains("alias onewindow=.build/debug"), "the alias works for a release build too")
    }

    /// Splits a command line at spaces outside single or double quotes, up to a redirection or
    /// pipe (`>`, `|`).
    static func shellWords(_ line: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        for character in line {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                inWord = true
            } else if character == ">" || character == "|" {
                break
            } else if character == " " {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if quote != nil { throw SupportError("unbalanced quotes in \(line)") }
        if inWord { words.append(current) }
        return words
    }
}
