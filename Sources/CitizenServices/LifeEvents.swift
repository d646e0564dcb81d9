import CivilTime
import ConfigFiles
import EventSchemas
import Foundation
import GRDB
import Orchestrator
import OrchestratorService

/// Everything the citizen services decide by: the life-event pushes, the repeat-visit windows, the
/// workflows (the ones life events start, and the ones whose applications are visits) and the
/// catalog (which topic an application travels on).
public struct CitizenServicesRules: Sendable {
    public let lifeEvents: LifeEventRules
    public let repeatVisits: RepeatVisitRules
    public let workflows: RuleBook
    public let catalog: TopicCatalog

    public init(lifeEvents: LifeEventRules, repeatVisits: RepeatVisitRules, workflows: RuleBook, catalog: TopicCatalog) {
        self.lifeEvents = lifeEvents
        self.repeatVisits = repeatVisits
        self.workflows = workflows
        self.catalog = catalog
    }

    /// Loads `life-events.yaml`, `repeat-visits.yaml` and the workflows of a rules directory.
    /// - Throws: ``RuleBookError`` listing every problem with its file and line.
    public static func load(directory: URL, catalog: TopicCatalog) throws(RuleBookError) -> CitizenServicesRules {
        let workflows = try RuleBook.load(directory: directory, catalog: catalog)
        var problems: [ConfigFileError] = []
        var lifeEvents: LifeEventRules?
        var repeatVisits: RepeatVisitRules?
        do { lifeEvents = try LifeEventRules.load(directory: directory, rules: workflows, catalog: catalog) } catch {
            problems += error.problems
        }
        do { repeatVisits = try RepeatVisitRules.load(directory: directory) } catch { problems += error.problems }
        guard let lifeEvents, let repeatVisits else {
            throw RuleBookError(problems: problems)
        }
        return CitizenServicesRules(
            lifeEvents: lifeEvents, repeatVisits: repeatVisits, workflows: workflows, catalog: catalog)
    }

    /// The workflows life events start: their applications are not visits of anyone.
    public var startedWorkflows: Set<String> {
        Set(lifeEvents.pushes.values.compactMap(\.starts))
    }

    /// The topics the citizen services consume: births, deaths, pension enrolments, every
    /// application topic of a workflow people apply for at the window, and every topic of
    /// `approval.decided`.
    public var inputTopics: [String] {
        var topics: Set<String> = []
        for type in ["household.birth.registered", "household.death.registered", "socialsecurity.enrolment.registered",
            "approval.decided"]
        {
            for topic in catalog.topics(carrying: type) { topics.insert(topic.name) }
        }
        for workflow in workflows.current.values where !startedWorkflows.contains(workflow.id) {
            for topic in catalog.topics(carrying: workflow.applicationType) { topics.insert(topic.name) }
        }
        return topics.sorted()
    }
}

/// The work of one store transaction: each handler writes its outbox rows, timers and visits.
struct Transaction {
    let db: Database
    let rules: CitizenServicesRules
    let now: Date
    var outcome = CitizenBatchOutcome()
    private(set) var partition = 0

    init(db: Database, rules: CitizenServicesRules, now: Date) {
        self.db = db
        self.rules = rules
        self.now = now
    }

    var nowMs: Int64 { Int64((now.timeIntervalSince1970 * 1000).rounded()) }

    mutating func handle(_ pending: PendingCitizenInput) throws {
        partition = pending.partition
        switch pending.input {
        case .birth(let body): try birth(body, eventId: pending.eventId)
        case .death(let body): try death(body, eventId: pending.eventId)
        case .enrolment(let body): try enrolment(body)
        case .retirementDue(let residentId): try retirement(residentId, eventId: pending.eventId)
        case .submission(let workflow, let body): try submission(workflow, body, eventId: pending.eventId)
        case .decision(let body): try decision(body, eventId: pending.eventId)
        }
    }

    /// Writes an emission to the outbox.
    mutating func emit(id: String, type: String, topic: String, key: String, body: JSONValue) throws {
        try OutboxTable.insert(
            partition: partition, topic: topic, key: key, eventId: id, type: type, timeMilliseconds: nowMs,
            body: body.serialized(), db)
    }

    // MARK: - Life events

    /// A person with a mobile number in an event body (`/mother`), or `nil` without one.
    static func contact(_ body: JSONValue, _ pointer: String) -> Contact? {
        guard let name = body[pointer: pointer + "/name"]?.stringValue,
            let residentId = body[pointer: pointer + "/residentId"]?.stringValue,
            let mobile = body[pointer: pointer + "/mobile"]?.stringValue
        else { return nil }
        return Contact(name: name, residentId: residentId, mobile: mobile)
    }

