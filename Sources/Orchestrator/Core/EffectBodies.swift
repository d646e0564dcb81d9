import CivilTime
import EventSchemas
import Foundation

/// The JSON bodies of the events the core emits; each validates against its schema in
/// `Topics/schemas` (the tests check it).
enum EffectBodies {
    static func time(_ instant: Date) -> JSONValue { .string(ChinaTime.rfc3339(instant)) }

    /// `approval.requested`: the applicant, the materials (submitted ones the application lists,
    /// and what earlier steps produced), the details (application fields and passed decision
    /// fields).
    /// - Parameters:
    ///   - applicant: ``applicant(_:_:)`` of the case, when the caller has it (one per
    ///     transition, however many steps it requests); `nil` to find it.
    ///   - listed: ``ListedMaterials`` of the case's application, likewise.
    ///   - template: ``requestTemplates(_:)``'s entry for the step, when the caller keeps them.
    ///   - times: the transition's texts of times (its `now` is the request's time).
    static func approvalRequest(
        _ step: Step, _ state: Case, _ workflow: Workflow, due: CivilDate, applicant: JSONValue? = nil,
        listed: ListedMaterials? = nil, template: JSONObject? = nil, times: inout TimeTexts
    ) -> JSONValue {
        let application = state.application
        let applicant = applicant ?? Self.applicant(workflow, application)

        let listed = listed ?? ListedMaterials(application)
        var materials: [JSONValue] = []
        materials.reserveCapacity(step.materials.count)
        for material in step.materials {
            switch material.source {
            case .submitted:
                if let source = listed.source(of: material.name) {
                    materials.append(.object(["name": .string(material.name), "source": source]))
                }
            case .shared:
                if let fact = workflow.fact(for: material, application: application, facts: state.facts ?? []) {
                    materials.append(
                        .object([
                            "name": .string(material.name), "source": .string("shared-data"),
                            "eventId": .string(fact.eventId), "topic": .string(fact.topic),
                        ]))
                } else if let source = listed.source(of: material.name) {
                    // Brought by the applicant (or found by the window) instead.
                    materials.append(.object(["name": .string(material.name), "source": source]))
                }
            case .step(let reference):
                if let value = decisionField(reference, in: state) {
                    materials.append(
                        .object([
                            "name": .string(material.name), "source": .string("earlier-step"),
                            "step": .string(reference.step),
                            "value": .string(text(value)),
                        ]))
                }
            }
        }
        // Sized at once: it grew from empty.
        var details = JSONObject(minimumCapacity: step.details.count + step.passes.count)
        for path in step.details {
            if let value = path.value(in: application) { details[path.leaf] = value }
        }
        for reference in step.passes {
            if let value = decisionField(reference, in: state) { details[reference.field] = value }
        }
        var body = template ?? requestTemplate(step, workflow)
        body["applicationId"] = .string(state.applicationId)
        body["dueBy"] = times.text(due)
        body["applicant"] = applicant
        body["materials"] = .array(materials)
        body["requestedAt"] = times.nowText
        if !details.isEmpty { body["details"] = .object(details) }
        return .object(body)
    }

    /// A request's `applicant`: the name, ID number, mobile (and credit code) the workflow's
    /// applicant fields point at.
    static func applicant(_ workflow: Workflow, _ application: JSONValue) -> JSONValue {
        var applicant = JSONObject(minimumCapacity: 4)
        applicant["name"] = workflow.applicant.name.value(in: application)
        applicant["residentId"] = workflow.applicant.residentId.value(in: application)
        applicant["mobile"] = workflow.applicant.mobile.value(in: application)
        if let path = workflow.applicant.creditCode, let code = path.value(in: application) {
            applicant["creditCode"] = code
        }
        return .object(applicant)
    }

    /// The members of an `approval.requested` for a step that are the same in every request of
    /// it (`service`, `department`, `item`), with room for the others.
    static func requestTemplate(_ step: Step, _ workflow: Workflow) -> JSONObject {
        var body = JSONObject(minimumCapacity: 9)
        body["service"] = .string(workflow.id)
        body["department"] = .string(step.department)
        body["item"] = .string(step.item)
        return body
    }

