import ArgumentParser
import CitizenServices
import EventSchemas
import Foundation
import Orchestrator

/// `onewindow rules check|diff`: the orchestrator's rules checked, and two versions of a workflow
/// compared, without starting anything.
struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Check the orchestrator's rules, or show what changed between two versions of a workflow.",
        discussion: """
            The rules are YAML files in Rules/ (format: Rules/README.md). `check` runs every check \
            the orchestrator runs at start-up and lists every problem with its file and line \
            (status 78 when there is one). `diff` compares two workflow files.
            Examples:
              onewindow rules check
              onewindow rules diff old.yaml Rules/workflows/restaurant-opening.yaml
            """,
        subcommands: [Check.self, Diff.self])

    /// Where the catalog is, for the departments and the applications' schemas.
    struct CatalogOption: ParsableArguments {
        @Option(name: .long, help: "The topic catalog directory. Default: $ONEWINDOW_TOPICS, else ./Topics.")
        var catalog: String?

        func load() throws -> TopicCatalog {
            let directory = catalog.map { URL(fileURLWithPath: $0) } ?? TopicCatalog.defaultDirectory
            guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("catalog.yaml").path) else {
                throw CommandFailure(
                    .notFound,
                    "there is no topic catalog at \(directory.appendingPathComponent("catalog.yaml").path): run onewindow from the repository root, or point --catalog or ONEWINDOW_TOPICS at the Topics folder"
                )
            }
            return try TopicCatalog.load(from: directory)
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Check every rule file of a rules directory, as the orchestrator does at start-up.")

        @OptionGroup var options: CatalogOption
        @Argument(help: "The rules directory.") var directory: String = "Rules"

        func run() async throws {
            let catalog = try options.load()
            let url = URL(fileURLWithPath: directory)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw CommandFailure(
                    .notFound,
                    "there is no rules directory at \(url.path): run onewindow from the repository root or name the directory"
                )
            }
            do {
                let rules = try RuleBook.load(directory: url, catalog: catalog)
                for workflow in rules.current.values.sorted(by: { $0.id < $1.id }) {
                    let conditional = workflow.steps.filter { $0.condition != nil }.count
                    let documents = workflow.documentCount()
                    print(
                        "ok \(workflow.version): \(workflow.title), \(workflow.steps.count) step\(workflow.steps.count == 1 ? "" : "s") (\(conditional) conditional), documents \(documents.serial) serial → \(documents.submitted) handed in, from \(workflow.file)"
                    )
                }
                // The citizen services' files, when the directory has them.
                let fileManager = FileManager.default
                if fileManager.fileExists(atPath: url.appendingPathComponent(LifeEventRules.file).path) {
                    let events = try LifeEventRules.load(directory: url, rules: rules, catalog: catalog)
                    print("ok \(LifeEventRules.file): \(events.pushes.count) life events")
                }
                if fileManager.fileExists(atPath: url.appendingPathComponent(RepeatVisitRules.file).path) {
                    let visits = try RepeatVisitRules.load(directory: url)
                    print(
                        "ok \(RepeatVisitRules.file): windows of \(visits.submissionWindowDays) and \(visits.rejectionWindowDays) days"
                    )
                }
            } catch {
                throw CommandFailure(
                    .configuration,
                    error.description
                        + "\n\(error.problems.count) problem\(error.problems.count == 1 ? "" : "s") in the rules; the orchestrator (or the citizen services) would refuse to start"
                )
            }
        }
    }

    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "diff",
            abstract:
                "Show what changed between two versions of a workflow file: steps, SLAs, conditions, dependencies.")

        @OptionGroup var options: CatalogOption
        @Option(
            name: .long,
            help: "The rules directory whose departments.yaml and notifications.yaml both files use.")
        var rules: String = "Rules"
        @Argument(help: "The older workflow file.") var old: String
        @Argument(help: "The newer workflow file.") var new: String

        func run() async throws {
            let catalog = try options.load()
            let directory = URL(fileURLWithPath: rules)
            func load(_ path: String) throws -> Workflow {
                guard FileManager.default.fileExists(atPath: path) else {
                    throw CommandFailure(.notFound, "there is no file \(path)")
                }
                do {
                    return try RuleBook.loadWorkflow(
                        file: URL(fileURLWithPath: path), rulesDirectory: directory, catalog: catalog)
                } catch {
                    throw CommandFailure(.configuration, error.description)
                }
            }
            let before = try load(old)
            let after = try load(new)
            guard before.id == after.id else {
                throw CommandFailure(
                    .usage,
                    "\(old) is workflow \(before.id) and \(new) is \(after.id); diff compares two versions of one workflow"
                )
            }
            print("\(before.version) → \(after.version)")
            let changes = RuleDiff.between(before, after)
            if changes.isEmpty { print("no changes to the steps") }
            for change in changes { print(change) }
        }
    }
}