    /// `notification.sms.requested` of a push to one recipient.
    mutating func message(
        _ push: LifeEventPush, id: String, to recipient: Contact, values: [String: Any], applicationId: String? = nil
    ) throws {
        var values = values
        values["recipient"] = ["name": recipient.name]
        values["services"] = push.servicesText
        values["date"] = ChinaTime.date(at: now).description
        if let applicationId { values["applicationId"] = applicationId }
        var parameters: JSONObject = [
            "text": .string(push.template.render(values)), "lifeEvent": .string(push.event.rawValue),
            "services": .string(push.services.map(\.title).joined(separator: "、")),
        ]
        if let applicationId { parameters["applicationId"] = .string(applicationId) }
        var body: JSONObject = [
            "notificationId": .string(id), "residentId": .string(recipient.residentId),
            "mobile": .string(recipient.mobile), "template": .string(push.template.sms),
            "parameters": .object(parameters), "requestedAt": .string(ChinaTime.rfc3339(now)),
        ]
        if let applicationId { body["applicationId"] = .string(applicationId) }
        try emit(
            id: id, type: "notification.sms.requested", topic: "notification.sms.requested", key: recipient.residentId,
            body: .object(body))
        outcome.messages += 1
    }

    /// A birth: a message to each parent with a mobile number.
    mutating func birth(_ body: JSONValue, eventId: String) throws {
        guard let push = rules.lifeEvents.pushes[.birth] else { return }
        let parents = ["/mother", "/father"].compactMap { Self.contact(body, $0) }
        if parents.isEmpty { outcome.unreachable += 1 }
        let values: [String: Any] = [
            "child": [
                "name": body[pointer: "/child/name"]?.stringValue ?? "",
                "birthDate": body[pointer: "/child/birthDate"]?.stringValue ?? "",
            ]
        ]
        for parent in parents {
            try message(push, id: "life-event/\(eventId)/sms/\(parent.residentId)", to: parent, values: values)
        }
    }

    /// A death: cancels the deceased's retirement timer, starts the workflow of the push with the
    /// informant as applicant (the duty officer of the workflow's department when no informant
    /// has a mobile number) and tells the informant.
    mutating func death(_ body: JSONValue, eventId: String) throws {
        guard let residentId = body[pointer: "/residentId"]?.stringValue else { return }
        try db.execute(
            sql: "UPDATE retirement_timers SET state = 2 WHERE resident_id = ? AND state = 0", arguments: [residentId])
        // An enrolment read after the death (another topic, another order) sets no timer.
        try db.execute(sql: "INSERT INTO deceased (resident_id) VALUES (?) ON CONFLICT DO NOTHING", arguments: [residentId])
        guard let push = rules.lifeEvents.pushes[.death], let workflow = push.starts.flatMap({ rules.workflows.current[$0] })
        else { return }
        let informant = Self.contact(body, "/informant")
        var deceased: JSONObject = [
            "residentId": .string(residentId),
            "dateOfDeath": body[pointer: "/dateOfDeath"] ?? .string(ChinaTime.date(at: now).description),
        ]
        for key in ["name", "householdNumber"] { if let value = body[pointer: "/\(key)"] { deceased[key] = value } }
        let applicationId = try start(
            workflow, id: "life-event/\(eventId)/application", applicant: informant,
            fields: ["deceased": .object(deceased), "startedBy": .string(eventId)])
        guard let informant else {
            outcome.unreachable += 1
            return
        }
        let values: [String: Any] = [
            "deceased": ["name": body[pointer: "/name"]?.stringValue ?? ""],
            "dateOfDeath": body[pointer: "/dateOfDeath"]?.stringValue ?? "",
        ]
        try message(
            push, id: "life-event/\(eventId)/sms/\(informant.residentId)", to: informant, values: values,
            applicationId: applicationId)
    }

    /// How many days after the retirement date an enrolment read late still sets a timer (which
    /// fires at once): a service stopped for a while catches up; a replay of years of history does
    /// not start certifications for people retired long ago.
    static let lateRetirementDays = 30

