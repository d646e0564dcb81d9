import CivilTime
import ConfigFiles
import Crypto
import EventSchemas
import Foundation

/// One rule of `Rules/comparison.yaml`: what must hold across the departments' facts about a subject.
public struct ComparisonRule: Sendable, Hashable {
    /// The shapes a rule takes (format: `Rules/README.md`).
    public enum Shape: Sendable, Hashable {
        /// Every fact (of `kinds`, or of any kind when `nil`) that has `field` holds the same value.
        case agree(field: String, kinds: [String]?)
        /// No fact of `kinds` has a `date` after the `date` of the subject's `after` fact.
        case notAfter(after: String, kinds: [String])
        /// Every fact of `when` has a fact of `requires` for the subject; with `match`, one whose
        /// `match` field equals the `when` fact's.
        case requires(when: String, requires: String, match: String?)
    }

    public var id: String
    public var description: String
    public var shape: Shape
}

/// A rule that fired for one subject: which facts disagree and why. One occurrence is one rule, one
/// subject and one set of facts; its ``alertId`` is derived from them, so the same disagreement
/// found again is the same alert.
public struct Discrepancy: Sendable, Hashable {
    public var rule: String
    public var subject: String
    /// The event ids of the facts involved, sorted.
    public var facts: [String]
    /// What disagrees, in words.
    public var details: String
    /// The instants of the facts involved (their event times), for the alert's `occurrences`.
    public var times: [Date]

    /// `DC-` and 20 hex digits of SHA-256 over the rule, the subject and the facts' event ids:
    /// the alert's id and its event's id.
    public var alertId: String {
        let digest = SHA256.hash(data: Data(([rule, subject] + facts).joined(separator: "|").utf8))
        return "DC-" + digest.prefix(10).map { String(format: "%02x", $0) }.joined()
    }
}

/// The rules of `Rules/comparison.yaml`, checked against the fact kinds of `shared-view.yaml`.
public struct ComparisonRules: Sendable {
    public let rules: [ComparisonRule]
    public let view: ViewRules

    /// The file in a rules directory.
    public static let fileName = "comparison.yaml"

    public init(rules: [ComparisonRule], view: ViewRules) {
        self.rules = rules
        self.view = view
    }

    /// Reads and checks the file: known keys, unique ids, one shape per rule, kinds of the view,
    /// fields some kind declares (`date` on the kinds a `notAfter` rule names; `match` on both
    /// kinds of a `requires` rule).
    /// - Throws: ``ConfigFileError`` with the file, line and what to change.
    public static func load(path: String, view: ViewRules) throws -> ComparisonRules {
        let root = try ConfigNode.load(path: path, hint: "run onewindow from the repository root or pass --rules")
            .mapping(keys: ["rules"])
        var rules: [ComparisonRule] = []
        let shapes = ["agree", "notAfter", "requires"]
        func kind(_ node: ConfigNode, needing fields: [String] = []) throws -> String {
            let name = try node.string()
            guard let kind = view.kinds[name] else {
                let hint = KeySuggestion.nearest(to: name, in: view.kinds.keys.sorted()).map { "; did you mean \($0)?" }
                throw node.fail("no fact kind \(name) in \(view.file)\(hint ?? "")")
            }
            for field in fields where kind.fields[field] == nil {
                throw node.fail("kind \(name) has no field \(field) in \(view.file); add it under its fields")
            }
            return name
        }
        for node in try root.require("rules").list() {
            let mapping = try node.mapping(keys: ["id", "description", "kinds"] + shapes)
            let id = try mapping.string("id")
            if rules.contains(where: { $0.id == id }) {
                throw try mapping.require("id").fail("rule id \(id) is used twice; ids must be unique")
            }
            let given = shapes.filter { mapping[$0] != nil }
            guard given.count == 1 else {
                throw node.fail("a rule has exactly one of \(shapes.joined(separator: ", ")); this one has \(given.count)")
            }
            let shape: ComparisonRule.Shape
            switch given[0] {
            case "agree":
                let fieldNode = try mapping.require("agree")
                let field = try fieldNode.string()
                let kinds = try mapping["kinds"].map { node in try node.list().map { try kind($0, needing: [field]) } }
                if kinds == nil, !view.kinds.values.contains(where: { $0.fields[field] != nil }) {
                    throw fieldNode.fail("no kind in \(view.file) has a field \(field)")
                }
                shape = .agree(field: field, kinds: kinds)
            case "notAfter":
                let inner = try mapping.require("notAfter").mapping(keys: ["after", "kinds"])
                shape = .notAfter(
                    after: try kind(try inner.require("after"), needing: ["date"]),
                    kinds: try inner.require("kinds").list().map { try kind($0, needing: ["date"]) })
            default:
                let inner = try mapping.require("requires").mapping(keys: ["when", "requires", "match"])
                let match = try inner.optionalString("match")
                let fields = match.map { [$0] } ?? []
                shape = .requires(
                    when: try kind(try inner.require("when"), needing: fields),
                    requires: try kind(try inner.require("requires"), needing: fields), match: match)
            }
            rules.append(
                ComparisonRule(id: id, description: try mapping.optionalString("description") ?? id, shape: shape))
        }
        return ComparisonRules(rules: rules, view: view)
    }

