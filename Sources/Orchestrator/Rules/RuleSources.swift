import ConfigFiles
import EventSchemas
import Foundation

/// The texts one workflow version is compiled from: the workflow file and the shared files it
/// uses. Its hash is the ``RuleVersion``; the store keeps it per version (as JSON), so that a case
/// pinned to a version can be served after a restart whatever the files say by then
/// (``RuleBook/compile(_:catalog:)``).
public struct RuleSources: Sendable, Hashable, Codable {
    /// The workflow file's path (for messages; not part of the version).
    public var workflowFile: String
    /// The workflow file's text.
    public var workflow: String
    /// The shared files.
    public var shared: SharedRules

    public init(workflowFile: String, workflow: String, shared: SharedRules) {
        self.workflowFile = workflowFile
        self.workflow = workflow
        self.shared = shared
    }

    /// The version of these texts for a workflow id: FNV-1a over the workflow, departments,
    /// notifications and calendar texts (paths excluded: a moved file is the same version).
    public func version(of workflowId: String) -> RuleVersion {
        RuleVersion.of(
            workflow: workflowId,
            contents: [workflow, shared.departments, shared.notifications, shared.calendar].map { Data($0.utf8) })
    }
}

/// The files every workflow of a rules directory shares: `departments.yaml`,
/// `notifications.yaml` and `calendar.yaml` (the calendar is part of the version only: due dates
/// are counted on the calendar the orchestrator is given).
public struct SharedRules: Sendable, Hashable, Codable {
    public var departmentsFile: String
    public var departments: String
    public var notificationsFile: String
    public var notifications: String
    public var calendar: String

    public init(
        departmentsFile: String, departments: String, notificationsFile: String, notifications: String, calendar: String
    ) {
        self.departmentsFile = departmentsFile
        self.departments = departments
        self.notificationsFile = notificationsFile
        self.notifications = notifications
        self.calendar = calendar
    }

    func parse(catalog: TopicCatalog, problems: inout [ConfigFileError]) -> (DepartmentDirectory, NotificationRules)? {
        let departments = RuleBook.loadDepartments(
            text: departments, file: departmentsFile, catalog: catalog, problems: &problems)
        let notifications = RuleBook.loadNotifications(
            text: notifications, file: notificationsFile, catalog: catalog, problems: &problems)
        guard let departments, let notifications else { return nil }
        return (departments, notifications)
    }
}
