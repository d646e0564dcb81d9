import EventSchemas
import Foundation

/// A workflow as `Rules/workflows/<id>.yaml` describes it (format: `Rules/README.md`), checked and
/// compiled: its steps with their dependencies, conditions, SLAs, materials and passed fields, and
/// everything else a case pinned to this version needs (the items' titles, the departments'
/// contacts, the notification templates), so that an application keeps the rules it started with
/// however the files change later.
public struct Workflow: Sendable, Hashable {
    /// The workflow's id, the `service` of its approval requests: `restaurant-opening`.
    public let id: String
    /// What citizens call it: `我要开餐馆`.
    public let title: String
    /// The event type of its applications: `application.restaurant.submitted`.
    public let applicationType: String
    /// Where in the application the applicant's name, ID number, mobile (and credit code) are.
    public let applicant: ApplicantFields
    /// The steps, in file order.
    public let steps: [Step]
    /// The version: a hash of the workflow file and the shared files it uses.
    public let version: RuleVersion
    /// The file it was loaded from.
    public let file: String
    /// The departments' names, items and contacts, as of this version.
    public let departments: DepartmentDirectory
    /// The notification templates, as of this version.
    public let notifications: NotificationRules
    /// The texts it was compiled from: what a store keeps to compile this version again.
    public let sources: RuleSources

    /// The step with an id.
    public func step(_ id: String) -> Step? { steps.first { $0.id == id } }

    /// The step a department's decision on an item belongs to.
    public func step(department: String, item: String) -> Step? {
        steps.first { $0.department == department && $0.item == item }
    }

    /// The longest chain of steps through `dependsOn`, weighting each step by `duration` (working
    /// days), and the sum of all: what a parallel run takes against a serial one.
    /// - Parameter duration: a step's working days; `nil` for a step that does not run (skipped).
    public func longestPath(_ duration: (Step) -> Int?) -> (longest: Int, serial: Int) {
        var finish: [String: Int] = [:]
        func finishing(_ step: Step) -> Int {
            if let known = finish[step.id] { return known }
            let start = step.dependsOn.compactMap { self.step($0) }.map(finishing).max() ?? 0
            let result = start + (duration(step) ?? 0)
            finish[step.id] = result
            return result
        }
        let longest = steps.map(finishing).max() ?? 0
        return (longest, steps.compactMap(duration).reduce(0, +))
    }
}

/// Where a workflow's applicant details are in its application, as field paths
/// (`applicant.name`, `buyer.residentId`).
public struct ApplicantFields: Sendable, Hashable {
    public var name: FieldPath
    public var residentId: FieldPath
    public var mobile: FieldPath
    public var creditCode: FieldPath?
}

/// A path to a field of a JSON document: `business.areaSquareMetres`.
public struct FieldPath: Sendable, Hashable, CustomStringConvertible {
    /// The names along the way.
    public var components: [String]

    public init(_ text: String) {
        components = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    }

    /// The RFC 6901 pointer: `/business/areaSquareMetres`.
    public var pointer: String {
        "/"
            + components.map { $0.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1") }
            .joined(separator: "/")
    }

    /// The last name, the key a detail takes in a request: `areaSquareMetres`.
    public var leaf: String { components.last ?? "" }

    public var description: String { components.joined(separator: ".") }

    /// The value in a document.
    public func value(in document: JSONValue) -> JSONValue? { document[pointer: pointer] }
}

/// A field of an earlier step's decision: `valuation.assessedPriceFen`.
public struct StepField: Sendable, Hashable, CustomStringConvertible {
    public var step: String
    public var field: String

    public init(step: String, field: String) {
        self.step = step
        self.field = field
    }

    /// Parses `step.field`; `nil` without exactly one dot.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        step = String(parts[0])
        field = String(parts[1])
    }

    public var description: String { "\(step).\(field)" }
}

