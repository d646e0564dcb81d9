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
    /// Each step's materials numbered by name (derived from ``steps``).
    let materialNumbers: MaterialNumbers

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

    /// The value in a document: what ``pointer`` points at, found by walking the names (building
    /// the pointer text for every lookup was a twelfth of the orchestrator benchmark's CPU).
    public func value(in document: JSONValue) -> JSONValue? { document[tokens: components] }
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
        /// A department already holds it: the latest fact of this kind about the subject (a
        /// resident ID or credit code at `subject` in the application) in the shared data view,
        /// looked up when the application arrives and listed with source `shared-data`, the
        /// fact's event id and topic. When the view has no such fact the applicant is asked for it
        /// (``Workflow/missingDocuments(application:facts:)``).
        case shared(kind: String, subject: FieldPath)
    }
}

/// The kinds of facts the shared data view keeps per resident ID or credit code, which a
/// material may name (`sharedFact:`); the view defines the same names.
public enum SharedFactKinds {
    public static let all = [
        "household-record", "birth", "death", "social-insurance-enrolment", "social-insurance-contributions",
        "pension-certification", "tax-registration", "tax-clearance", "property-registration", "business-licence",
        "food-business-licence", "fire-safety-inspection", "environment-filing", "signboard-permit",
    ]
}

/// A fact of the shared data view, as the orchestrator's shell found it for an application:
/// which kind, about whom, and the event that established it. The shell looks facts up before
/// the core runs (the core does no I/O) and passes them in the ``Submission``.
public struct SharedFact: Sendable, Hashable, Codable {
    /// One of ``SharedFactKinds/all``: `household-record`.
    public let kind: String
    /// The resident ID number or unified social credit code it is about.
    public let subject: String
    /// The id of the event that established it (the `approval.requested` material's `eventId`).
    public let eventId: String
    /// The topic the event was published on: `household.member.changed`.
    public let topic: String

    public init(kind: String, subject: String, eventId: String, topic: String) {
        self.kind = kind
        self.subject = subject
        self.eventId = eventId
        self.topic = topic
    }
}

/// How many documents an application's applicant was spared: every material of every step that
/// applies, counted as a serial process would ask for it (each department its own copy of
/// everything), against the distinct documents the applicant hands in at the one window.
///
/// - `serial`: the number of material entries of the steps that apply (skipped steps aside);
/// - `submitted`: the distinct names among the `source: submitted` materials of those steps, and
///   among their `sharedFact:` materials the view did not hold (unless the application lists
///   them with source `shared-data`: the window found them itself);
/// - `notBrought` = `serial` − `submitted`: copies handed in once instead of once per
///   department, materials an earlier step produced, facts the shared view supplied.
public struct DocumentCount: Sendable, Hashable, Codable {
    public let serial: Int
    public let submitted: Int
    public var notBrought: Int { serial - submitted }

    public init(serial: Int, submitted: Int) {
        self.serial = serial
        self.submitted = submitted
    }
}

/// A workflow's material names numbered: the same number for the same name (as `==` has it, in
/// any step), so that ``Workflow/documentCount(application:facts:)`` counts distinct names with an
/// array of flags instead of hashing every (Chinese, so Unicode-normalised) name into a set at
/// each completion.
struct MaterialNumbers: Sendable, Hashable {
    /// `numbers[step][material]`, in the order of ``Workflow/steps`` and their materials.
    let numbers: [[Int]]
    /// How many distinct names.
    let count: Int

    init(steps: [Step]) {
        var known: [String: Int] = [:]
        numbers = steps.map { step in
            step.materials.map { material in
                if let number = known[material.name] { return number }
                known[material.name] = known.count
                return known.count - 1
            }
        }
        count = known.count
    }
}

/// A document the applicant still has to bring: a `sharedFact:` material the view does not hold.
public struct MissingDocument: Sendable, Hashable {
    /// The material's name: `社会保险参保证明`.
    public let name: String
    /// The steps that list it.
    public let steps: [String]
}

extension Workflow {
    /// The steps that apply to an application (their condition true, or none).
    func applies(_ step: Step, to application: JSONValue) -> Bool {
        step.condition.map { $0.evaluate(on: application) } ?? true
    }

