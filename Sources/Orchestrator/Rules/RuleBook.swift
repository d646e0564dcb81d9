import CivilTime
import ConfigFiles
import EventSchemas
import Foundation
import Mustache

/// Every problem found in a rules directory, each a ``ConfigFileError`` naming the file, the line
/// and what is wrong. The orchestrator refuses to start with any; `onewindow rules check` lists them.
public struct RuleBookError: Error, Sendable, CustomStringConvertible {
    /// The problems, file by file, in line order.
    public var problems: [ConfigFileError]

    public init(problems: [ConfigFileError]) {
        self.problems = problems
    }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// The orchestrator's rules: the workflows of `Rules/workflows/`, with the departments' items and
/// contacts (`Rules/departments.yaml`) and the notification templates (`Rules/notifications.yaml`),
/// checked against the topic catalog — and every version loaded so far, so that a case started on
/// an older version keeps it.
///
/// ```swift
/// var rules = try RuleBook.load(directory: URL(fileURLWithPath: "Rules"), catalog: catalog)
/// let workflow = rules.current["restaurant-opening"]!
/// // later, after the files changed:
/// rules = try rules.reloaded(from: URL(fileURLWithPath: "Rules"), catalog: catalog)
/// rules.workflow(version: oldCase.ruleVersion)   // still there
/// ```
public struct RuleBook: Sendable {
    /// The newest version of each workflow, by id: what new applications start on.
    public private(set) var current: [String: Workflow]
    /// Every version known, current or older.
    public private(set) var versions: [RuleVersion: Workflow]

    /// A rule book of compiled workflows (the first of each id is current).
    public init(workflows: [Workflow]) {
        current = [:]
        versions = [:]
        for workflow in workflows { add(workflow, current: true) }
    }

    /// Adds a version; `current` makes it what new applications start on.
    public mutating func add(_ workflow: Workflow, current makeCurrent: Bool) {
        versions[workflow.version] = workflow
        if makeCurrent || current[workflow.id] == nil { current[workflow.id] = workflow }
    }

    /// The workflow of a version, `nil` when this rule book never loaded it (the store keeps the
    /// versions its cases are pinned to and adds them back with ``add(_:current:)``).
    public func workflow(version: RuleVersion) -> Workflow? { versions[version] }

    /// The current workflow whose applications have an event type.
    public func workflow(applicationType: String) -> Workflow? {
        current.values.first { $0.applicationType == applicationType }
    }

    /// Loads the directory again: its workflows become current, the versions known so far stay.
    public func reloaded(from directory: URL, catalog: TopicCatalog) throws(RuleBookError) -> RuleBook {
        var result = try RuleBook.load(directory: directory, catalog: catalog)
        for (_, workflow) in versions where result.versions[workflow.version] == nil {
            result.add(workflow, current: false)
        }
        return result
    }

    /// The files of a rules directory, from its root.
    public static let departmentsFile = "departments.yaml"
    public static let notificationsFile = "notifications.yaml"
    public static let calendarFile = "calendar.yaml"
    public static let workflowsFolder = "workflows"