    /// A pension enrolment: sets the resident's retirement timer when the retirement date is after
    /// the enrolment takes effect and not more than ``lateRetirementDays`` before today, and the
    /// resident's death was not registered (one timer per resident; a later enrolment adds a mobile
    /// number or name the first lacked).
    mutating func enrolment(_ body: JSONValue) throws {
        guard let scheme = body[pointer: "/scheme"]?.stringValue, rules.lifeEvents.pensionSchemes.contains(scheme),
            let residentId = body[pointer: "/residentId"]?.stringValue,
            let (birthDate, sex) = ResidentIDNumber.birthDateAndSex(of: residentId)
        else { return }
        let retirementDate = rules.lifeEvents.retirementDate(birthDate: birthDate, sex: sex)
        if let effective = body[pointer: "/effectiveFrom"]?.stringValue.flatMap(CivilDate.init), retirementDate <= effective {
            return  // enrolled at or after retirement age: certified when the pension was claimed
        }
        if ChinaTime.date(at: now).days(until: retirementDate) < -Self.lateRetirementDays {
            return  // retired long before this enrolment was read (a replay of history): nothing to start
        }
        guard try Int.fetchOne(db, sql: "SELECT 1 FROM deceased WHERE resident_id = ?", arguments: [residentId]) == nil
        else { return }
        try db.execute(
            sql: """
                INSERT INTO retirement_timers (resident_id, partition, name, mobile, scheme, birth_date, retirement_date, due_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (resident_id) DO UPDATE SET name = coalesce(excluded.name, name),
                    mobile = coalesce(excluded.mobile, mobile) WHERE state = 0
                """,
            arguments: [
                residentId, partition, body[pointer: "/name"]?.stringValue, body[pointer: "/mobile"]?.stringValue,
                scheme, birthDate.description, retirementDate.description,
                retirementDate.chinaTime(hour: 9).timeIntervalSince1970,
            ])
    }

    /// A retirement timer came due: starts the workflow of the push with the resident as applicant
    /// (the duty officer when the resident gave no mobile number) and tells the resident.
    mutating func retirement(_ residentId: String, eventId: String) throws {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT * FROM retirement_timers WHERE resident_id = ? AND state = 0", arguments: [residentId])
        else { return }
        try db.execute(sql: "UPDATE retirement_timers SET state = 1 WHERE resident_id = ?", arguments: [residentId])
        guard let push = rules.lifeEvents.pushes[.retirement],
            let workflow = push.starts.flatMap({ rules.workflows.current[$0] })
        else { return }
        let name: String? = row["name"]
        let mobile: String? = row["mobile"]
        var resident: Contact?
        if let name, let mobile { resident = Contact(name: name, residentId: residentId, mobile: mobile) }
        let retirementDate: String = row["retirement_date"]
        var retiree: JSONObject = [
            "residentId": .string(residentId), "birthDate": .string(row["birth_date"]),
            "retirementDate": .string(retirementDate), "scheme": .string(row["scheme"]),
        ]
        if let name { retiree["name"] = .string(name) }
        let applicationId = try start(
            workflow, id: "\(eventId)/application", applicant: resident,
            fields: ["retiree": .object(retiree), "startedBy": .string(eventId)])
        guard let resident else {
            outcome.unreachable += 1
            return
        }
        try message(
            push, id: "\(eventId)/sms/\(residentId)", to: resident, values: ["retirementDate": retirementDate],
            applicationId: applicationId)
    }

    /// Writes the application of `workflow` to the outbox, numbered from the store's counter.
    /// - Parameter applicant: `nil`: the duty officer of the workflow's first department stands in.
    /// - Returns: the application number.
    mutating func start(_ workflow: Workflow, id: String, applicant: Contact?, fields: JSONObject) throws
        -> String
    {
        let prefix = Self.prefix(of: workflow.id)
        let year = ChinaTime.date(at: now).year
        let counter = "\(prefix)-\(year)"
        let number =
            try Int.fetchOne(
                db,
                sql: """
                    INSERT INTO application_numbers (prefix, last) VALUES (?, 1)
                    ON CONFLICT (prefix) DO UPDATE SET last = last + 1 RETURNING last
                    """, arguments: [counter]) ?? 1
        let applicationId = "\(counter)-\(String(format: "%06d", number))"
        let department = workflow.steps.first.map(\.department) ?? ""
        let contact =
            applicant ?? workflow.departments.departments[department]?.contact ?? workflow.notifications.supervisor
        var body = fields
        body["applicationId"] = .string(applicationId)
        body["submittedAt"] = .string(ChinaTime.rfc3339(now))
        body["applicant"] = .object([
            "name": .string(contact.name), "residentId": .string(contact.residentId), "mobile": .string(contact.mobile),
        ])
        let topic = rules.catalog.topics(carrying: workflow.applicationType).first?.name ?? workflow.applicationType
        try emit(id: id, type: workflow.applicationType, topic: topic, key: applicationId, body: .object(body))
        outcome.applicationsStarted += 1
        return applicationId
    }

    /// `death-aftercare` → `DA`, `pension-certification` → `PC`: the words' initials (2 to 4 letters).
    static func prefix(of workflow: String) -> String {
        let words = workflow.split(separator: "-")
        var letters = words.compactMap(\.first).map { String($0).uppercased() }.joined()
        if letters.count < 2 { letters = String(workflow.prefix(2)).uppercased() }
        return String(letters.prefix(4))
    }
}