    static func decisionField(_ reference: StepField, in state: Case) -> JSONValue? {
        // Read in place: `state.step(_:)` would copy the step's state, decisions and all.
        guard let index = state.steps.firstIndex(where: { $0.id == reference.step }),
            state.steps[index].status == .approved
        else { return nil }
        return state.steps[index].decision?.field(reference.field)
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): text
        case .integer(let number): String(number)
        case .number(let number): String(number)
        case .bool(let flag): String(flag)
        default: String(decoding: value.serialized(), as: UTF8.self)
        }
    }

    /// The fixed members of a workflow's bodies, per step in the workflow's order
    /// (``requestTemplate(_:_:)``, ``progressTemplates(_:)``), made once per rule version.
    struct Templates: Sendable {
        let requests: [JSONObject]
        let progress: [JSONObject]

        init(_ workflow: Workflow) {
            requests = workflow.steps.map { EffectBodies.requestTemplate($0, workflow) }
            progress = EffectBodies.progressTemplates(workflow)
        }
    }

    /// The members of each step's entry in `application.progress.updated` that never change
    /// (`step`, `title`, `department`, `item`), in the workflow's step order, with room for the
    /// others: ``progress(_:_:now:templates:times:)`` copies an entry and adds what changes instead
    /// of setting every fixed name again for each of a workflow's seven progress updates.
    static func progressTemplates(_ workflow: Workflow) -> [JSONObject] {
        workflow.steps.map { step in
            // Sized for every member at once: a literal of four grew on the fifth.
            var entry = JSONObject(minimumCapacity: 9)
            entry["step"] = .string(step.id)
            entry["title"] = .string(step.title)
            entry["department"] = .string(step.department)
            entry["item"] = .string(step.item)
            return entry
        }
    }

    /// `application.progress.updated`: every step's state, due date, times and what it waits for.
    /// - Parameters:
    ///   - templates: ``progressTemplates(_:)`` of `workflow`, when the caller keeps them; `nil` to
    ///     make them.
    ///   - times: the transition's texts of times (what its other bodies formatted already).
    static func progress(
        _ state: Case, _ workflow: Workflow, now: Date, templates: [JSONObject]? = nil,
        times: inout TimeTexts
    ) -> Emission {
        let status: String =
            switch state.status {
            case .inProgress: "in-progress"
            case .completed: "completed"
            case .failed: "rejected"
            }
        let templates = templates ?? progressTemplates(workflow)
        var steps: [JSONValue] = []
        steps.reserveCapacity(workflow.steps.count)
        for position in workflow.steps.indices {
            // The case keeps its steps in the workflow's order; read each in place (a copy of a
            // step's state retains its decisions, times and id, a copy of a step its rules).
            let id = workflow.steps[position].id
            let index =
                position < state.steps.count && state.steps[position].id == id
                ? position : state.steps.firstIndex { $0.id == id }!
            var entry = templates[position]
            let stepStatus = state.steps[index].status
            entry["status"] =
                switch stepStatus {
                case .waiting: .string("waiting")
                case .skipped: .string("skipped")
                case .requested: .string("requested")
                case .approved: .string("approved")
                case .rejected: .string("rejected")
                case .awaitingResubmission, .awaitingDocuments: .string("needs-more-information")
                }
            if let due = state.steps[index].dueDate { entry["dueBy"] = times.text(due) }
            if let requestedAt = state.steps[index].requestedAt { entry["requestedAt"] = times.text(requestedAt) }
            if let decision = state.steps[index].decision { entry["decidedAt"] = times.text(decision.decision.decidedAt) }
            if stepStatus == .waiting {
                // `Case.waitingFor(_:in:)`, without looking the step up again.
                entry["waitingFor"] = .array(state.notDone(workflow.steps[position].dependsOn).map(JSONValue.string))
            }
            steps.append(.object(entry))
        }
        var body = JSONObject(minimumCapacity: 6)
        body["applicationId"] = .string(state.applicationId)
        body["service"] = .string(workflow.id)
        body["status"] = .string(status)
        body["steps"] = .array(steps)
        body["updatedAt"] = times.text(now)
        if let documents = state.completion?.documents { body["documents"] = documentsBody(documents) }
        return Emission(
            id: "\(state.applicationId)/progress/\(state.revision)", type: "application.progress.updated",
            topic: "application.progress.updated", key: state.applicationId, body: .object(body))
    }

    /// ``progress(_:_:now:templates:times:)`` with texts of its own.
    static func progress(_ state: Case, _ workflow: Workflow, now: Date) -> Emission {
        var times = TimeTexts(now: now)
        return progress(state, workflow, now: now, times: &times)
    }

    /// The `documents` member of a completed application's progress.
    static func documentsBody(_ documents: DocumentCount) -> JSONValue {
        .object([
            "serial": .integer(Int64(documents.serial)), "submitted": .integer(Int64(documents.submitted)),
            "notBrought": .integer(Int64(documents.notBrought)),
        ])
    }

    static func applicantContact(_ state: Case, _ workflow: Workflow) -> Contact {
        let application = state.application
        return Contact(
            name: workflow.applicant.name.value(in: application)?.stringValue ?? "",
            residentId: workflow.applicant.residentId.value(in: application)?.stringValue ?? "",
            mobile: workflow.applicant.mobile.value(in: application)?.stringValue ?? "")
    }

    /// `notification.sms.requested`, with the rendered text in `parameters.text` (the SMS
    /// gateway's own wording is used when a sink ignores it).
    /// - Parameters:
    ///   - missing: the application's missing documents when the caller has them already (the
    ///     submission's), for the `received` moment; `nil` to find them.
    ///   - nowText: `time(now)` when the caller has it.
    static func notification(
        _ moment: NotificationMoment, _ state: Case, _ workflow: Workflow, step: Step?, now: Date,
        missing: [MissingDocument]? = nil, nowText: JSONValue? = nil
    ) -> Emission {
        let applicant = applicantContact(state, workflow)
        let recipient: Contact =
            switch moment.recipient {
            case .applicant: applicant
            case .department:
                workflow.departments.departments[step?.department ?? ""]?.contact ?? workflow.notifications.supervisor
            case .supervisor: workflow.notifications.supervisor
            }
        var values: [String: Any] = [
            "applicationId": state.applicationId, "service": ["title": workflow.title] as [String: Any],
            "applicant": ["name": applicant.name] as [String: Any], "recipient": ["name": recipient.name] as [String: Any],
            "date": ChinaTime.date(at: now).description,
        ]
        var parameters: JSONObject = [
            "applicationId": .string(state.applicationId), "service": .string(workflow.title),
        ]
        var id = "\(state.applicationId)/sms/\(moment.rawValue)"
        if let step, let stepState = state.step(step.id) {
            let department = workflow.departments.departments[step.department]?.name ?? step.department
            values["step"] = ["title": step.title, "department": department, "item": step.item] as [String: Any]
            values["dueDate"] = stepState.dueDate?.description ?? ""
            values["requestedDate"] = stepState.requestedAt.map { ChinaTime.date(at: $0).description } ?? ""
            let reason = stepState.decision?.decision.reason ?? ""
            values["reason"] = reason
            parameters["step"] = .string(step.title)
            if !reason.isEmpty { parameters["reason"] = .string(reason) }
            id += "/\(step.id)/\(stepState.attempt)"
        }
        if let completion = state.completion {
            values["elapsedWorkingDays"] = String(completion.elapsedWorkingDays)
            values["serialWorkingDays"] = String(completion.serialWorkingDays)
            values["documentsNotBrought"] = String(completion.documents?.notBrought ?? 0)
        }
        if moment == .received {
            // The documents nobody holds, which the application waits for; 无 (none) when the
            // view held every fact.
            let missing = (missing ?? workflow.missingDocuments(application: state.application, facts: state.facts ?? []))
                .map(\.name)
            values["missingDocuments"] = missing.isEmpty ? "无" : missing.joined(separator: "、")
            if !missing.isEmpty { parameters["missingDocuments"] = .string(missing.joined(separator: "、")) }
        }
        let template = workflow.notifications.templates[moment]!
        parameters["text"] = .string(template.render(values))
        let body: JSONValue = .object([
            "notificationId": .string(id), "residentId": .string(recipient.residentId),
            "mobile": .string(recipient.mobile),
            "template": .string(template.sms), "parameters": .object(parameters),
            "applicationId": .string(state.applicationId), "requestedAt": nowText ?? time(now),
        ])
        return Emission(
            id: id, type: "notification.sms.requested", topic: "notification.sms.requested", key: recipient.residentId,
            body: body)
    }

    /// `supervision.alert.raised` (rule `sla-breach`) for an overdue step, keyed by the applicant.
    static func alert(_ state: Case, _ workflow: Workflow, step: Step, now: Date) -> Emission {
        let stepState = state.step(step.id)!
        let applicant = applicantContact(state, workflow)
        let id = "\(state.applicationId)/alert/sla-breach/\(step.id)/\(stepState.attempt)"
        let body: JSONValue = .object([
            "alertId": .string(id), "rule": .string("sla-breach"), "residentId": .string(applicant.residentId),
            "item": .string(step.item), "occurrences": .array([time(stepState.requestedAt ?? state.submittedAt)]),
            "raisedAt": time(now),
        ])
        return Emission(
            id: id, type: "supervision.alert.raised", topic: "supervision.alert.raised", key: applicant.residentId,
            body: body)
    }
}

