import ConfigFiles
import EventSchemas
import Foundation

/// Reads and checks one workflow file, collecting every problem it can find (a step that cannot
/// be read is left out of the later checks, the other steps are still checked).
struct WorkflowLoader {
    let file: String
    let catalog: TopicCatalog
    let departments: DepartmentDirectory
    let notifications: NotificationRules
    let sources: RuleSources

    static let documentKeys = ["workflow", "title", "application", "applicant", "steps"]
    static let applicantKeys = ["name", "residentId", "mobile", "creditCode"]
    static let stepKeys = [
        "id", "title", "department", "item", "dependsOn", "condition", "slaWorkingDays", "materials", "details",
        "passes", "produces", "onRejection",
    ]

    /// A step as read, with the nodes later checks point at.
    struct Draft {
        var node: ConfigNode
        var id: String
        var idNode: ConfigNode
        var title: String
        var department: String
        var item: String
        var dependsOn: [(String, ConfigNode)]
        var condition: Condition?
        var conditionText: String?
        var sla: Int
        var materials: [(Material, ConfigNode)]
        var details: [(FieldPath, ConfigNode)]
        var passes: [(StepField, ConfigNode)]
        var produces: [String]
        var onRejection: OnRejection
    }

    func load(text: String, problems: inout [ConfigFileError]) -> Workflow? {
        let before = problems.count
        let document: ConfigMapping
        do {
            document = try ConfigNode.parse(text, file: file).mapping(keys: Self.documentKeys)
        } catch let error as ConfigFileError {
            problems.append(error)
            return nil
        } catch {
            problems.append(ConfigFileError(file: file, location: "", problem: "\(error)"))
            return nil
        }
        func attempt<T>(_ body: () throws -> T) -> T? {
            do { return try body() } catch let error as ConfigFileError {
                problems.append(error)
            } catch {
                problems.append(ConfigFileError(file: file, location: "", problem: "\(error)"))
            }
            return nil
        }
        let id = attempt { () throws -> String in
            let node = try document.require("workflow")
            let id = try node.string()
            let services =
                catalog.schemas["approval.requested"]?.field(at: "/service")?.enumValues?.compactMap(\.stringValue)
                ?? []
            if !services.isEmpty, !services.contains(id) {
                throw node.fail(
                    "\(id) is not a service of approval.requested (\(services.joined(separator: ", "))); add it to the schemas' service enums in Topics/schemas first"
                )
            }
            return id
        }
        let title = attempt { try document.string("title") }
        let schema = attempt { () throws -> (String, JSONSchema) in
            let node = try document.require("application", "the event type of the workflow's applications")
            let type = try node.string()
            guard let schema = catalog.schemas[type] else {
                let hint = KeySuggestion.nearest(to: type, in: catalog.eventTypes).map { "; did you mean \($0)?" } ?? ""
                throw node.fail("\(type) is not an event type of the catalog\(hint)")
            }
            return (type, schema)
        }
        let applicant = attempt { () throws -> ApplicantFields in
            let mapping = try document.require("applicant").mapping(keys: Self.applicantKeys)
            func path(_ key: String) throws -> FieldPath? {
                guard let node = mapping[key] else { return nil }
                let path = FieldPath(try node.string())
                if let schema { try checkField(path, node: node, schema: schema.1, types: ["string"]) }
                return path
            }
            guard let name = try path("name"), let residentId = try path("residentId"), let mobile = try path("mobile")
            else {
                throw mapping.node.fail("applicant needs name, residentId and mobile (field paths of the application)")
            }
            return ApplicantFields(
                name: name, residentId: residentId, mobile: mobile, creditCode: try path("creditCode"))
        }
        var drafts: [Draft] = []
        var unreadable: Set<String> = []
        if let stepsNode = attempt({ try document.require("steps").list() }) {
            if stepsNode.isEmpty {
                problems.append(
                    ConfigFileError(
                        file: file, line: document.node.line, location: "steps",
                        problem: "a workflow needs at least one step"))
            }
            for stepNode in stepsNode {
                guard let draft = attempt({ try readStep(stepNode, schema: schema?.1, problems: &problems) }) else {
                    // Its problem is reported; later checks take its id as known so that its
                    // dependants are not reported too.
                    if let id = try? stepNode.mapping()["id"]?.string() { unreadable.insert(id) }
                    continue
                }
                do {
                    if let other = drafts.first(where: { $0.id == draft.id }) {
                        problems.append(
                            draft.idNode.fail(
                                "step id \(draft.id) is used twice (first at line \(other.idNode.line ?? 0)); ids must be unique"
                            ))
                    } else if let other = drafts.first(where: {
                        $0.department == draft.department && $0.item == draft.item
                    }) {
                        problems.append(
                            draft.idNode.fail(
                                "step \(draft.id) decides the same item as \(other.id) (\(draft.department) \(draft.item)); a decision could not tell them apart"
                            ))
                    } else {
                        drafts.append(draft)
                    }
                }
            }
        }
        checkGraph(drafts, unreadable: unreadable, problems: &problems)
        guard problems.count == before, let id, let title, let schema, let applicant else { return nil }
        let steps = drafts.map { draft in
            Step(
                id: draft.id, title: draft.title, department: draft.department, item: draft.item,
                dependsOn: draft.dependsOn.map(\.0), condition: draft.condition, conditionText: draft.conditionText,
                slaWorkingDays: draft.sla, materials: draft.materials.map(\.0), details: draft.details.map(\.0),
                passes: draft.passes.map(\.0), produces: draft.produces, onRejection: draft.onRejection)
        }
        return Workflow(
            id: id, title: title, applicationType: schema.0, applicant: applicant, steps: steps,
            version: sources.version(of: id),
            file: file, departments: departments, notifications: notifications, sources: sources,
            materialNumbers: MaterialNumbers(steps: steps))
    }

