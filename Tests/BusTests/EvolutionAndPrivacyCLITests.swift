import EventSchemas
import Foundation
import Logging
import OneWindowCLI
import TestCleanup
import Testing
import TestSupport

/// `onewindow topics check` against a real git revision, and personal data masked in what the CLI
/// prints and logs.
@Suite("onewindow topics check and personal data", .timeLimit(.minutes(3)), .awaitedCleanup)
struct EvolutionAndPrivacyCLITests {
    /// A git repository in a temporary folder holding a copy of the catalog, committed and tagged v1.
    struct Repository {
        let root: URL
        var topics: URL { root.appendingPathComponent("Topics") }

        init() async throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("evolution-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("Topics"), to: root.appendingPathComponent("Topics"))
            try await git("init", "--quiet")
            try await git("add", "Topics")
            try await git("commit", "--quiet", "-m", "the catalog as released")
            try await git("tag", "v1")
        }

        func git(_ arguments: String...) async throws {
            let result = try await runProgram(
                "git", ["-C", root.path, "-c", "user.name=Test", "-c", "user.email=test@example.org"] + arguments)
            guard result.status == 0 else {
                throw SupportError("git \(arguments.joined(separator: " ")): \(String(decoding: result.error, as: UTF8.self))")
            }
        }

        /// Rewrites one schema file's JSON.
        func editSchema(_ type: String, _ edit: (inout [String: Any]) -> Void) throws {
            let file = topics.appendingPathComponent("schemas/\(type).json")
            var schema = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
            edit(&schema)
            try JSONSerialization.data(withJSONObject: schema, options: [.prettyPrinted, .sortedKeys]).write(to: file)
        }

        func check(against reference: String) async throws -> ProcessResult {
            try await runOnewindow(["topics", "check", "--against", reference, "--catalog", topics.path])
        }

        func remove() { try? FileManager.default.removeItem(at: root) }
    }

    @Test func aGitRevisionIsComparedAndABreakingChangeRefused() async throws {
        let repository = try await Repository()
        defer { repository.remove() }
        let type = "household.death.registered"

        let unchanged = try await repository.check(against: "v1")
        #expect(unchanged.status == 0, "\(unchanged.error)")
        #expect(unchanged.output.contains("compatible with v1"), "\(unchanged.output)")

        // Additive: a new optional field, committed on top of the tag.
        try repository.editSchema(type) { schema in
            var properties = schema["properties"] as! [String: Any]
            properties["placeOfDeath"] = ["type": "string"]
            schema["properties"] = properties
        }
        try await repository.git("commit", "--quiet", "-am", "an optional field")
        let additive = try await repository.check(against: "v1")
        #expect(additive.status == 0, "\(additive.output)\(additive.error)")

        // Breaking, not committed: the date of death no longer required is fine, but the
        // resident ID removed is not.
        try repository.editSchema(type) { schema in
            var properties = schema["properties"] as! [String: Any]
            properties["residentId"] = nil
            schema["properties"] = properties
            schema["required"] = (schema["required"] as! [String]).filter { $0 != "residentId" }
        }
        let breaking = try await repository.check(against: "v1")
        #expect(breaking.status == 1, "\(breaking.output)\(breaking.error)")
        #expect(
            breaking.output.split(separator: "\n").contains(
                "\(type): schemas/\(type).json#/properties/residentId: field /residentId removed"), "\(breaking.output)")
        #expect(breaking.error.contains("1 breaking change(s) against v1"), "\(breaking.error)")

        let head = try await repository.check(against: "HEAD")
        #expect(head.status == 1, "the working tree against the last commit: the same removal")

        let unknown = try await repository.check(against: "v9")
        #expect(unknown.status == 66, "\(unknown.error)")
        #expect(unknown.error.contains("v9 is neither a folder nor a git revision"), "\(unknown.error)")
    }

    @Test func aFolderIsCompared() async throws {
        let repository = try await Repository()
        defer { repository.remove() }
        let previous = repository.root.appendingPathComponent("previous")
        try FileManager.default.copyItem(at: repository.topics, to: previous)
        try repository.editSchema("tax.payment.received") { schema in
            var properties = schema["properties"] as! [String: Any]
            var amount = properties["amountFen"] as! [String: Any]
            amount["maximum"] = 100
            properties["amountFen"] = amount
            schema["properties"] = properties
        }
        let result = try await repository.check(against: previous.path)
        #expect(result.status == 1)
        #expect(
            result.output.contains("tax.payment.received: schemas/tax.payment.received.json#/properties/amountFen/maximum: maximum 100 added to field /amountFen"),
            "\(result.output)")
    }

    @Test func subscribeMasksPersonalDataUnlessAskedToShowIt() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let address = "embedded:\(bus.path)"
        _ = try await runOnewindow(["topics", "apply", "--bus", address])
        let type = "household.birth.registered"
        let published = try await runOnewindow(["publish", "--bus", address, "--example", type])
        #expect(published.status == 0, "\(published.error)")
        let example = try #require(TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics")).schemas[type]?.examples.first)
        let residentId = try #require(example[pointer: "/child/residentId"]?.stringValue)
        let name = try #require(example[pointer: "/child/name"]?.stringValue)

        let subscribe = ["subscribe", "--bus", address, "--topic", type, "--until-end"]
        let masked = try await runOnewindow(subscribe)
        #expect(masked.status == 0, "\(masked.error)")
        let line = try JSONValue.parse(Data(masked.output.utf8))
        #expect(line[pointer: "/data/child/residentId"] == .string(String(residentId.prefix(6)) + "********" + String(residentId.suffix(4))))
        #expect(line[pointer: "/data/child/name"] == .string(String(name.prefix(1)) + String(repeating: "*", count: name.count - 1)))
        #expect(line[pointer: "/key"] == line[pointer: "/data/child/residentId"], "the key is the resident ID, masked too")
        #expect(!masked.output.contains(residentId))

        let shown = try await runOnewindow(subscribe + ["--show-personal-data"])
        let plain = try JSONValue.parse(Data(shown.output.utf8))
        #expect(plain[pointer: "/data/child/residentId"] == .string(residentId))
        #expect(plain[pointer: "/data/child/name"] == .string(name))
    }

    @Test func logLinesAreMasked() {
        let lines = LockedLines()
        var logger = Logger(label: "test") { _ in MaskingLogHandler(wrapping: CollectingLogHandler(lines: lines)) }
        logger[metadataKey: "mobile"] = "13800138000"
        logger.info(
            "refused 440602199003071233 from 13912345678",
            metadata: ["residentId": "440602199003071233", "applicantName": "王小明", "topic": "tax.payment.received"])
        let line = lines.all.first ?? ""
        #expect(line.contains("refused 440602********1233 from 139****5678"), "\(line)")
        #expect(line.contains("residentId=440602********1233"), "\(line)")
        #expect(line.contains("applicantName=王**"), "\(line)")
        #expect(line.contains("mobile=138****8000"), "the handler's own metadata: \(line)")
        #expect(line.contains("topic=tax.payment.received"), "\(line)")
        #expect(!line.contains("440602199003071233") && !line.contains("王小明"), "\(line)")
    }
}

/// Lines a test's log handler wrote.
final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

/// Writes each event as `message key=value…` (metadata sorted) into ``LockedLines``.
struct CollectingLogHandler: LogHandler {
    let lines: LockedLines
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let text = all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        lines.append("\(event.message) \(text)")
    }
}