/// The texts of the times and dates one transition's bodies carry, each made once: a transition
/// writes its own time into its requests, its notification and its progress update, and a
/// progress update lists the steps requested together (the same time, often the same due date).
/// `ChinaTime.rfc3339` and `CivilDate.description` of the same value are always the same text.
struct TimeTexts {
    /// The transition's time.
    let now: Date
    /// `ChinaTime.rfc3339(now)`.
    let nowText: JSONValue
    private var instant: (Date, JSONValue)?
    private var earlier: (Date, JSONValue)?
    private var day: (CivilDate, JSONValue)?

    init(now: Date) {
        self.now = now
        nowText = EffectBodies.time(now)
    }

    /// `.string(ChinaTime.rfc3339(instant))`.
    mutating func text(_ instant: Date) -> JSONValue {
        if instant == now { return nowText }
        if let last = self.instant, last.0 == instant { return last.1 }
        if let earlier, earlier.0 == instant { return earlier.1 }
        let text = EffectBodies.time(instant)
        earlier = self.instant
        self.instant = (instant, text)
        return text
    }

    /// `.string(date.description)`.
    mutating func text(_ date: CivilDate) -> JSONValue {
        if let day, day.0 == date { return day.1 }
        let text = JSONValue.string(date.description)
        day = (date, text)
        return text
    }
}

