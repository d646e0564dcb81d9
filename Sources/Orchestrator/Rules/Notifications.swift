import ConfigFiles
import EventSchemas
import Foundation
import Mustache

/// A person a notification goes to: the applicant, a department's duty officer, the supervisor.
/// `notification.sms.requested` addresses a resident ID number and a mobile number.
public struct Contact: Sendable, Hashable, Codable {
    public var name: String
    public var residentId: String
    public var mobile: String

    public init(name: String, residentId: String, mobile: String) {
        self.name = name
        self.residentId = residentId
        self.mobile = mobile
    }
}

/// `Rules/departments.yaml`: what each approving department decides (its items, with their
/// titles) and its duty officer, who receives the reminders at 80 % of a step's SLA.
public struct DepartmentDirectory: Sendable, Hashable {
    public struct Department: Sendable, Hashable {
        /// The catalog's id: `food-safety`.
        public let id: String
        /// The name citizens read: the catalog's description up to the first space (`食品安全`).
        public let name: String
        /// Item id → title: `food-business-licence` → `食品经营许可证`.
        public let items: [String: String]
        /// The duty officer.
        public let contact: Contact
    }

    /// By id.
    public let departments: [String: Department]
}

/// The moments a notification is sent at, and who receives it.
public enum NotificationMoment: String, Sendable, Hashable, Codable, CaseIterable {
    /// The application was accepted (to the applicant).
    case received
    /// A step was rejected and the application fails (to the applicant).
    case stepRejected = "step-rejected"
    /// A step was rejected or asks for more information, and the applicant may resubmit it.
    case resubmissionRequested = "resubmission-requested"
    /// Every required step is approved (to the applicant).
    case completed
    /// A step passed its due date (to the applicant, with an apology).
    case overdue
    /// 80 % of a step's SLA has passed and it is undecided (to the department's duty officer).
    case reminder
    /// A step passed its due date (to the supervisor, beside the `supervision.alert.raised`).
    case escalation

    /// Who receives it.
    public var recipient: Recipient {
        switch self {
        case .received, .stepRejected, .resubmissionRequested, .completed, .overdue: .applicant
        case .reminder: .department
        case .escalation: .supervisor
        }
    }

    public enum Recipient: String, Sendable, Hashable { case applicant, department, supervisor }

    /// Whether the moment concerns one step (and its placeholders `step.*`, `dueDate` exist).
    public var concernsStep: Bool { ![.received, .completed].contains(self) }

    /// The placeholders a template of this moment may use.
    public var placeholders: Set<String> {
        var names: Set<String> = ["applicationId", "service.title", "applicant.name", "recipient.name", "date"]
        if concernsStep {
            names.formUnion(["step.title", "step.department", "step.item", "dueDate", "requestedDate"])
        }
        if [.stepRejected, .resubmissionRequested].contains(self) { names.insert("reason") }
        if self == .completed { names.formUnion(["elapsedWorkingDays", "serialWorkingDays", "documentsNotBrought"]) }
        if self == .received { names.insert("missingDocuments") }
        return names
    }
}

/// `Rules/notifications.yaml`: a zh-CN template per moment, the `notification.sms.requested`
/// template name it travels as, and the supervisor who receives escalations.
///
/// Texts are rendered by hummingbird-project/swift-mustache (a package with no dependencies, so
/// it costs one small module to build), in its TEXT content type so nothing is HTML-escaped. The
/// placeholders are found and checked by our own scan at load (``placeholders(in:)``): Mustache
/// would render an unknown name as nothing, and a message with a hole is worse than a refused
/// rule file.
public struct NotificationRules: Sendable, Hashable {
    /// One moment's message.
    public struct Template: Sendable, Hashable {
        /// The `template` of `notification.sms.requested` (one of its schema's names).
        public let sms: String
        /// The text with placeholders, as written.
        public let text: String
        let compiled: MustacheTemplate

        public static func == (a: Template, b: Template) -> Bool { a.sms == b.sms && a.text == b.text }
        public func hash(into hasher: inout Hasher) {
            hasher.combine(sms)
            hasher.combine(text)
        }

        /// Renders with values for the placeholders (`step.title` is `["step": ["title": …]]`).
        public func render(_ values: [String: Any]) -> String { compiled.render(values) }
    }

    /// By moment; every moment has one.
    public let templates: [NotificationMoment: Template]
    /// Who receives escalations.
    public let supervisor: Contact

    /// Finds the `{{…}}` placeholders of a text, with their 0-based character offsets, and refuses
    /// anything but plain placeholders (sections, partials, comments): a template is a message
    /// with blanks, not a program.
    static func placeholders(in text: String) -> (names: [(String, Int)], problems: [(String, Int)]) {
        var names: [(String, Int)] = []
        var problems: [(String, Int)] = []
        let characters = Array(text)
        var index = 0
        while index + 1 < characters.count {
            guard characters[index] == "{", characters[index + 1] == "{" else {
                index += 1
                continue
            }
            let triple = index + 2 < characters.count && characters[index + 2] == "{"
            let start = index + (triple ? 3 : 2)
            var end = start
            while end + 1 < characters.count, !(characters[end] == "}" && characters[end + 1] == "}") { end += 1 }
            guard end + 1 < characters.count else {
                problems.append(("{{ without a closing }}", index))
                break
            }
            let inner = String(characters[start..<end]).trimmingCharacters(in: .whitespaces)
            if let first = inner.first, "#^/>!&=%".contains(first) {
                problems.append(
                    ("{{\(inner)}}: only placeholders like {{applicationId}} are allowed in a message", index))
            } else if inner.isEmpty {
                problems.append(("an empty {{}}", index))
            } else {
                names.append((inner, index))
            }
            index = end + 2 + (triple ? 1 : 0)
        }
        return (names, problems)
    }
}