    /// Loads and checks a rules directory (format: `Rules/README.md`).
    ///
    /// Checked: every key known (did-you-mean for a misspelt one); every department in the
    /// catalog with an `approval.<department>.requested` topic; every item one of its department's
    /// items; step ids unique; `dependsOn` naming steps of the workflow, without a cycle; a
    /// condition that parses and names fields of the application's schema with fitting types; an
    /// application field (`details`, `applicant`) in the schema; a step field (`from`, `passes`)
    /// of a step this one depends on, directly or not, and one that step has; a notification
    /// template for every moment, with known placeholders and an SMS template name of the
    /// `notification.sms.requested` schema.
    /// - Parameters:
    ///   - directory: the rules directory (`Rules`).
    ///   - catalog: the topic catalog, for departments and the applications' schemas.
    /// - Throws: ``RuleBookError`` with every problem found (all of a file where the file can
    ///   still be read, not just the first).
    public static func load(directory: URL, catalog: TopicCatalog) throws(RuleBookError) -> RuleBook {
        var problems: [ConfigFileError] = []
        func read(_ name: String, required: Bool = true) -> (path: String, text: String) {
            let path = directory.appendingPathComponent(name).path
            guard let data = FileManager.default.contents(atPath: path) else {
                if required {
                    problems.append(
                        ConfigFileError(
                            file: path, location: "",
                            problem: "no such file (or not readable); the rules directory keeps it"))
                }
                return (path, "")
            }
            return (path, String(decoding: data, as: UTF8.self))
        }
        let departments = read(departmentsFile)
        let notifications = read(notificationsFile)
        let calendar = read(calendarFile, required: false)
        let shared = SharedRules(
            departmentsFile: departments.path, departments: departments.text, notificationsFile: notifications.path,
            notifications: notifications.text, calendar: calendar.text)
        let parsed = shared.parse(catalog: catalog, problems: &problems)

        let folder = directory.appendingPathComponent(workflowsFolder)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        if names.isEmpty {
            problems.append(
                ConfigFileError(file: folder.path, location: "", problem: "no workflow files (*.yaml) here"))
        }
        var workflows: [Workflow] = []
        for name in names {
            let (path, text) = read("\(workflowsFolder)/\(name)")
            guard let (departments, notifications) = parsed else { continue }
            let sources = RuleSources(workflowFile: path, workflow: text, shared: shared)
            if let workflow = compile(sources, departments, notifications, catalog: catalog, problems: &problems) {
                if let other = workflows.first(where: { $0.id == workflow.id }) {
                    problems.append(
                        ConfigFileError(
                            file: path, line: 1, location: "workflow",
                            problem: "workflow \(workflow.id) is also defined in \(other.file); keep one"))
                } else {
                    workflows.append(workflow)
                }
            }
        }
        guard problems.isEmpty else { throw RuleBookError(problems: problems) }
        return RuleBook(workflows: workflows)
    }

    /// Loads one workflow file against the shared files of a rules directory: what `rules diff`
    /// compares.
    /// - Throws: ``RuleBookError``.
    public static func loadWorkflow(file: URL, rulesDirectory: URL, catalog: TopicCatalog) throws(RuleBookError)
        -> Workflow
    {
        var problems: [ConfigFileError] = []
        func read(_ url: URL, required: Bool = true) -> String {
            guard let data = FileManager.default.contents(atPath: url.path) else {
                if required {
                    problems.append(
                        ConfigFileError(file: url.path, location: "", problem: "no such file (or not readable)"))
                }
                return ""
            }
            return String(decoding: data, as: UTF8.self)
        }
        let departments = rulesDirectory.appendingPathComponent(departmentsFile)
        let notifications = rulesDirectory.appendingPathComponent(notificationsFile)
        let sources = RuleSources(
            workflowFile: file.path, workflow: read(file),
            shared: SharedRules(
                departmentsFile: departments.path, departments: read(departments),
                notificationsFile: notifications.path,
                notifications: read(notifications),
                calendar: read(rulesDirectory.appendingPathComponent(calendarFile), required: false)))
        guard problems.isEmpty else { throw RuleBookError(problems: problems) }
        return try compile(sources, catalog: catalog)
    }

    /// Compiles a workflow version from its texts — how the store brings back the version a case
    /// is pinned to after a restart, when the files have changed since (it keeps each version's
    /// ``Workflow/sources``).
    /// - Throws: ``RuleBookError`` (the texts are checked as files are).
    public static func compile(_ sources: RuleSources, catalog: TopicCatalog) throws(RuleBookError) -> Workflow {
        var problems: [ConfigFileError] = []
        guard let (departments, notifications) = sources.shared.parse(catalog: catalog, problems: &problems),
            let workflow = compile(sources, departments, notifications, catalog: catalog, problems: &problems),
            problems.isEmpty
        else { throw RuleBookError(problems: problems) }
        return workflow
    }

    static func compile(
        _ sources: RuleSources, _ departments: DepartmentDirectory, _ notifications: NotificationRules,
        catalog: TopicCatalog, problems: inout [ConfigFileError]
    ) -> Workflow? {
        let loader = WorkflowLoader(
            file: sources.workflowFile, catalog: catalog, departments: departments, notifications: notifications,
            sources: sources)
        return loader.load(text: sources.workflow, problems: &problems)
    }

