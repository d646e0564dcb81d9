import ArgumentParser
import EventSchemas
import Foundation

extension TopicsCommand {
    /// `onewindow topics check --against REF`: refuses catalog and schema changes that break the
    /// readers of events already on the log.
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare the catalog and schemas with a previous version; refuse changes that break existing readers.",
            discussion: """
                REF is a folder (a catalog folder holding catalog.yaml, or a checkout holding \
                Topics/catalog.yaml) or a git revision (a tag, a branch, a commit), read with \
                `git show REF:<catalog folder>/…` from the repository the catalog folder is in.

                A change is compatible when every event the previous version accepted is still \
                accepted, on the same topic, key and partition. Breaking: a topic removed or its \
                key, partition count or compaction changed; an event type dropped from a topic; a \
                field removed or made required, a new required field; a type narrowed (a type \
                dropped, number → integer); an enum value removed; a pattern or format added or \
                changed; a length, value or item bound tightened; additionalProperties: false \
                added. Accepted: new topics, types, optional fields, enum values, widened types \
                or bounds, retention and descriptions.

                One line per problem on standard output:
                  TOPIC: FILE#SCHEMA-POINTER: CHANGE      (a schema change)
                  TOPIC: catalog.yaml KEY: CHANGE         (a catalog change)

                Exit status: 0 compatible; 1 breaking changes found (listed); 66 REF is neither a \
                folder nor a git revision, or git is missing; 78 either version of the catalog \
                does not load.
                Examples:
                  onewindow topics check --against v0.10.0
                  onewindow topics check --against ../onewindow-release/Topics
                """)
        @OptionGroup var options: BusOptions
        @Option(help: "The previous version: a git revision or a folder.") var against: String

        func run() async throws {
            let current = try options.loadCatalog()
            let previous = try PreviousCatalog.load(against, catalogDirectory: options.catalogDirectory)
            let problems = current.breakingChanges(since: previous)
            guard !problems.isEmpty else {
                print("compatible with \(against): \(previous.topics.count) topic(s) compared, no breaking change")
                return
            }
            for problem in problems { print(problem.description) }
            printError(
                "\(problems.count) breaking change(s) against \(against): readers of the events already on the log would break. Keep the old field, type or bound (add rather than change), or publish the new shape on a new topic or event type.")
            throw ExitCode(ExitStatus.failure.rawValue)
        }
    }
}

/// Reads the previous version of the catalog a check compares with.
enum PreviousCatalog {
    /// The catalog at `reference`: a folder if one exists there, else a git revision.
    /// - Parameter catalogDirectory: the current catalog folder; a git revision is read at the same
    ///   place in the repository that folder is in.
    static func load(_ reference: String, catalogDirectory: URL) throws -> TopicCatalog {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: reference, isDirectory: &isDirectory), isDirectory.boolValue {
            let folder = URL(fileURLWithPath: reference)
            let nested = folder.appendingPathComponent("Topics")
            if !FileManager.default.fileExists(atPath: folder.appendingPathComponent("catalog.yaml").path),
                FileManager.default.fileExists(atPath: nested.appendingPathComponent("catalog.yaml").path)
            {
                return try TopicCatalog.load(from: nested)
            }
            return try TopicCatalog.load(from: folder)
        }
        return try fromGit(reference, catalogDirectory: catalogDirectory)
    }

    /// Extracts `catalog.yaml` and `schemas/*.json` of the revision into a temporary folder and loads it.
    static func fromGit(_ revision: String, catalogDirectory: URL) throws -> TopicCatalog {
        let directory = catalogDirectory.path
        let resolved = try git(["rev-parse", "--verify", "--quiet", "\(revision)^{commit}"], in: directory)
        guard resolved.status == 0 else {
            throw CommandFailure(
                .notFound,
                "\(revision) is neither a folder nor a git revision of the repository at \(directory) (a shallow or tag-less clone may lack it: `git fetch --tags`)")
        }
        let commit = String(decoding: resolved.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-check-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: temporary) }
        try FileManager.default.createDirectory(
            at: temporary.appendingPathComponent("schemas"), withIntermediateDirectories: true)
        // `REV:./path` and ls-tree's paths are relative to the directory git runs in: the catalog folder.
        let catalog = try git(["show", "\(commit):./catalog.yaml"], in: directory)
        guard catalog.status == 0 else {
            throw CommandFailure(
                .configuration,
                "\(revision) has no catalog.yaml at the catalog folder's place (\(directory)): \(String(decoding: catalog.error, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        try catalog.output.write(to: temporary.appendingPathComponent("catalog.yaml"))
        let listing = try git(["ls-tree", "--name-only", commit, "schemas/"], in: directory)
        for path in String(decoding: listing.output, as: UTF8.self).split(separator: "\n") where path.hasSuffix(".json") {
            let file = try git(["show", "\(commit):./\(path)"], in: directory)
            guard file.status == 0 else { continue }
            try file.output.write(to: temporary.appendingPathComponent(String(path)))
        }
        do {
            return try TopicCatalog.load(from: temporary)
        } catch let error as CatalogError {
            throw CommandFailure(
                .configuration,
                "the catalog at \(revision) does not load: \(error.problem) (\(error.location.isEmpty ? (error.file as NSString).lastPathComponent : error.location)); compare with a later revision")
        } catch let error as SchemaLoadError {
            throw CommandFailure(.configuration, "the catalog at \(revision) does not load: \(error)")
        }
    }

    struct GitOutput {
        var status: Int32
        var output: Data
        var error: Data
    }

    /// Runs git in `directory` to its end; standard error is read on a thread of its own so a full
    /// pipe cannot stall the child.
    static func git(_ arguments: [String], in directory: String) throws -> GitOutput {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", directory] + arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw CommandFailure(.notFound, "cannot run git to read a revision: \(error)")
        }
        let errorData = LockedData()
        let reader = Thread { errorData.set(error.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        while process.isRunning { usleep(1_000) }
        while !errorData.isSet { usleep(1_000) }
        if process.terminationStatus == 127 {
            throw CommandFailure(.notFound, "git is not installed: give --against a folder instead of a revision")
        }
        return GitOutput(status: process.terminationStatus, output: data, error: errorData.value)
    }

    /// Data handed from the thread that reads standard error.
    final class LockedData: @unchecked Sendable {
        private let lock = NSLock()
        private var data: Data?
        func set(_ value: Data) { lock.withLock { data = value } }
        var isSet: Bool { lock.withLock { data != nil } }
        var value: Data { lock.withLock { data ?? Data() } }
    }
}