    /// The value of a named field of a fact, as text (`nil` when the kind has no such field or the
    /// body lacks it).
    public func value(_ field: String, of fact: ViewFact) -> String? {
        guard let pointer = view.kinds[fact.kind]?.fields[field], let value = fact.body[pointer: pointer] else {
            return nil
        }
        switch value {
        case .string(let text): return text.trimmingCharacters(in: .whitespaces)
        case .integer(let number): return String(number)
        case .number(let number): return String(number)
        case .bool(let flag): return String(flag)
        default: return nil
        }
    }

    /// A fact's `date` field as a China civil date: a `date` (`2026-03-02`) as it is, an instant
    /// (`2026-03-02T09:00:00+08:00`) on the China calendar.
    func date(of fact: ViewFact) -> CivilDate? {
        guard let text = value("date", of: fact) else { return nil }
        if text.count == 10 { return CivilDate(text) }
        return ChinaTime.parse(text).map(ChinaTime.date(at:))
    }

    /// Every rule that fires on one subject's facts (all of them, in any order).
    public func evaluate(subject: String, facts: [ViewFact]) -> [Discrepancy] {
        var found: [Discrepancy] = []
        func fire(_ rule: ComparisonRule, _ involved: [ViewFact], _ details: String) {
            let sorted = involved.sorted { $0.eventId < $1.eventId }
            var ids: [String] = []
            for fact in sorted where ids.last != fact.eventId { ids.append(fact.eventId) }
            found.append(
                Discrepancy(
                    rule: rule.id, subject: subject, facts: ids, details: details,
                    times: Array(Set(sorted.map(\.time))).sorted()))
        }
        for rule in rules {
            switch rule.shape {
            case .agree(let field, let kinds):
                let holding = facts.filter { kinds?.contains($0.kind) ?? true }.compactMap { fact in
                    value(field, of: fact).map { (fact, $0) }
                }
                let values = Set(holding.map(\.1))
                if values.count > 1 {
                    let text = holding.sorted { ($0.0.kind, $0.0.qualifier) < ($1.0.kind, $1.0.qualifier) }
                        .map { "\($0.0.department) \($0.0.kind): \($0.1)" }.joined(separator: "; ")
                    fire(rule, holding.map(\.0), "\(field) differs: \(text)")
                }
            case .notAfter(let after, let kinds):
                for anchor in facts where anchor.kind == after {
                    guard let limit = date(of: anchor) else { continue }
                    for fact in facts where kinds.contains(fact.kind) {
                        guard let day = date(of: fact), day > limit else { continue }
                        fire(
                            rule, [anchor, fact],
                            "\(fact.department) \(fact.kind) dated \(day) is after the \(after) of \(limit)")
                    }
                }
            case .requires(let when, let requires, let match):
                let candidates = facts.filter { $0.kind == requires }
                for fact in facts where fact.kind == when {
                    let wanted = match.flatMap { value($0, of: fact) }
                    let satisfied = candidates.contains { candidate in
                        guard let match, let wanted else { return true }
                        return value(match, of: candidate) == wanted
                    }
                    if !satisfied {
                        let which = wanted.map { " for \(match ?? "") \($0)" } ?? ""
                        fire(rule, [fact], "\(fact.department) \(when)\(which) has no \(requires)")
                    }
                }
            }
        }
        return found
    }
}