    // MARK: departments.yaml

    static func loadDepartments(text: String, file: String, catalog: TopicCatalog, problems: inout [ConfigFileError])
        -> DepartmentDirectory?
    {
        do {
            let root = try ConfigNode.parse(text, file: file).mapping()
            var result: [String: DepartmentDirectory.Department] = [:]
            for entry in root.entries {
                do {
                    guard let description = catalog.departments[entry.key] else {
                        let known = catalog.departments.keys.sorted()
                        let hint =
                            KeySuggestion.nearest(to: entry.key, in: known).map { "; did you mean \($0)?" }
                            ?? "; the catalog's departments are \(known.joined(separator: ", "))"
                        throw entry.keyNode.fail("unknown department (not in Topics/catalog.yaml)\(hint)")
                    }
                    let department = try entry.value.mapping(keys: ["contact", "items"])
                    let contact = try Self.contact(department.require("contact"))
                    var items: [String: String] = [:]
                    for item in try department.require("items").mapping().entries {
                        items[item.key] = try item.value.string()
                    }
                    let name = String(description.split(separator: " ").first ?? Substring(entry.key))
                    result[entry.key] = .init(id: entry.key, name: name, items: items, contact: contact)
                } catch let error as ConfigFileError {
                    problems.append(error)
                }
            }
            return DepartmentDirectory(departments: result)
        } catch let error as ConfigFileError {
            problems.append(error)
        } catch {
            problems.append(ConfigFileError(file: file, location: "", problem: "\(error)"))
        }
        return nil
    }

    static func contact(_ node: ConfigNode) throws -> Contact {
        let mapping = try node.mapping(keys: ["name", "residentId", "mobile"])
        let residentId = try mapping.require("residentId")
        if let problem = ResidentIDNumber.problem(in: try residentId.string()) {
            throw residentId.fail("not a valid resident ID number: \(problem)")
        }
        let mobile = try mapping.require("mobile")
        let number = try mobile.string()
        guard number.count == 11, number.hasPrefix("1"), number.allSatisfy(\.isNumber) else {
            throw mobile.fail("not a mainland mobile number (11 digits starting with 1)")
        }
        return Contact(name: try mapping.string("name"), residentId: try residentId.string(), mobile: number)
    }

    // MARK: notifications.yaml

    static func loadNotifications(text: String, file: String, catalog: TopicCatalog, problems: inout [ConfigFileError])
        -> NotificationRules?
    {
        do {
            let root = try ConfigNode.parse(text, file: file).mapping(keys: ["supervisor", "moments"])
            let supervisor = try contact(root.require("supervisor"))
            let moments = try root.require("moments").mapping(keys: NotificationMoment.allCases.map(\.rawValue))
            let smsNames =
                catalog.schemas["notification.sms.requested"]?.field(at: "/template")?.enumValues?
                .compactMap(\.stringValue) ?? []
            var templates: [NotificationMoment: NotificationRules.Template] = [:]
            for moment in NotificationMoment.allCases {
                do {
                    let entry = try moments.require(moment.rawValue, "a template for every moment").mapping(keys: [
                        "sms", "text",
                    ])
                    if let template = NotificationRules.Template.read(
                        entry, placeholders: moment.placeholders, for: moment.rawValue, smsNames: smsNames,
                        problems: &problems)
                    {
                        templates[moment] = template
                    }
                } catch let error as ConfigFileError {
                    problems.append(error)
                } catch {
                    problems.append(
                        ConfigFileError(
                            file: file, location: "moments.\(moment.rawValue)",
                            problem: "the template does not parse: \(error)"))
                }
            }
            guard templates.count == NotificationMoment.allCases.count else { return nil }
            return NotificationRules(templates: templates, supervisor: supervisor)
        } catch let error as ConfigFileError {
            problems.append(error)
        } catch {
            problems.append(ConfigFileError(file: file, location: "", problem: "\(error)"))
        }
        return nil
    }
}