    /// Whether a material is asked for at all: a `sharedFact:` material whose subject field the
    /// application leaves out (an optional one, like a graduate's employer) is not — there is
    /// nobody to look up, and nothing to bring.
    static func asked(_ material: Material, application: JSONValue) -> Bool {
        guard case .shared(_, let path) = material.source else { return true }
        return path.value(in: application)?.stringValue != nil
    }

    /// The facts to look up for an application: each `sharedFact:` material of the steps that
    /// apply, as (kind, subject), once each, in step order (a material whose subject field the
    /// application leaves out is not asked for: ``asked(_:application:)``).
    public func sharedFactsNeeded(by application: JSONValue) -> [(kind: String, subject: String)] {
        var result: [(kind: String, subject: String)] = []
        for step in steps where applies(step, to: application) {
            for material in step.materials {
                guard case .shared(let kind, let path) = material.source,
                    let subject = path.value(in: application)?.stringValue
                else { continue }
                if !result.contains(where: { $0.kind == kind && $0.subject == subject }) {
                    result.append((kind, subject))
                }
            }
        }
        return result
    }

    /// The fact filling a `sharedFact:` material for an application, among those found.
    public func fact(for material: Material, application: JSONValue, facts: [SharedFact]) -> SharedFact? {
        guard case .shared(let kind, let path) = material.source,
            let subject = path.value(in: application)?.stringValue
        else { return nil }
        return facts.first { $0.kind == kind && $0.subject == subject }
    }

    /// The elements of the application's `materials` (empty when it has none), read as members
    /// rather than through a JSON pointer per element (what `[pointer: "/name"]` finds: only an
    /// object's member).
    static func listedMaterials(in application: JSONValue) -> [JSONValue] {
        guard case .object(let members) = application, case .array(let listed)? = members["materials"] else {
            return []
        }
        return listed
    }

    /// Whether the application's `materials` list a material by name with source `shared-data`
    /// (the window found it itself), or with any source when `anySource`.
    static func listed(_ name: String, in application: JSONValue, anySource: Bool) -> Bool {
        listedMaterials(in: application).contains { element in
            guard case .object(let material) = element, case .string(let text)? = material["name"], text == name
            else { return false }
            return anySource || material["source"]?.stringValue == "shared-data"
        }
    }

    /// The documents the applicant still has to bring, by name, in step order: `sharedFact:`
    /// materials of the steps that apply whose fact is not among `facts` and which the
    /// application's `materials` do not list (a corrected application listing them, with either
    /// source, provides them).
    public func missingDocuments(application: JSONValue, facts: [SharedFact]) -> [MissingDocument] {
        var order: [String] = []
        var steps: [String: [String]] = [:]
        for step in self.steps where applies(step, to: application) {
            for material in step.materials where Self.asked(material, application: application) {
                guard case .shared = material.source,
                    fact(for: material, application: application, facts: facts) == nil,
                    !Self.listed(material.name, in: application, anySource: true)
                else { continue }
                if steps[material.name] == nil { order.append(material.name) }
                if steps[material.name]?.contains(step.id) != true { steps[material.name, default: []].append(step.id) }
            }
        }
        return order.map { MissingDocument(name: $0, steps: steps[$0]!) }
    }

    /// The documents counted for an application (``DocumentCount``): with `application` `nil`,
    /// every step and material applies and every shared fact is found — the count the rules
    /// promise. Materials not asked for (``asked(_:application:)``) count nowhere.
    public func documentCount(application: JSONValue? = nil, facts: [SharedFact] = []) -> DocumentCount {
        var serial = 0
        var brought = [Bool](repeating: false, count: materialNumbers.count)
        var submitted = 0
        for (stepIndex, step) in steps.enumerated() where application.map({ applies(step, to: $0) }) ?? true {
            for (materialIndex, material) in step.materials.enumerated()
            where application.map({ Self.asked(material, application: $0) }) ?? true {
                serial += 1
                var brings = false
                switch material.source {
                case .submitted: brings = true
                case .step: break
                case .shared:
                    guard let application else { break }
                    brings =
                        fact(for: material, application: application, facts: facts) == nil
                        && !Self.listed(material.name, in: application, anySource: false)
                }
                let number = materialNumbers.numbers[stepIndex][materialIndex]
                if brings, !brought[number] {
                    brought[number] = true
                    submitted += 1
                }
            }
        }
        return DocumentCount(serial: serial, submitted: submitted)
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