/// The materials an application lists (its `materials`), by name: the `source` of the first
/// element with each name (`submitted` when it has none). Made once per transition, for every
/// material of every request in it, instead of hashing `name` in each element for each material.
///
/// Names are equal as `String`s are, canonical equivalents alike, as the element-by-element search
/// had them; but `String`'s `==` on two different Chinese names went through Unicode
/// normalisation, and so did hashing one. Two names made only of characters that are in NFC
/// whatever surrounds them (``isPlainNFC(_:)``) are both in NFC, so they are canonically
/// equivalent exactly when their bytes are equal: those are compared as bytes, others with `==`.
struct ListedMaterials {
    private struct Entry {
        let name: String
        let plain: Bool
        let source: JSONValue
    }

    private let entries: [Entry]

    init(_ application: JSONValue) {
        var entries: [Entry] = []
        for element in Workflow.listedMaterials(in: application) {
            guard case .object(let members) = element, case .string(let name)? = members["name"] else { continue }
            entries.append(
                Entry(name: name, plain: Self.isPlainNFC(name), source: members["source"] ?? .string("submitted")))
        }
        self.entries = entries
    }

    /// The `source` of the first listed material named `name` (`submitted` when it has none);
    /// `nil` when none is.
    func source(of name: String) -> JSONValue? {
        guard !entries.isEmpty else { return nil }
        let plain = Self.isPlainNFC(name)
        for entry in entries {
            let equal = plain && entry.plain ? Self.sameBytes(entry.name, name) : entry.name == name
            if equal { return entry.source }
        }
        return nil
    }

    /// Whether two strings have the same UTF-8 bytes.
    static func sameBytes(_ left: String, _ right: String) -> Bool {
        guard left.utf8.count == right.utf8.count else { return false }
        var left = left
        var right = right
        return left.withUTF8 { leftBytes in
            right.withUTF8 { rightBytes in
                leftBytes.isEmpty || memcmp(leftBytes.baseAddress!, rightBytes.baseAddress!, leftBytes.count) == 0
            }
        }
    }

    /// Whether every scalar of `text` is ASCII, a CJK unified ideograph (U+3400–U+4DBF,
    /// U+4E00–U+9FFF), the ideographic comma, full stop or ditto mark (U+3001–U+3003), or a
    /// full-width form (U+FF01–U+FF5E): characters without a canonical decomposition, of
    /// combining class 0, that compose with nothing that can follow them here. Such text is in
    /// NFC. (CJK compatibility ideographs, U+F900–U+FAFF, are not among them: most decompose.)
    static func isPlainNFC(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            // On the UTF-8 bytes (a `String`'s are well-formed): these scalars take one or three.
            var position = 0
            while position < bytes.count {
                let lead = bytes[position]
                if lead < 0x80 {
                    position += 1
                    continue
                }
                guard lead & 0xF0 == 0xE0, position + 2 < bytes.count else { return false }
                let scalar =
                    UInt32(lead & 0x0F) << 12 | UInt32(bytes[position + 1] & 0x3F) << 6
                    | UInt32(bytes[position + 2] & 0x3F)
                switch scalar {
                case 0x3001...0x3003, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xFF01...0xFF5E: position += 3
                default: return false
                }
            }
            return true
        }
    }
}