/// One approval of a workflow: which department decides which item, after which steps, on which
/// condition, within how many working days, with which materials and passed fields.
public struct Step: Sendable, Hashable {
    /// The id, unique in the workflow: `fire-inspection`.
    public let id: String
    /// The title citizens read: `消防安全检查`.
    public let title: String
    /// The deciding department (a department of the catalog): `fire-safety`.
    public let department: String
    /// The item the department decides (one of the department's items in `Rules/departments.yaml`).
    public let item: String
    /// Steps that must be approved (or skipped) before this one is requested.
    public let dependsOn: [String]
    /// When the step applies, on the application; `nil`: always. Evaluated once, at submission.
    public let condition: Condition?
    /// The condition as written.
    public let conditionText: String?
    /// Working days the department has, from the day it is requested.
    public let slaWorkingDays: Int
    /// What the request lists as materials.
    public let materials: [Material]
    /// Application fields copied into the request's `details` (under their last name).
    public let details: [FieldPath]
    /// Fields of earlier decisions copied into the request's `details` (under the field's name).
    public let passes: [StepField]
    /// Fields this step's decision carries (in `approval.decided`'s `fields`) beyond the standard
    /// ones (``Step/standardFields``), for later steps to use.
    public let produces: [String]
    /// What a rejection means.
    public let onRejection: OnRejection

    /// The fields every decision has: `licenceNumber` (for an approval that issues one),
    /// `decidedBy`, `decidedAt`, `reason`.
    public static let standardFields = ["licenceNumber", "decidedBy", "decidedAt", "reason"]

    /// Every field a later step may take from this one.
    public var fields: [String] { Self.standardFields + produces }
}

/// A material an approval request lists, and where it comes from.
public struct Material: Sendable, Hashable {
    /// Its name, as the department knows it: `经营场所平面图`.
    public let name: String
    /// Where it comes from.
    public let source: Source

    public enum Source: Sendable, Hashable {
        /// The applicant hands it in: listed in the request when the application's `materials`
        /// name it (with the application's source, `submitted` or `shared-data`), left out when
        /// not — the department sees it missing.
        case submitted
        /// An earlier step produced it (e.g. the business licence's number): listed with source
        /// `earlier-step`, the step and the value, and nobody hands it in again.
        case step(StepField)
    }
}

/// What a rejection of a step means for the application.
public enum OnRejection: String, Sendable, Hashable, CaseIterable {
    /// The application fails; no further steps are requested.
    case fail
    /// The applicant may correct and resubmit the step; the application waits.
    case resubmit
}

/// A version of a workflow's rules: the workflow's id and a hash of the content of its file and
/// of the shared files it uses (`departments.yaml`, `notifications.yaml`, `calendar.yaml`). Cases
/// are pinned to one: `restaurant-opening@3f9a0c1d2e4b5a69`.
public struct RuleVersion: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public let workflow: String
    /// 16 hexadecimal digits: FNV-1a (64 bit) of the files' contents — an identity for content,
    /// not a security measure.
    public let hash: String

    public init(workflow: String, hash: String) {
        self.workflow = workflow
        self.hash = hash
    }

    /// Parses `workflow@hash`.
    public init?(_ text: String) {
        guard let at = text.lastIndex(of: "@") else { return nil }
        workflow = String(text[..<at])
        hash = String(text[text.index(after: at)...])
        guard !workflow.isEmpty, hash.count == 16 else { return nil }
    }

    public var description: String { "\(workflow)@\(hash)" }

    public static func < (a: RuleVersion, b: RuleVersion) -> Bool { a.description < b.description }

    /// The version of content: FNV-1a over each part, in order, with a separator.
    public static func of(workflow: String, contents: [Data]) -> RuleVersion {
        var hash: UInt64 = 14_695_981_039_346_656_037
        for part in contents {
            for byte in part { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
            hash = (hash ^ 0xFF) &* 1_099_511_628_211
        }
        let hex = String(hash, radix: 16)
        return RuleVersion(workflow: workflow, hash: String(repeating: "0", count: 16 - hex.count) + hex)
    }
}
