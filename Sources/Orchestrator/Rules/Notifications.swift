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
        /// The text cut at its placeholders, for ``render(_:)`` to fill in without Mustache when
        /// every value is text; `nil` when it cannot be (then Mustache renders).
        let pieces: [Piece]?

        init(sms: String, text: String, compiled: MustacheTemplate) {
            self.sms = sms
            self.text = text
            self.compiled = compiled
            self.pieces = Self.pieces(of: text)
        }

        /// A message compiled as Mustache TEXT, so nothing is HTML-escaped: a name with & or < is
        /// sent as written.
        init(sms: String, text: String) throws {
            self.init(sms: sms, text: text, compiled: try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + text))
        }

        public static func == (a: Template, b: Template) -> Bool { a.sms == b.sms && a.text == b.text }
        public func hash(into hasher: inout Hasher) {
            hasher.combine(sms)
            hasher.combine(text)
        }

        /// Renders with values for the placeholders (`step.title` is `["step": ["title": …]]`).
        ///
        /// A message is text with plain placeholders only (``placeholders(in:)`` refuses the
        /// rest), so when each placeholder names a `String` (through dictionaries of `String` or
        /// `Any`) it is filled in directly, as Mustache's TEXT content type would (no escaping);
        /// any other value, or a name with no value, goes to Mustache, which decides as before.
        /// Two notifications per application made Mustache's dynamic lookups a visible cost.
        public func render(_ values: [String: Any]) -> String {
            guard let pieces else { return compiled.render(values) }
            var result = ""
            for piece in pieces {
                switch piece {
                case .text(let literal):
                    result += literal
                case .value(let path):
                    var current: Any = values
                    for name in path {
                        // `[String: Any]` first: the core passes its values so (nested ones too),
                        // and a cast to `[String: String]` of those checked every member.
                        if let object = current as? [String: Any], let next = object[name] {
                            current = next
                        } else if let object = current as? [String: String], let next = object[name] {
                            current = next
                        } else {
                            return compiled.render(values)
                        }
                    }
                    guard let text = current as? String else { return compiled.render(values) }
                    result += text
                }
            }
            return result
        }

        /// A run of text or a placeholder's dotted name.
        enum Piece: Sendable {
            case text(String)
            case value([String])
        }

        /// The text cut at its `{{name}}` and `{{{name}}}` placeholders; `nil` for anything else
        /// (a tag other than a placeholder, an unclosed one, a name with spaces inside or an
        /// empty part) or a text starting with a line break (where the `CONTENT_TYPE` pragma
        /// before it would be a standalone tag and Mustache would drop the break).
        static func pieces(of text: String) -> [Piece]? {
            if text.hasPrefix("\n") || text.hasPrefix("\r") { return nil }
            var pieces: [Piece] = []
            var rest = Substring(text)
            while let open = rest.range(of: "{{") {
                if open.lowerBound > rest.startIndex { pieces.append(.text(String(rest[..<open.lowerBound]))) }
                var after = rest[open.upperBound...]
                let triple = after.hasPrefix("{")
                if triple { after = after.dropFirst() }
                guard let close = after.range(of: triple ? "}}}" : "}}") else { return nil }
                let name = after[..<close.lowerBound].trimmingCharacters(in: .whitespaces)
                let path = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                guard !name.isEmpty, !name.contains(where: { $0.isWhitespace || "{}#^/>!&=%()|".contains($0) }),
                    !path.contains(where: \.isEmpty)
                else { return nil }
                pieces.append(.value(path))
                rest = after[close.upperBound...]
            }
            if !rest.isEmpty { pieces.append(.text(String(rest))) }
            return pieces
        }
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

extension NotificationRules.Template {
    /// Reads a message's `sms` (a template name of `notification.sms.requested`, checked against
    /// `smsNames` unless empty) and `text` (placeholders checked against `allowed`, compiled as
    /// TEXT so nothing is HTML-escaped) from `entry`, adding each problem with its line to
    /// `problems`. `notifications.yaml` and the citizen services' `life-events.yaml` read their
    /// messages with it.
    /// - Returns: the template (its problems, if any, added to `problems`), or `nil` when it cannot
    ///   be read at all.
    public static func read(
        _ entry: ConfigMapping, placeholders allowed: Set<String>, for what: String, smsNames: [String],
        problems: inout [ConfigFileError]
    ) -> Self? {
        do {
            let smsNode = try entry.require("sms")
            let sms = try smsNode.string()
            if !smsNames.isEmpty, !smsNames.contains(sms) {
                problems.append(
                    smsNode.fail(
                        "\(sms) is not a template of notification.sms.requested; its templates are \(smsNames.joined(separator: ", "))"
                    ))
            }
            let textNode = try entry.require("text")
            let body = try textNode.string()
            let (names, syntax) = NotificationRules.placeholders(in: body)
            for (problem, _) in syntax { problems.append(textNode.fail(problem)) }
            for (name, _) in names where !allowed.contains(name) {
                let hint =
                    KeySuggestion.nearest(to: name, in: allowed.sorted()).map { "did you mean {{\($0)}}? " } ?? ""
                problems.append(
                    textNode.fail(
                        "unknown placeholder {{\(name)}} for \(what); \(hint)the placeholders here are \(allowed.sorted().joined(separator: ", "))"
                    ))
            }
            // Returned with its problems recorded, so what depends on it is checked too.
            return try .init(sms: sms, text: body)
        } catch let error as ConfigFileError {
            problems.append(error)
        } catch {
            problems.append(
                ConfigFileError(
                    file: entry.node.file, line: entry.node.line, location: entry.node.location,
                    problem: "the template does not parse: \(error)"))
        }
        return nil
    }
}