    func checkField(_ path: FieldPath, node: ConfigNode, schema: JSONSchema, types: Set<String>? = nil) throws {
        guard path.components.allSatisfy({ !$0.isEmpty }) else {
            throw node.fail("\(path) is not a field path (names joined by dots)")
        }
        guard let field = schema.field(at: path.pointer) else {
            throw node.fail("\(path) is not a field of \(schema.id ?? "the application")'s schema")
        }
        if let types, field.types.isDisjoint(with: types) {
            throw node.fail(
                "\(path) is \(field.types.sorted().joined(separator: " or ")), expected \(types.sorted().joined(separator: " or "))"
            )
        }
    }

    func readStep(_ node: ConfigNode, schema: JSONSchema?, problems: inout [ConfigFileError]) throws -> Draft {
        let step = try node.mapping(keys: Self.stepKeys)
        let idNode = try step.require("id")
        let id = try idNode.string()
        guard id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }), !id.contains(".") else {
            throw idNode.fail("a step id is letters, digits and hyphens (it is used in step.field references)")
        }
        let departmentNode = try step.require("department")
        let departmentId = try departmentNode.string()
        guard let department = departments.departments[departmentId] else {
            let known = departments.departments.keys.sorted()
            let inCatalog = catalog.departments[departmentId] != nil
            let hint = KeySuggestion.nearest(to: departmentId, in: known).map { "; did you mean \($0)?" } ?? ""
            throw departmentNode.fail(
                inCatalog
                    ? "\(departmentId) has no items in departments.yaml; add what it decides there"
                    : "unknown department \(departmentId) (not in Topics/catalog.yaml)\(hint)")
        }
        if catalog.topic(named: "approval.\(departmentId).requested") == nil {
            throw departmentNode.fail(
                "the catalog has no topic approval.\(departmentId).requested for this department's requests")
        }
        let itemNode = try step.require("item")
        let item = try itemNode.string()
        guard let itemTitle = department.items[item] else {
            let hint =
                KeySuggestion.nearest(to: item, in: department.items.keys.sorted()).map { "did you mean \($0)? " } ?? ""
            throw itemNode.fail(
                "unknown item \(item) of \(departmentId); \(hint)its items (departments.yaml) are \(department.items.keys.sorted().joined(separator: ", "))"
            )
        }
        var dependsOn: [(String, ConfigNode)] = []
        if let node = step["dependsOn"] {
            for element in try node.list() { dependsOn.append((try element.string(), element)) }
        }
        var condition: Condition?
        var conditionText: String?
        if let node = step["condition"] {
            let text = try node.string()
            conditionText = text
            // The column in the file: the value's column, plus one for an opening quote.
            let quoted: Int = { if case .scalar(let scalar) = node.node, scalar.style != .plain { 1 } else { 0 } }()
            func fail(_ error: ConditionError) -> ConfigFileError {
                ConfigFileError(
                    file: file, line: node.line, column: (node.column ?? 1) + quoted + error.column - 1,
                    location: node.location, problem: error.problem)
            }
            do {
                let parsed = try Condition.parse(text)
                if let schema { try parsed.check(against: schema, text: text) }
                condition = parsed
            } catch {
                problems.append(fail(error))
            }
        }
        let slaNode = try step.require("slaWorkingDays")
        let sla = try slaNode.int()
        guard (1...200).contains(sla) else {
            throw slaNode.fail("slaWorkingDays must be 1 to 200 working days, found \(sla)")
        }
        var materials: [(Material, ConfigNode)] = []
        if let node = step["materials"] {
            for element in try node.list() {
                let material = try element.mapping(keys: ["name", "source", "from", "sharedFact", "subject"])
                let name = try material.string("name")
                if let kindNode = material["sharedFact"] {
                    materials.append(
                        (
                            try readSharedFact(name: name, kindNode: kindNode, material: material, schema: schema),
                            element
                        ))
                    continue
                }
                if let subject = material["subject"] {
                    throw subject.fail(
                        "subject goes with sharedFact: <kind> (the fact of the shared data view it names)")
                }
                switch (material["source"], material["from"]) {
                case (let source?, nil):
                    guard try source.string() == "submitted" else {
                        throw source.fail(
                            "source is submitted (the applicant hands it in); for a material an earlier step produces write from: <step>.<field>"
                        )
                    }
                    materials.append((Material(name: name, source: .submitted), element))
                case (nil, let from?):
                    let text = try from.string()
                    guard let reference = StepField(text) else {
                        throw from.fail("from is <step>.<field>, e.g. business-licence.licenceNumber")
                    }
                    materials.append((Material(name: name, source: .step(reference)), from))
                default:
                    throw element.fail(
                        "a material has one of source: submitted, from: <step>.<field> or sharedFact: <kind> with subject: <field path>"
                    )
                }
            }
        }
        var details: [(FieldPath, ConfigNode)] = []
        if let node = step["details"] {
            for element in try node.list() {
                let path = FieldPath(try element.string())
                if let schema {
                    do { try checkField(path, node: element, schema: schema) } catch let error as ConfigFileError {
                        problems.append(error)
                    }
                }
                details.append((path, element))
            }
        }
        var passes: [(StepField, ConfigNode)] = []
        if let node = step["passes"] {
            for element in try node.list() {
                guard let reference = StepField(try element.string()) else {
                    throw element.fail("passes lists <step>.<field>, e.g. valuation.assessedPriceFen")
                }
                passes.append((reference, element))
            }
        }
        var produces: [String] = []
        if let node = step["produces"] {
            for element in try node.list() { produces.append(try element.string()) }
        }
        // Details land in one object: two under one name would overwrite each other.
        var detailKeys: [String: String] = [:]
        for (key, written, node) in details.map({ ($0.0.leaf, $0.0.description, $0.1) })
            + passes.map({ ($0.0.field, $0.0.description, $0.1) })
        {
            if let other = detailKeys[key] {
                problems.append(
                    node.fail(
                        "\(written) and \(other) both become details.\(key) of the request; keep one (or pass it as a material)"
                    ))
            }
            detailKeys[key] = written
        }
        var onRejection = OnRejection.fail
        if let node = step["onRejection"] {
            let text = try node.string()
            guard let value = OnRejection(rawValue: text) else {
                throw node.fail(
                    "onRejection is fail (the application fails) or resubmit (the applicant may resubmit the step), found \(text)"
                )
            }
            onRejection = value
        }
        return Draft(
            node: node, id: id, idNode: idNode, title: try step.optionalString("title") ?? itemTitle,
            department: departmentId, item: item, dependsOn: dependsOn, condition: condition,
            conditionText: conditionText,
            sla: sla, materials: materials, details: details, passes: passes, produces: produces,
            onRejection: onRejection)
    }

    /// `{name: 居民身份证, sharedFact: household-record, subject: applicant.residentId}`: a known
    /// kind of fact, about the resident ID or credit code at a string field of the application.
    func readSharedFact(name: String, kindNode: ConfigNode, material: ConfigMapping, schema: JSONSchema?) throws
        -> Material
    {
        if let other = material["source"] ?? material["from"] {
            throw other.fail("a material with sharedFact: comes from the shared data view; drop source: and from:")
        }
        let kind = try kindNode.string()
        guard SharedFactKinds.all.contains(kind) else {
            let hint =
                KeySuggestion.nearest(to: kind, in: SharedFactKinds.all).map { "did you mean \($0)? " } ?? ""
            throw kindNode.fail(
                "unknown kind of shared fact \(kind); \(hint)the shared data view keeps \(SharedFactKinds.all.joined(separator: ", "))"
            )
        }
        let subjectNode = try material.require(
            "subject", "the application field with the resident ID or credit code the fact is about")
        let subject = FieldPath(try subjectNode.string())
        if let schema { try checkField(subject, node: subjectNode, schema: schema, types: ["string"]) }
        return Material(name: name, source: .shared(kind: kind, subject: subject))
    }

    /// Dependencies name steps of the workflow and form no cycle; step fields come from steps this
    /// one depends on (directly or not), and name fields those steps have.
    func checkGraph(_ drafts: [Draft], unreadable: Set<String>, problems: inout [ConfigFileError]) {
        let byId = Dictionary(uniqueKeysWithValues: drafts.map { ($0.id, $0) })
        var valid = true
        for draft in drafts {
            for (dependency, node) in draft.dependsOn where byId[dependency] == nil {
                valid = false
                if unreadable.contains(dependency) { continue }
                let hint =
                    KeySuggestion.nearest(to: dependency, in: byId.keys.sorted()).map { "; did you mean \($0)?" } ?? ""
                problems.append(
                    node.fail("step \(draft.id) depends on \(dependency), which is not a step of this workflow\(hint)"))
            }
        }
        guard valid, unreadable.isEmpty else { return }
        // Cycles: depth-first, reporting each cycle once at the first step of it in file order.
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var reported = false
        func visit(_ id: String, _ path: [String]) {
            if state[id] == 2 || reported { return }
            if state[id] == 1 {
                let cycle = Array(path[path.firstIndex(of: id)!...]) + [id]
                let first = drafts.first { cycle.contains($0.id) }!
                let node = first.dependsOn.first { cycle.contains($0.0) }?.1 ?? first.idNode
                problems.append(
                    node.fail(
                        "the steps depend on each other in a cycle: \(cycle.joined(separator: " → ")); no order can run them"
                    ))
                reported = true
                return
            }
            state[id] = 1
            for (dependency, _) in byId[id]!.dependsOn { visit(dependency, path + [id]) }
            state[id] = 2
        }
        for draft in drafts { visit(draft.id, []) }
        guard !reported else { return }
        func ancestors(_ id: String) -> Set<String> {
            var result: Set<String> = []
            var queue = byId[id]!.dependsOn.map(\.0)
            while let next = queue.popLast() {
                if result.insert(next).inserted { queue += byId[next]!.dependsOn.map(\.0) }
            }
            return result
        }
        for draft in drafts {
            let earlier = ancestors(draft.id)
            let references =
                draft.passes.map { ($0.0, $0.1) }
                + draft.materials.compactMap { material, node in
                    if case .step(let reference) = material.source { (reference, node) } else { nil }
                }
            for (reference, node) in references {
                guard let source = byId[reference.step] else {
                    problems.append(node.fail("\(reference): \(reference.step) is not a step of this workflow"))
                    continue
                }
                guard earlier.contains(reference.step) else {
                    problems.append(
                        node.fail(
                            "\(reference): step \(draft.id) does not depend on \(reference.step), so its decision may not be there yet; add \(reference.step) to dependsOn"
                        ))
                    continue
                }
                if !source.produces.contains(reference.field), !Step.standardFields.contains(reference.field) {
                    let fields = Step.standardFields + source.produces
                    let hint =
                        KeySuggestion.nearest(to: reference.field, in: fields).map { "did you mean \($0)? " } ?? ""
                    problems.append(
                        node.fail(
                            "\(reference): \(reference.step) produces no field \(reference.field); \(hint)its fields are \(fields.joined(separator: ", ")) (list more under its produces)"
                        ))
                }
            }
        }
    }
}
