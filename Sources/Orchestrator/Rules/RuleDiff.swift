import Foundation

/// What changed between two versions of a workflow: what `onewindow rules diff` prints. Pure: two
/// compiled workflows in, a list of changes out.
///
/// ```swift
/// let changes = RuleDiff.between(old, new)
/// // [.stepAdded("hygiene-check"), .slaChanged(step: "food-licence", from: 7, to: 5)]
/// ```
public enum RuleChange: Sendable, Hashable, CustomStringConvertible {
    case stepAdded(String)
    case stepRemoved(String)
    case slaChanged(step: String, from: Int, to: Int)
    /// `nil` is "always".
    case conditionChanged(step: String, from: String?, to: String?)
    case dependenciesChanged(step: String, from: [String], to: [String])
    case departmentChanged(step: String, from: String, to: String)
    case itemChanged(step: String, from: String, to: String)
    case onRejectionChanged(step: String, from: OnRejection, to: OnRejection)
    case materialsChanged(step: String, added: [String], removed: [String])
    case passedFieldsChanged(step: String, from: [String], to: [String])
    case detailsChanged(step: String, from: [String], to: [String])
    /// A notification template's text or SMS template changed.
    case notificationChanged(NotificationMoment)

    public var description: String {
        func list(_ items: [String]) -> String { items.isEmpty ? "none" : items.joined(separator: ", ") }
        switch self {
        case .stepAdded(let step): return "+ step \(step)"
        case .stepRemoved(let step): return "- step \(step)"
        case .slaChanged(let step, let from, let to): return "~ \(step): slaWorkingDays \(from) → \(to)"
        case .conditionChanged(let step, let from, let to):
            return "~ \(step): condition \(from ?? "always") → \(to ?? "always")"
        case .dependenciesChanged(let step, let from, let to):
            return "~ \(step): dependsOn [\(list(from))] → [\(list(to))]"
        case .departmentChanged(let step, let from, let to): return "~ \(step): department \(from) → \(to)"
        case .itemChanged(let step, let from, let to): return "~ \(step): item \(from) → \(to)"
        case .onRejectionChanged(let step, let from, let to):
            return "~ \(step): onRejection \(from.rawValue) → \(to.rawValue)"
        case .materialsChanged(let step, let added, let removed):
            return "~ \(step): materials" + (added.isEmpty ? "" : " +[\(list(added))]")
                + (removed.isEmpty ? "" : " -[\(list(removed))]")
        case .passedFieldsChanged(let step, let from, let to):
            return "~ \(step): passes [\(list(from))] → [\(list(to))]"
        case .detailsChanged(let step, let from, let to): return "~ \(step): details [\(list(from))] → [\(list(to))]"
        case .notificationChanged(let moment): return "~ notification \(moment.rawValue)"
        }
    }
}

/// Compares workflow versions.
public enum RuleDiff {
    /// The changes from `old` to `new`, steps in the new file's order (removed ones first).
    /// Conditions compare by meaning as written canonically (`a>1` and `a > 1` are the same).
    public static func between(_ old: Workflow, _ new: Workflow) -> [RuleChange] {
        var changes: [RuleChange] = []
        let newIds = Set(new.steps.map(\.id))
        for step in old.steps where !newIds.contains(step.id) { changes.append(.stepRemoved(step.id)) }
        for step in new.steps {
            guard let before = old.step(step.id) else {
                changes.append(.stepAdded(step.id))
                continue
            }
            let id = step.id
            if before.department != step.department {
                changes.append(.departmentChanged(step: id, from: before.department, to: step.department))
            }
            if before.item != step.item { changes.append(.itemChanged(step: id, from: before.item, to: step.item)) }
            if Set(before.dependsOn) != Set(step.dependsOn) {
                changes.append(
                    .dependenciesChanged(step: id, from: before.dependsOn.sorted(), to: step.dependsOn.sorted()))
            }
            if before.condition != step.condition {
                changes.append(
                    .conditionChanged(step: id, from: before.condition?.description, to: step.condition?.description))
            }
            if before.slaWorkingDays != step.slaWorkingDays {
                changes.append(.slaChanged(step: id, from: before.slaWorkingDays, to: step.slaWorkingDays))
            }
            if before.onRejection != step.onRejection {
                changes.append(.onRejectionChanged(step: id, from: before.onRejection, to: step.onRejection))
            }
            func shown(_ material: Material) -> String {
                switch material.source {
                case .submitted: "\(material.name) (submitted)"
                case .step(let reference): "\(material.name) (from \(reference))"
                case .shared(let kind, let subject): "\(material.name) (shared \(kind) of \(subject))"
                }
            }
            let oldMaterials = before.materials.map(shown)
            let newMaterials = step.materials.map(shown)
            if Set(oldMaterials) != Set(newMaterials) {
                changes.append(
                    .materialsChanged(
                        step: id, added: newMaterials.filter { !oldMaterials.contains($0) },
                        removed: oldMaterials.filter { !newMaterials.contains($0) }))
            }
            let oldPasses = before.passes.map(\.description)
            let newPasses = step.passes.map(\.description)
            if Set(oldPasses) != Set(newPasses) {
                changes.append(.passedFieldsChanged(step: id, from: oldPasses, to: newPasses))
            }
            let oldDetails = before.details.map(\.description)
            let newDetails = step.details.map(\.description)
            if Set(oldDetails) != Set(newDetails) {
                changes.append(.detailsChanged(step: id, from: oldDetails, to: newDetails))
            }
        }
        for moment in NotificationMoment.allCases
        where old.notifications.templates[moment] != new.notifications.templates[moment] {
            changes.append(.notificationChanged(moment))
        }
        return changes
    }
}
